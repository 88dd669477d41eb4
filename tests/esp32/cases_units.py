# ESP32 adapters one by one on the fake machine: RTC, hardening, actuator patterns, log, main().
import offgate.gate  # noqa: F401  (firmware first, while the heap is unfragmented)
import esp32gate.app  # noqa: F401
import json
import os
import time

try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

import machine
from esp32util import Out, fresh_cfg, scenario


def test_rtc_across_epochs():
    from esp32gate import rtc
    from offgate.clock import Clock
    # 2023-11-14 22:13:20 UTC, a Tuesday (weekday 1)
    assert rtc.datetime_tuple(1700000000) == (2023, 11, 14, 1, 22, 13, 20, 0)
    # 2000-01-01 (the ESP32 epoch), a Saturday; 2038-01-19 03:14:08 (past 2^31); a leap day
    assert rtc.datetime_tuple(946684800) == (2000, 1, 1, 5, 0, 0, 0, 0)
    assert rtc.datetime_tuple(2147483648) == (2038, 1, 19, 1, 3, 14, 8, 0)
    assert rtc.datetime_tuple(1709164800)[:3] == (2024, 2, 29)
    for t in (946684800, 1700000000, 1709164799, 2147483647, 2147483648, 4102444799):
        assert rtc.unix_from_tuple(rtc.datetime_tuple(t)) == t
    machine.clear()
    c = Clock(offset=1234)
    dt = rtc.set_unix_time(1767225600, machine.RTC(), c)  # 2026-01-01
    assert machine.RTC.state["dt"] == dt == (2026, 1, 1, 3, 0, 0, 0, 0)
    assert c.offset == 0
    # what an ESP32 then reports: seconds since 2000, plus offgate.clock's 946684800
    port_secs = rtc.unix_from_tuple(machine.RTC().datetime()) - rtc.EPOCH_2000
    assert port_secs == 820540800 and port_secs + 946684800 == 1767225600
    for bad in (0, 946684800, 5000000000, "1767225600", True):
        try:
            rtc.set_unix_time(bad, machine.RTC())
            raise AssertionError("accepted %r" % (bad,))
        except ValueError:
            pass
    assert not rtc.plausible(946684800 + 5) and rtc.plausible(1767225600)


def test_crash_counter_and_safe_mode():
    from esp32gate import hardening
    d = "/tmp/og-hard-%d" % time.ticks_ms()
    os.mkdir(d)
    c = hardening.CrashCounter(d + "/boots")
    h = {"safe_pin": 32, "max_crashes": 3}
    machine.clear()
    modes = [hardening.decide(h, c, machine.Pin)[0] for _ in range(4)]
    assert modes == ["normal", "normal", "normal", "safe"], modes
    c.clear()
    assert hardening.decide(h, c, machine.Pin)[0] == "normal"
    machine.Pin.inputs[32] = 0  # jumper to GND
    mode, why = hardening.decide(h, c, machine.Pin)
    assert mode == "safe" and "safe pin" in why
    assert machine.Pin.modes[32] == machine.Pin.IN


def test_lock_console():
    from esp32gate import hardening

    class FakeOs:
        def __init__(self):
            self.calls = []

        def dupterm(self, obj, idx=0):
            if idx > 1:
                raise ValueError("bad index")
            self.calls.append((obj, idx))

    class FakeMp:
        kbd = None

        def kbd_intr(self, c):
            self.kbd = c

    o, m = FakeOs(), FakeMp()
    done = hardening.lock_console(o, m)
    assert m.kbd == -1 and o.calls == [(None, 0), (None, 1)] and done == ["kbd_intr", "dupterm0", "dupterm1"]


def test_actuator_patterns_and_sensor():
    from esp32gate.actuators import Esp32Actuator
    from offgate import reasons as R
    sc = scenario()
    cfg = fresh_cfg(sc, sensor={"pin": 4, "active": 0, "pull": "up"})
    machine.clear()
    now = [1000]
    a = Esp32Actuator(cfg, machine.Pin, ticks_ms=lambda: now[0])
    relay, green, red, bz = cfg["relay"]["pin"], cfg["leds"]["green"], cfg["leds"]["red"], cfg["buzzer"]["pin"]
    L = machine.Pin.levels
    assert L[relay] == 0 and L[green] == 0 and L[red] == 0 and L[bz] == 0
    a.open(500)
    assert L[relay] == 1 and L[green] == 1 and L[bz] == 1
    now[0] += 100
    a.tick(now[0])
    assert L[bz] == 0 and L[relay] == 1
    now[0] += 300
    a.open(500)  # a second OPEN extends the pulse
    now[0] += 300
    a.tick(now[0])
    assert L[relay] == 1
    a.deny(R.BAD_RIDER_SIG)  # a deny during a pulse: red, no buzzer, relay untouched
    assert L[red] == 1 and L[bz] == 0 and L[relay] == 1
    now[0] += 300
    a.tick(now[0])
    assert L[relay] == 0 and L[green] == 0
    now[0] += 1000
    a.tick(now[0])
    assert L[red] == 0
    a.deny(R.REPLAY)  # a deny on its own: red + two beeps
    seq = []
    for _ in range(60):
        now[0] += 10
        a.tick(now[0])
        seq.append(L[bz])
    assert "".join(str(x) for x in seq).strip("0").count("10") == 1  # two beeps: on, off, on
    a.deny(R.NOT_TEXT)  # noise: short red, silent
    assert L[bz] == 0 and L[red] == 1
    # passage sensor (active low, pull-up): the first passage ends the pulse
    a.open(5000)
    a.tick(now[0])
    machine.Pin.inputs[4] = 0
    now[0] += 20
    a.tick(now[0])
    assert L[relay] == 0 and a.passages == 1
    machine.Pin.inputs[4] = 1
    a.error()
    assert L[red] == 1 and L[bz] == 1 and L[relay] == 0 and a.errors == 1
    a.safe_mode()
    assert L[red] == 1 and L[relay] == 0 and L[bz] == 0


def test_scanner_state_machine_units():
    from esp32gate.scanner import GM65, baud_frame, command_frame, read_frame, SAVE_FRAME
    assert command_frame(0x08, 0x000D, b"\x02") == b"\x7e\x00\x08\x01\x00\x0d\x02\xab\xcd"
    assert read_frame(0x0000) == b"\x7e\x00\x07\x01\x00\x00\x01\xab\xcd"
    assert baud_frame(115200) == b"\x7e\x00\x08\x02\x00\x2a\x1a\x00\xab\xcd"
    assert SAVE_FRAME == b"\x7e\x00\x09\x01\x00\x00\x00\xab\xcd"
    machine.clear()
    u = machine.UART(2, rxbuf=1024)
    t = [0]
    g = GM65(u, max_line=64, debounce_ms=100, ticks_ms=lambda: t[0])

    def out():
        r = bytes(g._out[g._opos:g._olen])
        g._olen = g._opos = 0
        return r

    ack = b"\x02\x00\x00\x01\x07\x33\x31"
    data = b"AB" + ack + b"C\r\n" + ack[:2]
    for i in range(len(data)):
        g._ingest(data[i:i + 1])  # split at every byte
    g._ingest(ack[2:] + b"AB\r")
    assert out() == b"ABC\rAB\r" and g.acks == 2 and g.last_ack == b"\x07"
    t[0] += 50
    g._ingest(b"AB\r")
    assert out() == b"" and g.debounced == 1
    t[0] += 200
    g._ingest(b"AB\n")
    assert out() == b"AB\r"
    # over-long: held bytes released, the rest passed through, terminator ends pass-through
    g._ingest(b"Z" * 100 + b"\r" + b"OK\r")
    o = out()
    assert o == b"Z" * 100 + b"\rOK\r", o
    # endless noise without terminator never grows anything
    for _ in range(50):
        g._ingest(b"\xff" * 128)
        out()
    assert g.dropped == 0 and len(g._hold) == 64
    # an ack frame cut by a new STX restarts the frame
    g._ingest(b"\x02\x00\x02\x00\x00\x01\x00\x33\x31X\r")
    assert out() == b"\x02\x00X\r" and g.acks == 3


def test_logout_rotation():
    from esp32gate.logout import LogOut
    d = "/tmp/og-log-%d" % time.ticks_ms()
    os.mkdir(d)
    lg = LogOut(d + "/log", max_kb=1, files=2)
    line = json.dumps({"event": "scan", "pad": "x" * 80}) + "\n"
    for i in range(60):
        lg.write(line)
        lg.flush()
    lg.sync()
    names = sorted(os.listdir(d + "/log"))
    assert names == ["gate.1.log", "gate.log"], names
    for n in names:
        assert os.stat(d + "/log/" + n)[6] <= 1024 + 600
    assert lg.lines == 60 and lg.errors == 0


def _write_cfg(raw):
    d = "/tmp/og-main-%d" % time.ticks_ms()
    os.mkdir(d)
    p = d + "/gate.json"
    with open(p, "w") as f:
        f.write(json.dumps(raw))
    return d, p


def test_main_refuses_bad_config_by_name():
    from esp32gate import app
    sc = scenario()
    raw = dict(sc["board"])
    raw["relay"] = {"pin": 34, "active": 2}
    raw["scanner"] = dict(raw["scanner"])
    raw["scanner"]["rxbuf"] = 256
    del raw["zone"]
    d, p = _write_cfg(raw)
    cwd = os.getcwd()
    os.chdir(d)
    machine.clear()
    try:
        assert app.main(p) is None
        with open(app.BOOT_ERROR) as f:
            msg = f.read()
    finally:
        os.chdir(cwd)
    for name in ("relay.pin", "relay.active", "scanner.rxbuf", "zone: missing", "NOT started"):
        assert name in msg, (name, msg)
    assert not machine.events("pin")  # no pin was touched


def test_main_safe_mode_keeps_relay_off():
    from esp32gate import app
    sc = scenario()
    cfg = fresh_cfg(sc)
    d, p = _write_cfg(cfg)
    cwd = os.getcwd()
    os.chdir(d)
    machine.clear()
    machine.Pin.inputs[cfg["hardening"]["safe_pin"]] = 0
    try:
        assert app.main(p) is None
        with open(app.BOOT_ERROR) as f:
            msg = f.read()
    finally:
        os.chdir(cwd)
    assert "SAFE MODE" in msg
    relay = cfg["relay"]["pin"]
    assert [e[3] for e in machine.events("pin", relay)] == [1 - cfg["relay"]["active"]] * len(machine.events("pin", relay))
    assert machine.Pin.levels[cfg["leds"]["red"]] == cfg["leds"]["active"]
    assert not machine.WDT.instances and not machine.UART.instances  # nothing else started


def test_main_failing_task_resets_chip_never_the_relay():
    """Production boot (console locked): a task that keeps failing ends in machine.reset(), the
    failure is in the log, the relay never moved; after max_crashes such boots: safe mode."""
    from esp32gate import app
    sc = scenario()
    cfg = fresh_cfg(sc, scanner={"probe": [], "configure": False})
    cfg["hardening"]["detach_repl"] = True
    d, p = _write_cfg(cfg)
    cwd = os.getcwd()
    os.chdir(d)
    machine.clear()
    machine.UART.fail_any_after[0] = 1
    relay, active = cfg["relay"]["pin"], cfg["relay"]["active"]
    try:
        try:
            app.main(p)
            raise AssertionError("main returned")
        except machine.ResetCalled:
            # a reset chip starts on an empty heap: drop the stopped loop's tasks (they hold the
            # whole gate) so the next cases do not run on what is left of this one's heap
            import asyncio
            asyncio.new_event_loop()
        machine.UART.fail_any_after[0] = None
        assert [e[3] for e in machine.events("pin", relay)] == [1 - active] * len(machine.events("pin", relay))
        assert machine.events("wdt_start")
        with open(cfg["log"]["dir"] + "/gate.log") as f:
            recs = [json.loads(x) for x in f.read().splitlines()]
        kinds = [r["event"] for r in recs]
        assert kinds[0] == "boot" and kinds.count("task_error") == app.MAX_RESTARTS + 1 and kinds[-1] == "fatal", kinds
        with open(cfg["state_dir"] + "/boots", "w") as f:
            f.write("%d\n" % cfg["hardening"]["max_crashes"])
        machine.clear()
        assert app.main(p) is None
        with open(app.BOOT_ERROR) as f:
            assert "SAFE MODE" in f.read()
    finally:
        machine.UART.fail_any_after[0] = None
        os.chdir(cwd)


def _fake_ds3231(t=None, osf=False):
    """A DS3231 on the fake I2C bus at 0x68 holding Unix time t (BCD registers), OSF as given."""
    from esp32gate import ds3231
    machine.I2C.devices[0x68] = bytearray(19)
    d = ds3231.DS3231(machine.I2C(0))
    if t is not None:
        d.set_unix(t)
    if osf:
        machine.I2C.devices[0x68][0x0F] |= 0x80
    return d


def test_ds3231_driver_bcd_century_12h_and_osf():
    from esp32gate import ds3231
    machine.clear()
    d = _fake_ds3231(1800000120)
    regs = machine.I2C.devices[0x68]
    # 2027-01-15 08:02:00 UTC: BCD seconds, minutes, hours, weekday 1-7, date, month, year
    assert bytes(regs[0:7]) == bytes([0x00, 0x02, 0x08, 5, 0x15, 0x01, 0x27]), bytes(regs[0:7])
    assert d.unix() == 1800000120 and not d.stopped()
    for t in (946684800, 2147483648, 4102444799, 4107542400):  # 2000, past 2^31, 2099, 2100 (century bit)
        d.set_unix(t)
        assert d.unix() == t, t
    regs[0:7] = bytes([0x00, 0x02, 0x40 | 0x20 | 0x08, 5, 0x15, 0x01, 0x27])  # 12-hour mode, 8 PM
    assert d.unix() == 1800000120 + 12 * 3600
    regs[0x0F] |= 0x80
    assert d.stopped()
    d.set_unix(1800000120)  # setting the time clears the oscillator-stop flag
    assert not d.stopped()
    machine.I2C.devices.clear()
    try:
        ds3231.DS3231(machine.I2C(0)).stopped()
        raise AssertionError("a missing device answered")
    except OSError:
        pass
