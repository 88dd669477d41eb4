"""The sync link's one serve loop, over any byte pipe: the simulator's TCP connections
(sim/streams.py) and a device's USB serial console or UART (esp32gate/synclink.py) both call
serve(). `io` gives `async readinto(buf)` (bytes read, 0 when the pipe has ended: read into one
buffer allocated per serve(), so a full heap cannot fail a read) or else `async read(n)` (b"" at
the end), and `write(data)` (a coroutine or a plain call).

Memory policy: the sync modules are loaded when a session starts and dropped when serve()
returns (TRANSIENT), so an idle gate keeps its whole heap for scanning; on a gate running .mpy
files their bytecode lives in the heap (a frozen/ROMFS build runs it from flash).
"""
import asyncio  # MicroPython >= 1.23 (what mpy v6 needs) has it under this name

IDLE_S = 60        # a silent host is dropped: its session keys are forgotten
CHUNK = 256        # bytes read at a time (a frame waits in the deframer's one buffer; the ESP32 link reads 256 too)

# Loaded for sync sessions and dropped after them (names under offgate.).
TRANSIENT = ("sync.ops", "sync.admin", "sync.status", "sync.handshake", "sync.session", "sync.batch", "sync.batchrows", "sync.frames",
             "sync.proto",
             "gateport", "crypto.aesccm", "crypto.devicekey", "crypto.hkdf", "crypto.hmac256", "timekeep", "statedir")


async def serve(port, io, log=None, idle_s=IDLE_S, once=False, chunk=CHUNK):
    """Run sync sessions for the gate `port` (offgate.gateport.GatePort) over `io`, one after
    another, until the pipe ends (or, with `once`, until the first session ends: one session per
    TCP connection). A session starts with the host's first bytes; `idle_s` seconds of silence or a
    broken session end it. `log`: a stream for one-line notes. The session code is loaded when a
    session starts and dropped when it ends (an idle gate keeps its heap for scanning)."""
    s = None
    into = hasattr(io, "readinto")
    buf = bytearray(chunk) if into else None
    mv = memoryview(buf) if into else None
    try:
        while True:
            try:
                if into:
                    n = await asyncio.wait_for(io.readinto(buf), idle_s)
                    data = mv[:n] if n else None
                else:
                    data = await asyncio.wait_for(io.read(chunk), idle_s)
            except asyncio.TimeoutError:
                data = None
                if s is not None:
                    s = _end(s)
                if once:
                    break
                continue
            if not data:
                break
            if s is not None and s.closed:
                s = _end(s)
                if once:
                    break
            if s is None:
                port.tidy()  # the replay table's spare pages first: a session needs the heap
                _g_table()
                from offgate.sync.session import SyncServer
                s = SyncServer(port, log=log).session()
            out = s.feed(data)
            data = None
            if out:
                r = io.write(out)
                if r is not None:
                    await r
                out = r = None
            if once and s.closed:
                break
    finally:
        if s is not None:
            s.close()
        s = buf = mv = None
        unload_sync()


def _g_table():
    """G's comb table in place before the session's code and buffers: a gate whose issuer tables
    (issuer_tables.bin) do not carry it loads it from offgate.p256_gtable, one 16 KB block, which
    a heap split by a session may no longer have (every signature check of the handshake and the
    batch signatures need it). Kept, as after a scan. Short of heap, the session goes on and the
    device key falls back to its slower path."""
    try:
        from offgate.crypto import p256
        p256.gcomb()
    except MemoryError:
        pass


def _end(s):
    """A session is over: close it and drop the session code (not the port's module: the port
    lives on)."""
    s.close()
    s = None
    from offgate.sync.proto import unload
    unload(*[n for n in TRANSIENT if n != "gateport"])
    return None


def unload_sync():
    """Drop every sync module (TRANSIENT) and collect: what a gate does after a sync session."""
    from offgate.sync.proto import unload
    unload(*TRANSIENT)
