"""Scanner byte streams for the simulator: stdin, a pty/serial device file, or a TCP socket.

Each gives an asyncio stream reader with .read(n), the same interface the ESP32 UART adapter
offers, so the gate loop cannot tell them apart.
"""
import asyncio
import sys

from offgate.pollread import PollReader


# The sim's scanner streams are plain blocking files: read them like the ESP32 console is read.
FileReader = PollReader


def stdin_reader():
    return FileReader(sys.stdin.buffer if hasattr(sys.stdin, "buffer") else sys.stdin)


def file_reader(path):
    return FileReader(open(path, "rb"))


class Queue:
    """One connection served at a time, at most `waiting` more queued: a flood of connections is
    closed at once instead of each holding a task and buffers until the heap runs out."""

    def __init__(self, waiting=2):
        self.lock = asyncio.Lock()
        self.waiting = 0
        self.limit = waiting

    def full(self):
        return self.waiting >= self.limit


async def _close(writer):
    try:
        writer.close()
        await writer.wait_closed()
    except Exception:
        pass


async def serve_tcp(gate, host, port):
    """Accept scanner connections one after another; each is read until it closes."""
    q = Queue()

    async def handle(reader, writer):
        if q.full():
            await _close(writer)
            return
        q.waiting += 1
        try:
            async with q.lock:
                q.waiting -= 1
                try:
                    await gate.run(reader)
                except Exception as e:  # a broken connection (or a full heap) must not stop the gate
                    _log("scanner link: %r" % (e,))
                finally:
                    await _close(writer)
        except Exception:
            q.waiting -= 1

    server = await asyncio.start_server(handle, host, port)
    gate.emit({"event": "listening", "host": host, "port": port})
    while True:
        await asyncio.sleep(3600)


# ---------------------------------------------------------------------------- sync link (--sync)
SYNC_IDLE_S = 60  # a silent host is dropped after this long
_sync = {}


def start_sync(gate, host, port):
    """Arrange for with_sync() to run the sync link on host:port."""
    _sync["gate"] = gate
    _sync["addr"] = (host, port)


def _log(msg):
    try:
        sys.stderr.write("%s\n" % msg)
    except Exception:
        pass


class _TcpIO:
    """One TCP connection as the byte pipe offgate.sync.serve reads and writes."""

    def __init__(self, reader, writer):
        self.reader = reader
        self.writer = writer

    async def readinto(self, buf):
        return await self.reader.readinto(buf)

    async def write(self, data):
        self.writer.write(data)
        await self.writer.drain()


async def serve_sync(gate, host, port):
    """One sync session per TCP connection, one at a time (the log has one reader). Each gets a
    gate port (offgate.gateport) that is dropped with the sync modules; `keep` carries the
    handshake rate limit and the device public key from one connection to the next."""
    q = Queue()
    keep = {}

    async def handle(reader, writer):
        if q.full():
            await _close(writer)
            return
        q.waiting += 1
        async with q.lock:
            q.waiting -= 1
            try:
                import gc
                gc.collect()
                _log("sync: session start, heap free %d" % gc.mem_free())
                from offgate.gateport import GatePort
                from offgate.sync.serve import serve
                await serve(GatePort(gate, keep=keep), _TcpIO(reader, writer), log=sys.stderr, idle_s=SYNC_IDLE_S,
                            once=True)
            except Exception as e:  # a broken link (or no heap for the sync code) must not stop the gate
                _log("sync: link: %r" % (e,))
            finally:
                await _close(writer)

    srv = await asyncio.start_server(handle, host, port)
    gate.emit({"event": "sync_listening", "host": host, "port": port})
    return srv


async def with_sync(main):
    """Run the coroutine `main` (the scanner loop) with the sync listener beside it, if configured."""
    if _sync:
        await serve_sync(_sync["gate"], _sync["addr"][0], _sync["addr"][1])
    return await main
