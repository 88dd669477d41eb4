"""Gate time across resets and power loss (offgate.clock.ClockTrust holds the state).

The gate's clock (offgate.clock.Clock) is the port's clock (the ESP32 RTC) plus a correction.
Signed time from a sync (sync/admin.py op_set_time) sets it: on the ESP32 the RTC itself is set
(Clock.setter: esp32gate.rtc, and a DS3231 when the board has one), on the simulator the
correction; either way it is saved in CLOCK_STATE, so a reset keeps the time it was given.

The floor: the last time the gate knew (signed time it was given, the newest operation-log
record, the point a sync acknowledged). Its clock never reads below it; signed time more than
FLOOR_SLACK_S below it, or outside MIN_UNIX..MAX_UNIX, is refused unless the root-signed time
message says `force`.

At boot (`boot()`), the clock is
- trusted, source "signed" (or "ds3231" when the app set it from a battery-backed RTC whose
  oscillator never stopped): port clock + saved correction is plausible and at or above the
  floor: a reset, not a power loss;
- trusted, source "rtc": no signed time yet, a plausible port clock at or above the floor (a
  fresh gate whose RTC was set at deploy; the simulator on the host clock);
- NOT trusted, source "floor": the port clock is below the floor or implausible (the ESP32 RTC
  restarts at 2000-01-01 after a power loss). The clock runs on from the floor and
  cfg["untrusted_time_policy"] applies (docs/security.md "Time"):
    "refuse"   every code is refused with CLOCK_UNTRUSTED until signed time arrives;
    "degraded" for at most degraded_max_s of gate time, a code's own iat stands in for the lost
               clock when it lies in [clock - max_age - skew, clock + degraded_ahead_s]
               (Verifier.decide's `ahead`); after that, as "refuse".
Loaded at boot and by a sync session, unloaded after: none of it runs per scan.
"""
import json

from offgate.statedir import CLOCK_STATE, atomic_write

MIN_UNIX = 1735689600    # 2025-01-01: any earlier gate time means the clock lost its time
MAX_UNIX = 4102444800    # 2100-01-01
FLOOR_SLACK_S = 3600     # signed time this far below the floor is still taken (a clock that ran fast)


def plausible(t):
    return MIN_UNIX <= t < MAX_UNIX


def _int(v):
    return v if isinstance(v, int) and not isinstance(v, bool) else None


MAX_STATE_BYTES = 512


def _read(path):
    """(state dict, damaged?)"""
    try:
        import os
        if os.stat(path)[6] > MAX_STATE_BYTES:
            return {}, True
        with open(path) as f:
            raw = f.read()
    except OSError as e:
        return {}, bool(e.args and e.args[0] != 2)
    except Exception:  # not text (UnicodeError)
        return {}, True
    try:
        st = json.loads(raw)
    except Exception:
        return {}, True
    return (st, False) if isinstance(st, dict) else ({}, True)


def boot(ct, clock, floor_hint=0):
    """Decide at boot whether `clock` can be believed; fills ClockTrust `ct`, sets clock.floor
    (and clock.offset from the saved correction when the clock has no hardware setter). Returns
    notes for the boot report."""
    notes = []
    st, damaged = _read(ct.path)
    if damaged:
        notes.append("clock: %s damaged or unreadable; ignored" % CLOCK_STATE)
    off = _int(st.get("offset"))
    if off is not None and clock.setter is None:
        clock.offset = off  # the simulator: the correction is the time it was given
    floor = max(_int(st.get("floor")) or 0, floor_hint or 0)
    if floor >= MAX_UNIX:
        notes.append("clock: floor %d implausible; ignored" % floor)
        floor = 0
    ct.floor = floor
    src = st.get("source") if st.get("source") in ("signed", "ds3231") else None
    now = clock.now_raw()
    if plausible(now) and now >= floor:
        if clock.source_name == "ds3231":
            ct.source, ct.since = "ds3231", now
        else:
            ct.source = src or "rtc"
            ct.since = (_int(st.get("since")) or now) if src else now
    else:
        ct.trusted = False
        ct.source = "floor"
        ct.since = None
        ct.boot_floor = floor if floor >= MIN_UNIX else MIN_UNIX
        clock.offset += ct.boot_floor - now  # run on from the floor, never below it
        if ct.policy == "refuse":
            pol = "every code refused (CLOCK_UNTRUSTED) until signed time arrives"
        else:
            pol = "degraded mode for at most %d s (a code's iat up to %d s ahead of the floor clock), then refused" % (
                ct.max_s, ct.ahead_s)
        notes.append("clock: lost its time (port clock %d, floor %d): %s" % (now, floor, pol))
    clock.floor = floor
    return notes


def check_signed(ct, t, force=False):
    """None if signed time t may be taken, else why it is refused."""
    if not isinstance(t, int) or isinstance(t, bool):
        return "signed time is not an integer"
    if force:
        return None if 0 < t < MAX_UNIX else "signed time outside 1..%d even when forced" % MAX_UNIX
    if not plausible(t):
        return "signed time %d outside %d..%d (force to override)" % (t, MIN_UNIX, MAX_UNIX)
    if t < ct.floor - FLOOR_SLACK_S:
        return "signed time %d below the gate's floor %d (force to override)" % (t, ct.floor)
    return None


def set_signed(ct, clock, t):
    """Set the clock to signed time t (the RTC on a device), trust it, save. Returns the drift (s)."""
    drift = t - clock.now()
    clock.floor = 0
    clock.set(t)
    ct.trusted = True
    ct.source = "signed"
    ct.since = t
    ct.floor = t
    clock.floor = t
    save(ct, clock)
    return drift


def raise_floor(ct, clock, t):
    """The gate knew time t (a sync acknowledged records up to it): the floor rises and is saved."""
    if isinstance(t, int) and t > ct.floor and plausible(t) and t <= clock.now():
        ct.floor = t
        clock.floor = t
        save(ct, clock)


def save(ct, clock):
    """Persist atomically; never raises (False: the previous state stays)."""
    st = {"offset": clock.offset, "floor": ct.floor, "source": ct.source, "since": ct.since}
    try:
        atomic_write(ct.path, json.dumps(st).encode())
        return True
    except Exception:
        return False
