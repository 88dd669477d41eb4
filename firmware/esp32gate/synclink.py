"""The sync link on the device: the host's `offgate sync serial:/dev/ttyUSB0` talks to the gate
over the USB serial console (free once hardening has detached the REPL) or over a spare UART.
The sessions are offgate.sync.serve, the loop the simulator runs behind TCP; only the byte pipe differs.

Board config: "sync": {"port": "console"}  or  {"port": "uart", "uart": 1, "tx": .., "rx": .., "baud": ..}.
esp32gate.app.main adds task() to its supervised tasks when the board config has a "sync" entry.
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
    """Sync sessions for `gate` (offgate.gate.Gate) over one byte stream, one after another, until
    the stream ends (offgate.sync.serve)."""
    from offgate.gateport import GatePort
    from offgate.sync.serve import serve as serve_sync
    await serve_sync(GatePort(gate), io, log=log, idle_s=idle_s, chunk=CHUNK)


def io_from_config(sc, uart_cls=None):
    if sc.get("port", "console") == "console":
        return ConsoleIO()
    if uart_cls is None:
        from machine import UART as uart_cls
    return UartIO(uart_cls(sc["uart"], baudrate=sc.get("baud", 115200), tx=sc["tx"], rx=sc["rx"],
                           rxbuf=sc.get("rxbuf", 2048), timeout=0, timeout_char=0))


def task(app, sc):
    """("sync", coroutine function) for the supervised tasks of `app` (an esp32gate.app.App, whose
    gate exists once it has started), from the board config's "sync" entry `sc` (None if it is not
    a map)."""
    if not isinstance(sc, dict):
        return None
    io = io_from_config(sc)
    return ("sync", lambda: serve(app.gate, io))
