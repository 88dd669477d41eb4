"""A fake `machine` module for running the ESP32 adapters on the MicroPython unix port.

Put tests/fakes first on MICROPYPATH: `machine` is an extensible built-in, so this file wins.
Everything driven is recorded on TIMELINE as (ticks_ms, kind, id, value); HOOKS are called with
each event as it happens (a test can look at the flash at the moment the relay closes).
"""
import time

TIMELINE = []
HOOKS = []
RECORD = [True]

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5
_reset_cause = [PWRON_RESET]


def _event(kind, ident, value):
    ev = (time.ticks_ms(), kind, ident, value)
    if RECORD[0]:
        TIMELINE.append(ev)
    for h in HOOKS:
        h(ev)


def clear():
    TIMELINE.clear()
    HOOKS.clear()
    Pin.levels.clear()
    Pin.inputs.clear()
    Pin.modes.clear()
    UART.instances.clear()
    UART.fail_any_after[0] = None
    WDT.instances.clear()
    RTC.state.clear()
    I2C.devices.clear()


def events(kind=None, ident=None):
    return [e for e in TIMELINE if (kind is None or e[1] == kind) and (ident is None or e[2] == ident)]


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_RISING = 1
    IRQ_FALLING = 2
    levels = {}   # driven output levels
    inputs = {}   # levels the test puts on input pins
    modes = {}

    def __init__(self, ident, mode=-1, pull=-1, value=None):
        self.id = ident
        self.mode = mode
        self.pull = pull
        Pin.modes[ident] = mode
        _event("pin_mode", ident, (mode, pull))
        if value is not None:
            self.value(value)

    def value(self, v=None):
        if v is None:
            if self.mode == Pin.OUT:
                return Pin.levels.get(self.id, 0)
            if self.id in Pin.inputs:
                return Pin.inputs[self.id]
            return 1 if self.pull == Pin.PULL_UP else 0
        v = 1 if v else 0
        Pin.levels[self.id] = v
        _event("pin", self.id, v)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def __call__(self, v=None):
        return self.value(v)


class UART:
    instances = {}
    fail_any_after = [None]  # every UART's any() raises OSError after this many calls (None: never)

    def __init__(self, ident, baudrate=9600, tx=None, rx=None, rxbuf=256, timeout=0, timeout_char=0, **kw):
        self.id = ident
        self.baudrate = baudrate
        self.tx = tx
        self.rx = rx
        self.rxbuf = rxbuf
        self.rx_data = bytearray()
        self.tx_data = bytearray()
        self.overflow = 0
        self.responder = None   # fn(uart, written bytes): a fake GM65 answering commands
        self.fail_next = None   # an exception the next any()/read() raises (once)
        self.any_calls = 0
        UART.instances[ident] = self
        _event("uart_init", ident, dict(baudrate=baudrate, tx=tx, rx=rx, rxbuf=rxbuf))

    def init(self, baudrate=None, **kw):
        if baudrate is not None:
            self.baudrate = baudrate
        _event("uart_baud", self.id, self.baudrate)

    # test side
    def feed(self, data):
        """Bytes arriving on RX; what does not fit the rx buffer is lost, as on the chip."""
        room = self.rxbuf - len(self.rx_data)
        if len(data) > room:
            self.overflow += len(data) - room
            data = data[:room]
        self.rx_data.extend(data)

    def _maybe_fail(self):
        if self.fail_next is not None:
            e = self.fail_next
            self.fail_next = None
            raise e

    # device side
    def any(self):
        self._maybe_fail()
        self.any_calls += 1
        if UART.fail_any_after[0] is not None and self.any_calls > UART.fail_any_after[0]:
            raise OSError(5)
        return len(self.rx_data)

    def read(self, n=None):
        self._maybe_fail()
        if not self.rx_data:
            return None
        if n is None:
            n = len(self.rx_data)
        out = bytes(self.rx_data[:n])
        self.rx_data = self.rx_data[n:]
        return out

    def readinto(self, buf, n=None):
        d = self.read(n or len(buf))
        if not d:
            return None
        buf[:len(d)] = d
        return len(d)

    def write(self, data):
        data = bytes(data)
        self.tx_data.extend(data)
        _event("uart_tx", self.id, data)
        if self.responder is not None:
            self.responder(self, data)
        return len(data)


class WDT:
    instances = []

    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout
        self.feeds = 0
        self.last_feed = None
        WDT.instances.append(self)
        _event("wdt_start", 0, timeout)

    def feed(self):
        self.feeds += 1
        self.last_feed = time.ticks_ms()


class RTC:
    state = {}

    def __init__(self, id=0):
        pass

    def datetime(self, dt=None):
        if dt is None:
            return RTC.state.get("dt", (2000, 1, 1, 5, 0, 0, 0, 0))
        RTC.state["dt"] = tuple(dt)
        _event("rtc_set", 0, tuple(dt))


class I2C:
    """I2C bus with fake devices: I2C.devices[addr] = bytearray of its registers (a DS3231 at
    0x68 in the tests). A missing device raises OSError(19) (ENODEV), as the ESP32 port does."""
    devices = {}

    def __init__(self, id=0, scl=None, sda=None, freq=400000):
        self.id = id

    def _dev(self, addr):
        d = I2C.devices.get(addr)
        if d is None:
            raise OSError(19)
        return d

    def readfrom_mem(self, addr, reg, n):
        d = self._dev(addr)
        return bytes(d[reg:reg + n])

    def writeto_mem(self, addr, reg, buf):
        d = self._dev(addr)
        d[reg:reg + len(buf)] = buf
        _event("i2c_write", addr, (reg, bytes(buf)))


class ResetCalled(Exception):
    pass


def reset():
    _event("reset", 0, None)
    raise ResetCalled()


def soft_reset():
    reset()


def reset_cause():
    return _reset_cause[0]


def unique_id():
    return b"\x24\x0a\xc4\x00\x00\x01"


def freq(f=None):
    return 240000000
