# The ESP32 application with its adapters on fake machine pins/UART/WDT, real gate firmware.
# Firmware first, while the heap is unfragmented (p256 wants a 16 KB block), as main.py does.
import offgate.gate  # noqa: F401
import esp32gate.app  # noqa: F401
import os
import time

try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

import machine
from binascii import unhexlify
from esp32util import Out, feed, fresh_cfg, level, make_app, run_app, scan, scenario, wait_for
from gm65 import FakeGM65

SC = scenario()
CR = b"\r"


def code(i):
    return SC["codes"][i].encode()


def _relay(cfg):
    return cfg["relay"]["pin"], cfg["relay"]["active"]


def test_relay_pulses_only_after_durable_open():
    cfg = fresh_cfg(SC, scanner={"probe": [], "configure": False})
    pin, active = _relay(cfg)
    cti = unhexlify(SC["cti"])
    seen = []

    def hook(ev):
        if ev[1] == "pin" and ev[2] == pin and ev[3] == active:
            try:
                with open(cfg["state_dir"] + "/replay.log", "rb") as f:
                    data = f.read()
            except OSError:
                data = b""
            logged = False  # the operation log record (offgate.log.oplog), when the gate keeps one
            try:
                d = cfg["state_dir"] + "/oplog"
                for name in os.listdir(d):
                    with open(d + "/" + name, "rb") as f:
                        logged = logged or cti in f.read()
            except OSError:
                logged = None
            seen.append((cti in data, logged))

    app, out = make_app(cfg)
    # the relay pin was created inactive, before anything drove it
    first = [e for e in machine.TIMELINE if e[1] == "pin" and e[2] == pin][0]
    assert first[3] == 1 - active, first
    machine.HOOKS.append(hook)

    async def body(app):
        r = await scan(app, out, code(0) + CR)
        assert r[0]["decision"] == "OPEN", r
        assert level(pin) == active  # driven at once, not at the next tick
        r = await scan(app, out, b"HELLO" + CR)
        assert r[0]["reason"] == "BAD_PREFIX"
        await asyncio.sleep_ms(cfg["relay_ms"] + 100)
        assert level(pin) == 1 - active  # pulse over

    run_app(app, body)
    # exactly one activation, and by then the counter was on flash: in the operation log's OPEN
    # record when the gate keeps one (the replay file's write waits for idle time and is restored
    # from the log at boot), else in the replay file
    assert len(seen) == 1 and (seen[0][1] is True or (seen[0][1] is None and seen[0][0] is True)), seen
    assert app.actuator.pulses == 1 and app.actuator.denies == 1


def test_deny_never_moves_relay_active_low():
    cfg = fresh_cfg(SC, relay={"active": 0}, scanner={"probe": [], "configure": False, "debounce_ms": 0})
    pin, active = _relay(cfg)
    app, out = make_app(cfg)

    async def body(app):
        c = code(1) + CR
        assert (await scan(app, out, c))[0]["decision"] == "OPEN"
        await asyncio.sleep_ms(cfg["relay_ms"] + 50)
        n = len(machine.events("pin", pin))
        # replay, garbage, binary noise, an over-long line: all DENY (an empty line is no scan)
        for data in (c, b"OG1:abc\r", b"\x00\x01\xfe\r", b"X" * 3000 + CR):
            r = await scan(app, out, data)
            assert r[0]["decision"] == "DENY", r
        assert len(machine.events("pin", pin)) == n  # the relay pin was not written at all
        assert level(pin) == 1  # active-low relay: idle high

    run_app(app, body)
    drives = [e[3] for e in machine.events("pin", pin)]
    assert drives.count(0) == 1, drives  # one pulse (active low)


def test_ack_frames_filtered_anywhere():
    cfg = fresh_cfg(SC, scanner={"probe": [], "configure": False})
    app, out = make_app(cfg)
    ack = b"\x02\x00\x00\x01\x00\x33\x31"

    async def body(app):
        c = code(2)
        app.uart.feed(ack + c[:40])
        await asyncio.sleep_ms(30)
        app.uart.feed(ack[:3])
        await asyncio.sleep_ms(30)
        app.uart.feed(ack[3:] + c[40:] + b"\r\n" + ack)
        await wait_for(lambda: len(out.scans()) >= 1)
        await asyncio.sleep_ms(50)
        r = out.scans()
        assert len(r) == 1 and r[0]["decision"] == "OPEN", r
        assert app.scanner.acks == 3
        # a broken "frame" is noise, not swallowed silently
        r = await scan(app, out, b"\x02\x00\x41BC\r")
        assert r[0]["reason"] == "NOT_TEXT", r

    run_app(app, body)


def test_debounce_same_code_within_window():
    cfg = fresh_cfg(SC, scanner={"probe": [], "configure": False, "debounce_ms": 300})
    app, out = make_app(cfg)

    async def body(app):
        c = code(3) + CR
        assert (await scan(app, out, c))[0]["decision"] == "OPEN"
        for _ in range(3):  # re-reported while in view: dropped, and the window slides
            app.uart.feed(c)
            await asyncio.sleep_ms(150)
        assert len(out.scans()) == 1 and app.scanner.debounced == 3
        other = code(4) + CR  # a different code is not debounced
        assert (await scan(app, out, other))[0]["decision"] == "OPEN"
        await asyncio.sleep_ms(350)  # out of the window: reported again (a replay now)
        assert (await scan(app, out, other))[0]["reason"] == "REPLAY"

    run_app(app, body)


def test_task_exception_is_recovered():
    cfg = fresh_cfg(SC, scanner={"probe": [], "configure": False})
    app, out = make_app(cfg)

    async def body(app):
        app.uart.fail_next = OSError(5)
        await wait_for(lambda: out.events("task_error"))
        err = out.events("task_error")[0]
        assert err["task"] == "gate" and "OSError" in err["error"], err
        assert (await scan(app, out, code(5) + CR))[0]["decision"] == "OPEN"
        # the actuator task too
        orig = app.actuator.tick
        calls = [0]

        def bad_tick(now=None):
            calls[0] += 1
            if calls[0] == 1:
                raise ValueError("led driver")
            return orig(now)

        app.actuator.tick = bad_tick
        await wait_for(lambda: [e for e in out.events("task_error") if e["task"] == "actuator"])
        app.actuator.tick = orig
        r = await scan(app, out, code(6) + CR)
        assert r[0]["decision"] == "OPEN"
        await asyncio.sleep_ms(cfg["relay_ms"] + 300)
        assert level(cfg["relay"]["pin"]) == 1 - cfg["relay"]["active"]  # restarted task ended the pulse

    run_app(app, body)
    assert app.restarts == {"gate": 1, "actuator": 1}, app.restarts


def test_watchdog_fed_while_alive_starved_when_stuck():
    cfg = fresh_cfg(SC, watchdog_ms=2000, scanner={"probe": [], "configure": False})
    cfg["watchdog_ms"] = 400  # below the schema minimum, to keep the test short
    app, out = make_app(cfg)

    async def body(app):
        wdt = machine.WDT.instances[0]
        assert wdt.timeout == 400
        await asyncio.sleep_ms(350)
        fed = wdt.feeds
        assert fed >= 2, fed
        # the actuator task wedges (no more ticks): feeding stops, the chip would reset
        app.actuator.tick = lambda now=None: None
        await asyncio.sleep_ms(350)
        stopped = wdt.feeds
        await asyncio.sleep_ms(300)
        assert wdt.feeds == stopped and app.watchdog.starved > 0 and app.watchdog.stale == "actuator"

    run_app(app, body)


def test_scanner_baud_probe_and_register_setup():
    cfg = fresh_cfg(SC, scanner={"baud": 9600, "probe": [9600, 57600, 115200], "configure": True,
                                 "registers": [[0x13, 0x8F]]})
    holder = []
    app, out = make_app(cfg, gm65=lambda u: holder.append(FakeGM65(u, baud=115200, registers={0x13: 0x05})))
    mod = holder[0]

    async def body(app):
        assert (await scan(app, out, code(7) + CR))[0]["decision"] == "OPEN"

    run_app(app, body)
    rep = out.events("scanner")[0]
    assert rep["answered_at"] == 115200 and rep["written"] == [0x13], rep
    assert mod.baud == 9600 and app.uart.baudrate == 9600
    assert mod.regs[0x13] == 0x8F and mod.saves == 2
    assert out.scans()[0]["seq"] == 1  # probing noise did not become scans

    # next boot: nothing to change, nothing written to the module's flash
    cfg2 = fresh_cfg(SC, scanner={"baud": 9600, "probe": [9600, 57600, 115200], "configure": True,
                                  "registers": [[0x13, 0x8F]]})
    app2, out2 = make_app(cfg2, gm65=lambda u: FakeGM65(u, baud=9600, registers={0x13: 0x8F}))
    run_app(app2, lambda a: asyncio.sleep_ms(10))
    rep = out2.events("scanner")[0]
    assert rep["answered_at"] == 9600 and rep["written"] == [], rep


def test_scanner_missing_gate_still_runs():
    cfg = fresh_cfg(SC, scanner={"probe": [9600, 115200], "configure": True, "registers": [[0x13, 0x8F]]})
    app, out = make_app(cfg)  # nothing answers

    async def body(app):
        return (await scan(app, out, code(8) + CR))[0]["decision"]

    assert run_app(app, body) == "OPEN"
    rep = out.events("scanner")[0]
    assert rep["answered_at"] is None and rep["written"] is None


def test_noise_after_baud_change_is_framed_by_the_gate():
    cfg = fresh_cfg(SC, scanner={"probe": [], "configure": False})
    app, out = make_app(cfg)

    async def body(app):
        await feed(app, bytes(range(0xE0, 0x100)) * 8)  # wrong-baud garbage, no terminator
        await feed(app, bytes(range(0x80, 0xA0)) * 48)  # 2.5 KB in all: longer than max_line
        await asyncio.sleep_ms(50)
        r = await scan(app, out, CR)
        assert r[0]["reason"] == "LINE_TOO_LONG", r
        r = await scan(app, out, b"\xf8\x80\x7f\r")
        assert r[0]["reason"] == "NOT_TEXT", r
        assert (await scan(app, out, code(9) + CR))[0]["decision"] == "OPEN"

    run_app(app, body)


def test_big_code_fits_rx_buffer():
    cfg = fresh_cfg(SC, scanner={"probe": [], "configure": False})
    app, out = make_app(cfg)
    big = code(10)
    assert app.uart.rxbuf >= 600 and len(big) + 2 <= app.uart.rxbuf

    async def body(app):
        # the loop is busy (a scan in progress): the whole code waits in the UART buffer
        app.uart.feed(big + b"\r\n")
        await wait_for(lambda: out.scans())
        return out.scans()[0]["decision"]

    assert run_app(app, body) == "OPEN"
    assert app.uart.overflow == 0


def test_stable_run_clears_crash_counter():
    from esp32gate.hardening import CrashCounter
    cfg = fresh_cfg(SC, scanner={"probe": [], "configure": False}, hardening={"stable_s": 5})
    cfg["hardening"]["stable_s"] = 0  # below the schema minimum, for the test only
    app, out = make_app(cfg)
    app.counter = CrashCounter(cfg["state_dir"] + "/boots")
    app.counter.boot()
    app.counter.boot()

    async def body(app):
        await wait_for(lambda: app.stable)

    run_app(app, body)
    assert app.counter.read() == 0 and out.events("stable")
