"""Scanner byte streams for the simulator: stdin, a pty/serial device file, or a TCP socket.

Each gives an asyncio stream reader with .read(n), the same interface the ESP32 UART adapter
offers, so the gate loop cannot tell them apart.
"""
import asyncio
import select
import sys


class FileReader:
    """A blocking file (stdin, a pty) as a stream that returns what has arrived.

    asyncio's StreamReader.read(n) on a blocking file waits for all n bytes, which would hold a
    short scanner line forever; sockets and the ESP32 UART don't have that problem. So: wait for
    the first byte through asyncio, then take only the bytes poll() says are already there."""

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


def stdin_reader():
    return FileReader(sys.stdin.buffer if hasattr(sys.stdin, "buffer") else sys.stdin)


def file_reader(path):
    return FileReader(open(path, "rb"))


async def serve_tcp(gate, host, port):
    """Accept scanner connections one after another; each is read until it closes."""
    busy = asyncio.Lock()

    async def handle(reader, writer):
        async with busy:
            try:
                await gate.run(reader)
            finally:
                writer.close()
                await writer.wait_closed()

    server = await asyncio.start_server(handle, host, port)
    gate.emit({"event": "listening", "host": host, "port": port})
    while True:
        await asyncio.sleep(3600)
