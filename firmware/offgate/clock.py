"""Gate time as Unix seconds, whatever the port's epoch.

Everything on the wire is Unix time (1970). MicroPython on the ESP32 counts from 2000, the unix
port from 1970: the offset is found once from gmtime(0), not assumed. Unix times are above 2^30,
so on the ESP32 they are big ints, not small ints: correct, just not free; keep them off hot loops.
"""
import time

try:
    EPOCH_OFFSET = 946684800 if time.gmtime(0)[0] == 2000 else 0
except (AttributeError, OverflowError):
    EPOCH_OFFSET = 0


def unix_now():
    return int(time.time()) + EPOCH_OFFSET


class Clock:
    """The gate's clock: port time plus a correction (set from signed time at sync)."""

    def __init__(self, offset=0, source=unix_now):
        self.offset = offset
        self._source = source

    def now(self):
        return self._source() + self.offset


if hasattr(time, "ticks_us"):
    def ticks_us():
        return time.ticks_us()

    def elapsed_us(start):
        return time.ticks_diff(time.ticks_us(), start)

    ticks_ms = time.ticks_ms
    ticks_diff = time.ticks_diff
else:  # CPython
    def ticks_us():
        return int(time.perf_counter() * 1000000)

    def elapsed_us(start):
        return ticks_us() - start

    def ticks_ms():
        return int(time.perf_counter() * 1000)

    def ticks_diff(a, b):
        return a - b
