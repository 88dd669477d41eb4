"""The sync link on the device: the host's `offgate sync serial:/dev/ttyUSB0` talks to the gate
over the USB serial console (free once hardening has detached the REPL) or over a spare UART.
The sessions are the same SyncServer the simulator runs behind TCP; only the byte pipe differs.

Board config: "sync": {"port": "console"}  or  {"port": "uart", "uart": 1, "tx": .., "rx": .., "baud": ..}.
Importing this module registers its task with esp32gate.app (app.main imports it when the board
config has a "sync" entry).
"""
import asyncio  # MicroPython >= 1.23 (what mpy v6 needs) has it under this name
import sys

from offgate.pollread import PollReader

IDLE_S = 60       # a silent host is dropped: its session keys are forgotten
CHUNK = 256
POLL_MS = 10


class ConsoleIO:
    """The USB serial console as a byte pipe (raw bytes both ways)."""

    def __init__(self, rx=None, tx=None):
        self.rx = PollReader(rx if rx is not None else sys.stdin.buffer)
        self.tx = tx if tx is not None else sys.stdout.buffer

    async def read(self, n):
        return await self.rx.read(n)

    def write(self, data):
        self.tx.write(data)
        if hasattr(self.tx, "flush"):
            self.tx.flush()


class UartIO:
    """A spare hardware UART (machine.UART with timeout=0) as a byte pipe."""

    def __init__(self, uart):
        self.uart = uart

    async def read(self, n):
        while True:
            k = self.uart.any()
            if k:
                return self.uart.read(min(k, n))
            await asyncio.sleep_ms(POLL_MS)

    def write(self, data):
        self.uart.write(data)


async def serve(gate, io, log=None, idle_s=IDLE_S):
    """Sync sessions over one byte stream, one after another, until the stream ends.
    A session starts with the host's first bytes; silence or a broken session ends it."""
    from offgate.sync import session
    srv = session.SyncServer(gate, log=log)
    s = None
    while True:
        try:
            data = await asyncio.wait_for(io.read(CHUNK), idle_s)
        except asyncio.TimeoutError:
            if s is not None:
                s.close()
                s = None
            continue
        if not data:
            break
        if s is None or s.closed:
            s = srv.session()
        out = s.feed(data)
        if out:
            io.write(out)
    if s is not None:
        s.close()


def io_from_config(sc, uart_cls=None):
    if sc.get("port", "console") == "console":
        return ConsoleIO()
    if uart_cls is None:
        from machine import UART as uart_cls
    return UartIO(uart_cls(sc["uart"], baudrate=sc.get("baud", 115200), tx=sc["tx"], rx=sc["rx"],
                           rxbuf=sc.get("rxbuf", 2048), timeout=0, timeout_char=0))


def hook(app):
    """esp32gate.app task hook: ("sync", coroutine function) when the board config asks for it."""
    sc = app.cfg.get("sync")
    if not isinstance(sc, dict):
        return None
    io = io_from_config(sc)
    return ("sync", lambda: serve(app.gate, io))


def _register():
    from esp32gate import app
    if hook not in app.TASK_HOOKS:
        app.TASK_HOOKS.append(hook)


_register()
