# Helpers for the ESP32 adapter cases (MicroPython, fake machine on the path).
import json
import os
import random
import time

try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

import machine


def scenario():
    """The scenario the host wrote: codes, credential id, trust store, board config."""
    base = os.getenv("OFFGATE_SCENARIO")
    with open(base + "/scenario.json") as f:
        sc = json.load(f)
    sc["dir"] = base
    return sc


def _copy(src, dst):
    with open(src, "rb") as f:
        data = f.read()
    with open(dst, "wb") as f:
        f.write(data)


def fresh_cfg(sc, **over):
    """A board config (validated) with a fresh state dir holding the scenario's trust/deny files."""
    from offgate import boardcfg
    d = "/tmp/offgate-esp32-%08x" % random.getrandbits(32)
    os.mkdir(d)
    _copy(sc["dir"] + "/trust.cbor", d + "/trust.cbor")
    _copy(sc["dir"] + "/deny.bin", d + "/deny.bin")
    raw = dict(sc["board"])
    raw["state_dir"] = d
    raw["log"] = dict(raw["log"])
    raw["log"]["dir"] = d + "/log"
    raw["log"]["echo"] = False
    raw["relay_ms"] = 100  # short pulses keep the cases fast
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(raw.get(k), dict):
            s = dict(raw[k])
            s.update(v)
            raw[k] = s
        else:
            raw[k] = v
    cfg = boardcfg.validate(raw)
    from offgate import unload
    unload("offgate.boardcfg")  # as main() does: the checker is not kept after boot
    return cfg


class Out:
    """The gate's report stream, parsed."""

    def __init__(self):
        self.recs = []

    def write(self, text):
        for line in text.splitlines():
            if line:
                self.recs.append(json.loads(line))

    def flush(self):
        pass

    def scans(self):
        return [r for r in self.recs if r.get("event") == "scan"]

    def events(self, name):
        return [r for r in self.recs if r.get("event") == name]


def make_app(cfg, out=None, gm65=None, uart_id=None):
    from esp32gate.app import App
    from esp32gate.scanner import open_uart
    machine.clear()
    out = out or Out()
    uart = open_uart(cfg["scanner"], machine.UART)
    if gm65 is not None:
        gm65(uart)
    app = App(cfg, out, uart=uart, pin_cls=machine.Pin, wdt_cls=machine.WDT)
    return app, out


async def wait_for(pred, timeout_ms=8000):
    t0 = time.ticks_ms()
    while not pred():
        if time.ticks_diff(time.ticks_ms(), t0) > timeout_ms:
            raise AssertionError("timed out")
        await asyncio.sleep_ms(5)


async def feed(app, data, piece=512):
    """Bytes onto the scanner UART at a pace the 1 KB rx buffer keeps up with (as a 9600-baud line does)."""
    for i in range(0, len(data), piece):
        app.uart.feed(data[i:i + piece])
        if i + piece < len(data):
            await asyncio.sleep_ms(20)


async def scan(app, out, data, expect=1):
    """Put bytes on the scanner UART; wait for `expect` more scan reports; return them."""
    n = len(out.scans())
    await feed(app, data)
    await wait_for(lambda: len(out.scans()) >= n + expect)
    return out.scans()[n:]


def run_app(app, body, settle_ms=0):
    """Start the app, run the test body (a coroutine function taking the app), stop the tasks."""
    result = []

    async def main():
        await app.start()
        tasks = app.spawn()
        try:
            result.append(await body(app))
            if settle_ms:
                await asyncio.sleep_ms(settle_ms)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.sleep_ms(0)

    asyncio.run(main())
    return result[0] if result else None


def level(pin):
    return machine.Pin.levels.get(pin)
