"""The ESP32 RTC set from signed time (Unix seconds), whatever the port's epoch.

`machine.RTC().datetime()` takes calendar fields (year, month, day, weekday, hours, minutes,
seconds, subseconds) - weekday 0 = Monday. Those are computed here from Unix seconds with integer
arithmetic (days since 1970, civil-from-days), not with time.gmtime, whose argument is seconds
since 2000 on the ESP32 and since 1970 on the unix port. After the RTC is set, time.time() on the
ESP32 counts from 2000 again and offgate.clock adds the 946684800 s offset back.

32-bit: Unix seconds exceed 2^30 (a big int on the ESP32); only the divmod by 86400 touches them,
everything after is small ints. The RTC survives a reset, not a power loss: `plausible()` tells
the app whether the clock can be believed at boot (a gate with a 2000-01-01 clock must be
given signed time before its decisions mean anything; the sync link does that).
"""
from offgate.timekeep import MAX_UNIX, MIN_UNIX  # noqa: F401  (the bounds have one home)

EPOCH_2000 = 946684800   # Unix seconds at 2000-01-01T00:00:00Z (ESP32 port epoch)


def civil_from_days(z):
    """(year, month, day) of day number z (days since 1970-01-01), proleptic Gregorian."""
    z += 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return (y + 1 if m <= 2 else y), m, d


def days_from_civil(y, m, d):
    y -= 1 if m <= 2 else 0
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def datetime_tuple(t):
    """RTC.datetime() tuple for Unix seconds t."""
    days, secs = divmod(t, 86400)
    days = int(days)
    secs = int(secs)
    y, m, d = civil_from_days(days)
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    return (y, m, d, weekday, secs // 3600, (secs // 60) % 60, secs % 60, 0)


def unix_from_tuple(dt):
    """Unix seconds from an RTC.datetime() tuple."""
    y, m, d, _wd, hh, mm, ss = dt[:7]
    return days_from_civil(y, m, d) * 86400 + hh * 3600 + mm * 60 + ss


def set_unix_time(t, rtc=None, clock=None):
    """Set the RTC to Unix time t (from a signed time message). The clock's correction then is 0:
    the time is in the RTC now. Returns the tuple written."""
    if not isinstance(t, int) or isinstance(t, bool) or t < MIN_UNIX or t >= MAX_UNIX:
        raise ValueError("time %r outside %d..%d" % (t, MIN_UNIX, MAX_UNIX))
    if rtc is None:
        from machine import RTC
        rtc = RTC()
    dt = datetime_tuple(t)
    rtc.datetime(dt)
    if clock is not None:
        clock.offset = 0
    return dt


def plausible(now):
    return MIN_UNIX <= now < MAX_UNIX
