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
    """The gate's clock: port time plus a correction, never below `floor` (the last time the
    gate knew; offgate.timekeep). `setter(t)`, when given, sets the hardware clock to Unix time t
    (the ESP32 RTC: esp32gate.rtc.set_unix_time); then the correction is 0. `source_name` names a
    hardware source that was trusted at boot ("ds3231")."""

    def __init__(self, offset=0, source=unix_now, setter=None):
        self.offset = offset
        self._source = source
        self.setter = setter
        self.floor = 0
        self.source_name = None

    def now_raw(self):
        """Port time plus the correction, the floor not applied."""
        return self._source() + self.offset

    def now(self):
        t = self._source() + self.offset
        return t if t >= self.floor else self.floor

    def set(self, t):
        """Set the clock to Unix time t (signed time)."""
        if self.setter is not None:
            self.setter(t)
            self.offset = 0
            if abs(self._source() - t) <= 2:
                return
        self.offset += t - (self._source() + self.offset)


class ClockTrust:
    """Whether the gate's clock is trusted, since when (gate time), from which source ("signed",
    "ds3231", "rtc", or "floor" when it lost its time), and the policy until it is trusted again.
    Kept small: it lives beside the gate; boot, signed time and saving are offgate.timekeep."""

    def __init__(self, path, cfg):
        self.path = path
        self.policy = cfg.get("untrusted_time_policy", "degraded")
        self.max_s = cfg.get("degraded_max_s", 86400)
        self.ahead_s = cfg.get("degraded_ahead_s", 86400)
        self.trusted = True
        self.source = "rtc"
        self.since = None
        self.floor = 0
        self.boot_floor = 0  # the floor at an untrusted boot: degraded mode is counted from it

    def mode(self, now):
        """0: trusted; -1: refuse (CLOCK_UNTRUSTED); n > 0: degraded, a code's iat may be n s ahead."""
        if self.trusted:
            return 0
        if self.policy == "degraded" and now - self.boot_floor < self.max_s:
            return self.ahead_s
        return -1

    def report(self, st, now):
        """Add clock_* fields to a status dict."""
        m = self.mode(now)
        st["clock_trusted"] = self.trusted
        st["clock_source"] = self.source
        st["clock_since"] = self.since
        st["clock_floor"] = self.floor
        st["clock_mode"] = "trusted" if m == 0 else ("degraded" if m > 0 else "refuse")


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
