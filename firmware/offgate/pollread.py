"""A blocking byte stream (stdin, a pty, the USB console) as an asyncio reader that returns what
has arrived.

asyncio's StreamReader.read(n) on a blocking file waits for all n bytes, which would hold a short
scanner line or a sync frame forever (sockets and machine.UART don't have that problem). So: wait
for the first byte through asyncio, then take only the bytes poll() says are already there.
"""
import asyncio  # MicroPython >= 1.23 (what mpy v6 needs) has it under this name
import select


class PollReader:
    def __init__(self, f):
        self.f = f
        self._first = asyncio.StreamReader(f)
        self._poll = select.poll()
        self._poll.register(f, select.POLLIN)

    async def read(self, n):
        first = await self._first.read(1)
        if not first:
            return b""
        buf = bytearray(first)
        while len(buf) < n and self._poll.poll(0):
            b = self.f.read(1)
            if not b:
                break
            buf += b
        return bytes(buf)
