"""Relay, LEDs and buzzer on GPIO pins, driven by one asyncio task.

`open(ms)` and `deny(reason)` return at once (the gate calls them between deciding and reporting):
they set the pins' first step and a deadline; `run()` (an asyncio task) advances each output's
pattern every `tick_ms`. Every output is created INACTIVE (relay first), before anything else.
A second OPEN while the relay is pulsing extends the pulse; a DENY never touches the relay.
With a passage sensor configured, the first passage during a pulse ends it (one OPEN, one rider).

Failure modes: if `run()` dies it is restarted by the app's supervisor and carries on from the
deadlines; if the event loop stalls, the watchdog (fed only by a live loop) resets the chip, and
a reset returns every pin to input, i.e. relay off (the relay driver needs its pull resistor).
"""
import time

import asyncio  # MicroPython >= 1.23 (what mpy v6 needs) has it under this name

from offgate import reasons as R

OPEN_BEEP = ((1, 80),)
DENY_BEEP = ((1, 150), (0, 100), (1, 150))
ERROR_BEEP = ((1, 600),)
DENY_RED = ((1, 1000),)
NOISE_RED = ((1, 200),)
ERROR_RED = ((1, 100), (0, 100), (1, 100), (0, 100), (1, 100), (0, 100), (1, 400))
NOISE = (R.EMPTY, R.NOT_TEXT, R.LINE_TOO_LONG)


class Output:
    """One output pin playing a pattern of (level, ms) steps; inactive when the pattern ends."""

    def __init__(self, pin_cls, pin_id, active):
        self.active = active
        self.pin = None
        if pin_id is not None:
            self.pin = pin_cls(pin_id, pin_cls.OUT, value=1 - active)  # inactive from the first moment
        self.steps = None
        self.i = 0
        self.until = 0

    def set(self, on):
        if self.pin is not None:
            self.pin.value(self.active if on else 1 - self.active)

    def start(self, steps, now):
        self.steps = steps
        self.i = 0
        self.set(steps[0][0])
        self.until = time.ticks_add(now, steps[0][1])

    def tick(self, now):
        while self.steps is not None and time.ticks_diff(now, self.until) >= 0:
            self.i += 1
            if self.i >= len(self.steps):
                self.stop()
                return
            level, ms = self.steps[self.i]
            self.set(level)
            self.until = time.ticks_add(self.until, ms)

    def stop(self):
        self.steps = None
        self.set(0)

    def busy(self):
        return self.steps is not None


class Esp32Actuator:
    def __init__(self, cfg, pin_cls=None, ticks_ms=None):
        if pin_cls is None:
            from machine import Pin as pin_cls
        self._ticks = ticks_ms or time.ticks_ms
        relay = cfg["relay"]
        self.relay = Output(pin_cls, relay["pin"], relay["active"])  # first: the relay must never float on
        leds = cfg["leds"]
        self.green = Output(pin_cls, leds["green"], leds["active"])
        self.red = Output(pin_cls, leds["red"], leds["active"])
        bz = cfg.get("buzzer") or {}
        self.buzzer = Output(pin_cls, bz.get("pin"), bz.get("active", 1))
        self.outputs = (self.relay, self.green, self.red, self.buzzer)
        sensor = cfg.get("sensor") or {}
        self.sensor = None
        if sensor.get("pin") is not None:
            pull = {"up": pin_cls.PULL_UP, "down": pin_cls.PULL_DOWN}.get(sensor.get("pull"))
            self.sensor = pin_cls(sensor["pin"], pin_cls.IN, pull) if pull is not None else \
                pin_cls(sensor["pin"], pin_cls.IN)
            self.sensor_active = sensor.get("active", 1)
            self._sensor_was = False
        self.pulses = 0
        self.denies = 0
        self.errors = 0
        self.passages = 0
        self.ticks = 0
        self.last_tick = self._ticks()

    # -- the gate's actuator interface (must not block) -------------------------------------
    def open(self, ms):
        now = self._ticks()
        self.pulses += 1
        self.red.stop()
        self.relay.start(((1, ms),), now)
        self.green.start(((1, ms),), now)
        self.buzzer.start(OPEN_BEEP, now)

    def deny(self, reason):
        now = self._ticks()
        self.denies += 1
        if reason == R.INTERNAL_ERROR:
            self.red.start(ERROR_RED, now)
            self.buzzer.start(ERROR_BEEP, now)
        elif reason in NOISE:
            self.red.start(NOISE_RED, now)  # noise: no buzzer
        else:
            self.red.start(DENY_RED, now)
            if not self.relay.busy():  # don't sound a deny over a rider who is passing
                self.buzzer.start(DENY_BEEP, now)

    def error(self):
        """The gate itself is in trouble (a task crashed): red blinks, long beep; relay untouched."""
        now = self._ticks()
        self.errors += 1
        self.red.start(ERROR_RED, now)
        self.buzzer.start(ERROR_BEEP, now)

    def all_off(self):
        for o in self.outputs:
            o.stop()

    def safe_mode(self):
        """Safe mode: relay off, red on steady (no task runs to blink it)."""
        self.all_off()
        self.red.set(1)

    # -- the task -----------------------------------------------------------------------------
    def tick(self, now=None):
        if now is None:
            now = self._ticks()
        if self.sensor is not None:
            on = self.sensor.value() == self.sensor_active
            if on and not self._sensor_was and self.relay.busy():
                self.passages += 1
                self.relay.stop()  # one OPEN, one passage
                self.green.stop()
            self._sensor_was = on
        for o in self.outputs:
            o.tick(now)
        self.ticks += 1
        self.last_tick = now

    async def run(self, tick_ms=10):
        while True:
            self.tick()
            await asyncio.sleep_ms(tick_ms)

    def status(self):
        return {"pulses": self.pulses, "denies": self.denies, "errors": self.errors, "passages": self.passages}
