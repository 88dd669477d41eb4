"""Board configuration: which pins, UART and memory a gate's hardware uses, checked by name.

A board config (board_configs/<board>.json, installed on the gate as gate.json) is a gate config
(offgate.config.SCHEMA) plus board sections. `validate(raw)` checks both and raises ConfigError
naming every wrong or missing value ("scanner.rx: GPIO 6 is wired to the SPI flash"), so a gate
with a wrong value refuses to start and says why, instead of driving the wrong pin.

Runs on the gate at boot (MicroPython) and on the host (`offgate board validate FILE`, CPython):
pure logic, no `machine`.
"""
from offgate import config
from offgate.config import ConfigError

CHIPS = ("esp32", "esp32s3", "unix")
ARCH = {"esp32": "xtensawin", "esp32s3": "xtensawin", "unix": None}
BAUDS = (9600, 14400, 19200, 38400, 57600, 115200)
MIN_RXBUF = 600          # the biggest offgate code is ~540 characters (QR version 12-M) plus CR LF
MAX_HEAP_NO_PSRAM = 128  # KiB: what a WROOM ESP32 (no PSRAM) gives MicroPython at best
MAX_RELAY_MS = 10000


def _esp32_pins():
    exist = [p for p in range(40) if p not in (20, 24, 28, 29, 30, 31)]
    return {
        "exist": exist,
        "flash": (6, 7, 8, 9, 10, 11),
        "input_only": (34, 35, 36, 37, 38, 39),
        "strapping": (0, 2, 5, 12, 15),
        "psram": (16, 17),        # WROVER modules: PSRAM clock/chip select
        "usb": (),
    }


def _esp32s3_pins():
    return {
        "exist": list(range(22)) + list(range(26, 49)),
        "flash": (26, 27, 28, 29, 30, 31, 32),
        "input_only": (),
        "strapping": (0, 3, 45, 46),
        "psram": (33, 34, 35, 36, 37),  # octal PSRAM modules (N8R8)
        "usb": (19, 20),
    }


def pin_table(chip):
    if chip == "esp32":
        return _esp32_pins()
    if chip == "esp32s3":
        return _esp32s3_pins()
    return None  # unix (simulator): any non-negative number names a virtual pin


class _Checker:
    def __init__(self, raw):
        self.raw = raw
        self.bad = []
        self.chip = raw.get("chip")
        self.pins = pin_table(self.chip) if self.chip in CHIPS else None
        self.psram = raw.get("psram") is True
        self.used = {}  # gpio -> setting name

    def err(self, name, msg):
        self.bad.append(name + ": " + msg)

    def section(self, name, required=True):
        s = self.raw.get(name)
        if s is None:
            if required:
                self.err(name, "missing")
            return None
        if not isinstance(s, dict):
            self.err(name, "expected an object, got %r" % (s,))
            return None
        return s

    def integer(self, name, v, low, high):
        if not isinstance(v, int) or isinstance(v, bool):
            self.err(name, "expected int, got %r" % (v,))
            return None
        if v < low or v > high:
            self.err(name, "must be %d..%d, got %d" % (low, high, v))
            return None
        return v

    def get_int(self, sec, sname, key, low, high, default=None):
        name = sname + "." + key if sname else key
        if key not in sec:
            if default is None:
                self.err(name, "missing")
            return default
        return self.integer(name, sec[key], low, high)

    def get_bool(self, sec, sname, key, default=None):
        name = sname + "." + key if sname else key
        if key not in sec:
            if default is None:
                self.err(name, "missing")
            return default
        v = sec[key]
        if not isinstance(v, bool):
            self.err(name, "expected true or false, got %r" % (v,))
            return None
        return v

    def level(self, sec, sname, key="active"):
        name = sname + "." + key
        if key not in sec:
            self.err(name, "missing (1 = active high, 0 = active low)")
            return None
        v = sec[key]
        if v not in (0, 1) or isinstance(v, bool):
            self.err(name, "must be 0 (active low) or 1 (active high), got %r" % (v,))
            return None
        return v

    def pin(self, sec, sname, key, output, optional=False, allow_strapping=True):
        name = sname + "." + key
        if key not in sec:
            if not optional:
                self.err(name, "missing")
            return None
        v = sec[key]
        if v is None:
            if not optional:
                self.err(name, "missing (null)")
            return None
        if not isinstance(v, int) or isinstance(v, bool):
            self.err(name, "expected a GPIO number, got %r" % (v,))
            return None
        if v < 0:
            self.err(name, "GPIO must be >= 0, got %d" % v)
            return None
        t = self.pins
        if t is not None:
            if v not in t["exist"]:
                self.err(name, "GPIO %d does not exist on %s" % (v, self.chip))
                return None
            if v in t["flash"]:
                self.err(name, "GPIO %d is wired to the SPI flash" % v)
                return None
            if self.psram and v in t["psram"]:
                self.err(name, "GPIO %d is used by the PSRAM on this module" % v)
                return None
            if v in t["usb"]:
                self.err(name, "GPIO %d is the USB D-/D+ line (console)" % v)
                return None
            if output and v in t["input_only"]:
                self.err(name, "GPIO %d is input-only, cannot drive an output" % v)
                return None
            if not allow_strapping and v in t["strapping"]:
                self.err(name, "GPIO %d is a strapping pin (driven/floating during reset)" % v)
                return None
        other = self.used.get(v)
        if other is not None:
            self.err(name, "GPIO %d already used by %s" % (v, other))
            return None
        self.used[v] = name
        return v


def check_board(raw):
    """List of 'name: problem' strings for the board sections of `raw` (empty when all is well)."""
    if not isinstance(raw, dict):
        return ["config must be a JSON object"]
    c = _Checker(raw)
    if not isinstance(raw.get("board"), str) or not raw.get("board"):
        c.err("board", "missing (a board name such as esp32_devkitc)")
    chip = raw.get("chip")
    if chip not in CHIPS:
        c.err("chip", "must be one of %s, got %r" % (", ".join(CHIPS), chip))
    elif "arch" in raw and raw["arch"] != ARCH[chip]:
        c.err("arch", "%s needs %r, got %r" % (chip, ARCH[chip], raw["arch"]))
    psram = c.get_bool(raw, "", "psram")
    heap = c.get_int(raw, "", "heap_kb", 32, 16384)
    if heap is not None and psram is False and chip == "esp32" and heap > MAX_HEAP_NO_PSRAM:
        c.err("heap_kb", "an ESP32 without PSRAM gives at most %d, got %d" % (MAX_HEAP_NO_PSRAM, heap))
    slots = raw.get("replay_slots", 512)
    if heap is not None and isinstance(slots, int) and not isinstance(slots, bool) and slots * 16 * 8 > heap * 1024:
        c.err("replay_slots", "%d slots take %d KB, more than 1/8 of heap_kb %d" % (slots, slots * 16 // 1024, heap))
    rms = raw.get("relay_ms", 500)
    if isinstance(rms, int) and not isinstance(rms, bool) and rms > MAX_RELAY_MS:
        c.err("relay_ms", "at most %d ms, got %d" % (MAX_RELAY_MS, rms))
    c.get_int(raw, "", "watchdog_ms", 2000, 60000)

    s = c.section("scanner")
    if s is not None:
        uart = c.get_int(s, "scanner", "uart", 0, 2)
        if uart == 0 and chip != "unix":
            c.err("scanner.uart", "UART 0 carries the REPL/boot log; use 1 or 2")
        c.pin(s, "scanner", "tx", True)
        c.pin(s, "scanner", "rx", False)
        baud = c.get_int(s, "scanner", "baud", 1200, 921600)
        if baud is not None and baud not in BAUDS:
            c.err("scanner.baud", "GM65 rates are %s, got %d" % ("/".join(str(b) for b in BAUDS), baud))
        c.get_int(s, "scanner", "rxbuf", MIN_RXBUF, 16384)
        probe = s.get("probe", [])
        if not isinstance(probe, list) or any(p not in BAUDS or isinstance(p, bool) for p in probe):
            c.err("scanner.probe", "expected a list of GM65 baud rates, got %r" % (probe,))
        c.get_bool(s, "scanner", "configure", False)
        regs = s.get("registers", [])
        ok = isinstance(regs, list)
        if ok:
            for r in regs:
                if (not isinstance(r, list) or len(r) != 2 or any(not isinstance(x, int) or isinstance(x, bool)
                                                                   for x in r)
                        or not 0 <= r[0] <= 0xFFFF or not 0 <= r[1] <= 0xFF):
                    ok = False
        if not ok:
            c.err("scanner.registers", "expected a list of [address 0..65535, value 0..255], got %r" % (regs,))
        c.get_int(s, "scanner", "debounce_ms", 0, 10000, 1500)
        c.get_int(s, "scanner", "poll_ms", 1, 100, 10)

    s = c.section("relay")
    if s is not None:
        c.pin(s, "relay", "pin", True, allow_strapping=False)
        c.level(s, "relay")
    s = c.section("leds")
    if s is not None:
        c.pin(s, "leds", "green", True)
        c.pin(s, "leds", "red", True)
        c.level(s, "leds")
    s = c.section("buzzer")
    if s is not None:
        c.pin(s, "buzzer", "pin", True, optional=True)
        c.level(s, "buzzer")
    s = c.section("sensor", required=False)
    if s is not None:
        if c.pin(s, "sensor", "pin", False, optional=True) is not None:
            c.level(s, "sensor")
            pull = s.get("pull")
            if pull not in (None, "up", "down"):
                c.err("sensor.pull", "must be \"up\", \"down\" or null, got %r" % (pull,))
    s = c.section("hardening")
    if s is not None:
        c.get_bool(s, "hardening", "detach_repl")
        c.pin(s, "hardening", "safe_pin", False, optional=True)
        c.get_int(s, "hardening", "max_crashes", 1, 100)
        c.get_int(s, "hardening", "stable_s", 5, 86400, 120)
    s = c.section("log")
    if s is not None:
        d = s.get("dir")
        if not isinstance(d, str) or not d:
            c.err("log.dir", "expected a directory path, got %r" % (d,))
        c.get_int(s, "log", "max_kb", 1, 1024)
        c.get_int(s, "log", "files", 1, 8)
        c.get_bool(s, "log", "echo", False)
    s = c.section("rtc", required=False)
    if s is not None:  # a battery-backed RTC (esp32gate.ds3231): keeps time across a power loss
        if s.get("type") != "ds3231":
            c.err("rtc.type", "must be \"ds3231\", got %r" % (s.get("type"),))
        c.get_int(s, "rtc", "i2c", 0, 1, 0)
        c.pin(s, "rtc", "scl", True)
        c.pin(s, "rtc", "sda", True)
    s = c.section("sync", required=False)
    if s is not None:  # the sync link on a device (esp32gate.synclink)
        port = s.get("port", "console")
        if port == "console":
            hd = raw.get("hardening")
            if isinstance(hd, dict) and hd.get("detach_repl") is False and chip != "unix":
                c.err("sync.port", "the console carries the REPL unless hardening.detach_repl is true")
        elif port == "uart":
            u = c.get_int(s, "sync", "uart", 1, 2)
            if u is not None and isinstance(raw.get("scanner"), dict) and raw["scanner"].get("uart") == u:
                c.err("sync.uart", "UART %d is the scanner's" % u)
            c.pin(s, "sync", "tx", True)
            c.pin(s, "sync", "rx", False)
            c.get_int(s, "sync", "baud", 1200, 2000000, 115200)
        else:
            c.err("sync.port", "must be 'console' or 'uart', got %r" % (port,))
    return c.bad


def validate(raw):
    """Complete gate config from a board config, or ConfigError naming every bad value."""
    bad = []
    cfg = None
    try:
        cfg = config.validate(raw)
    except ConfigError as e:
        bad.append(str(e))
    bad.extend(check_board(raw))
    if bad:
        raise ConfigError("bad board config: " + "; ".join(bad))
    return cfg


def load(path):
    """Read and validate a board config file (gate.json on the gate)."""
    return validate(config.read_json(path))


def section(cfg, name):
    """A board section as a dict ({} when the optional section is absent)."""
    s = cfg.get(name)
    return s if isinstance(s, dict) else {}
