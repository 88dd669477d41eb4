"""Hardware watchdog (machine.WDT), fed only while the main loop is alive.

`run()` is an asyncio task: it feeds the WDT every `period_ms` as long as every registered heartbeat
(a function returning the ticks_ms of its task's last sign of life: the scanner's last UART poll,
the actuator's last tick) is younger than `stale_ms`. A stuck loop cannot run the feeder at all; a
dead or wedged task stops the feeding; either way the chip resets and the pins go inactive.
Once started the ESP32 WDT cannot be stopped: safe mode never starts it.

`timeout_ms` must exceed the longest blocking stretch of the loop: one scan (~0.2-0.75 s for the
signature checks on an ESP32) plus a GC pass (~100 ms with PSRAM); the board configs use 8 s.
"""
import time

import asyncio  # MicroPython >= 1.23 (what mpy v6 needs) has it under this name


class Watchdog:
    def __init__(self, timeout_ms, wdt_cls=None, ticks_ms=None):
        if wdt_cls is None:
            from machine import WDT as wdt_cls
        self.timeout_ms = timeout_ms
        self.stale_ms = timeout_ms // 2
        self.period_ms = max(100, timeout_ms // 8)
        self._ticks = ticks_ms or time.ticks_ms
        self.beats = []  # (name, function -> ticks_ms of last life sign)
        self.feeds = 0
        self.starved = 0
        self.stale = None
        self.wdt = wdt_cls(timeout=timeout_ms)

    def watch(self, name, last_life):
        self.beats.append((name, last_life))

    def healthy(self, now=None):
        if now is None:
            now = self._ticks()
        for name, last in self.beats:
            if time.ticks_diff(now, last()) > self.stale_ms:
                self.stale = name
                return False
        self.stale = None
        return True

    def feed(self):
        self.wdt.feed()
        self.feeds += 1

    async def run(self):
        while True:
            if self.healthy():
                self.feed()
            else:
                self.starved += 1
            await asyncio.sleep_ms(self.period_ms)
