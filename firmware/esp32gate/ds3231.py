"""DS3231 battery-backed RTC on I2C (address 0x68): keeps time across a power loss.

Registers (Maxim DS3231 datasheet): 0x00-0x06 seconds, minutes, hours, weekday (1-7), date,
month (bit 7: century), year, all BCD; 0x0F status, bit 7 OSF (oscillator-stop flag): set when
the oscillator stopped (battery flat or removed, first power-up), so the time it holds is not to
be believed until it is set again. Setting the time clears OSF. 24-hour mode is written; 12-hour
mode is read correctly too. Years 2000-2199 (the century bit).
"""
from esp32gate import rtc

ADDR = 0x68
REG_TIME = 0x00
REG_STATUS = 0x0F
OSF = 0x80


def _bcd(b):
    return (b >> 4) * 10 + (b & 15)


def _tobcd(v):
    return ((v // 10) << 4) | (v % 10)


class DS3231:
    def __init__(self, i2c, addr=ADDR):
        self.i2c = i2c
        self.addr = addr

    def stopped(self):
        """True if the oscillator stopped since the time was last set (OSF): time not trustworthy."""
        return bool(self.i2c.readfrom_mem(self.addr, REG_STATUS, 1)[0] & OSF)

    def unix(self):
        """The time it holds, as Unix seconds."""
        r = self.i2c.readfrom_mem(self.addr, REG_TIME, 7)
        h = r[2]
        if h & 0x40:  # 12-hour mode: bit 5 is PM
            hh = _bcd(h & 0x1F) % 12 + (12 if h & 0x20 else 0)
        else:
            hh = _bcd(h & 0x3F)
        y = 2000 + _bcd(r[6]) + (100 if r[5] & 0x80 else 0)
        return rtc.unix_from_tuple((y, _bcd(r[5] & 0x1F), _bcd(r[4] & 0x3F), 0, hh, _bcd(r[1] & 0x7F),
                                    _bcd(r[0] & 0x7F)))

    def set_unix(self, t):
        """Set it to Unix seconds t (signed time) and clear OSF."""
        y, m, d, wd, hh, mm, ss, _ = rtc.datetime_tuple(t)
        cent = 0x80 if y >= 2100 else 0
        self.i2c.writeto_mem(self.addr, REG_TIME, bytes([_tobcd(ss), _tobcd(mm), _tobcd(hh), wd + 1, _tobcd(d),
                                                         _tobcd(m) | cent, _tobcd(y % 100)]))
        st = self.i2c.readfrom_mem(self.addr, REG_STATUS, 1)[0]
        self.i2c.writeto_mem(self.addr, REG_STATUS, bytes([st & 0x7F]))


def from_config(sec, i2c_cls=None, pin_cls=None):
    """The DS3231 of a board config's `rtc` section ({"type": "ds3231", "i2c": 0, "scl": 22,
    "sda": 21})."""
    if i2c_cls is None:
        from machine import I2C as i2c_cls
    if pin_cls is None:
        from machine import Pin as pin_cls
    return DS3231(i2c_cls(sec.get("i2c", 0), scl=pin_cls(sec["scl"]), sda=pin_cls(sec["sda"]), freq=100000),
                  sec.get("addr", ADDR))
