"""The gate on an ESP32: board config -> adapters -> offgate.gate -> asyncio tasks, supervised.

    main()          what firmware/main.py runs at boot
    App(cfg, out)   the wired gate; tests build it with fake machine pins/UART/WDT

Boot order (main): read and validate gate.json (a wrong value is printed by name and the gate does
not start) -> outputs created inactive -> safe mode? (safe pin, boot loop) -> console lock ->
watchdog -> scanner setup (baud probe, registers) -> gate.build (trust store, deny list, replay
state) -> tasks. The relay is driven only by the actuator, and the actuator's open() is called
only by Gate.scan after the replay counter is durably recorded.

Tasks, each supervised (an exception is logged as a `task_error` line, red LED/buzzer error
pattern, the task restarted after a short pause; a task failing more than MAX_RESTARTS times in
RESTART_WINDOW_MS ends the app, and main() resets the chip, which counts towards safe mode):
  gate      scanner stream -> Gate.run
  actuator  relay/LED/buzzer patterns, passage sensor
  watchdog  feeds machine.WDT while the other tasks show signs of life
  log       writes buffered report lines to flash every few seconds
  stable    clears the crash counter after hardening.stable_s seconds
plus `App.extra` [(name, coroutine function)], a hook for more tasks (e.g. the sync link).
"""
import gc
import json
import os
import time

import asyncio  # MicroPython >= 1.23 (what mpy v6 needs) has it under this name

import sys

from offgate import unload
from offgate.clock import Clock
from offgate.statedir import CONFIG
from esp32gate.actuators import Esp32Actuator
from esp32gate.scanner import GM65, open_uart
from esp32gate.watchdog import Watchdog

# Heap: the board checker (offgate.boardcfg) and the boot-only helpers are imported by main() before
# the gate and dropped once they have run (`offgate.unload`): ~15 KB a no-PSRAM ESP32 gets back.

# Hook for more tasks (e.g. the sync link on the console): functions f(app) -> (name, coroutine
# function) or None, called by main() once the App exists. Registered by the module providing them.
BOOT_ERROR = "boot_error.txt"
MAX_RESTARTS = 10
RESTART_WINDOW_MS = 60000
BACKOFF_MS = 100
LOG_SYNC_MS = 5000


class Fatal(Exception):
    pass


def mkdirs(path):
    parts = path.split("/")
    cur = "/" if path.startswith("/") else ""
    for p in parts:
        if not p:
            continue
        cur = cur + p if cur in ("", "/") else cur + "/" + p
        try:
            os.mkdir(cur)
        except OSError:
            pass


class App:
    def __init__(self, cfg, out, actuator=None, uart=None, pin_cls=None, wdt_cls=None, clock=None,
                 counter=None, i2c_cls=None):
        self.cfg = cfg
        self.actuator = actuator if actuator is not None else Esp32Actuator(cfg, pin_cls)
        self.out = out
        self.pin_cls = pin_cls
        self.i2c_cls = i2c_cls
        self.ds3231 = None
        self.clock = clock if clock is not None else Clock(setter=self._set_rtc)
        self.counter = counter
        self.wdt_cls = wdt_cls
        sc = cfg["scanner"]
        self.uart = uart if uart is not None else open_uart(sc)
        self.scanner = GM65(self.uart, cfg["max_line"], sc.get("debounce_ms", 1500), sc.get("poll_ms", 10))
        self.gate = None
        self.watchdog = None
        self.restarts = {}
        self.extra = []
        self.stable = False
        self.locked = []

    def emit(self, rec):
        if self.gate is not None:
            self.gate.emit(rec)
            return
        try:
            self.out.write(json.dumps(rec) + "\n")
        except Exception:
            pass

    def _set_rtc(self, t):
        """Clock.setter: signed time into the ESP32 RTC, and into the DS3231 when there is one
        (clearing its oscillator-stop flag)."""
        from esp32gate.rtc import set_unix_time
        set_unix_time(t)
        if self.ds3231 is not None:
            try:
                self.ds3231.set_unix(t)
            except OSError:
                pass  # the internal RTC has the time; the next boot reports the DS3231 as not trusted

    def _clock_from_ds3231(self):
        """Board with a DS3231 (cfg rtc.type): set the clock from it unless its oscillator stopped.
        Returns a report dict."""
        sec = self.cfg.get("rtc")
        if not isinstance(sec, dict) or sec.get("type") != "ds3231":
            return None
        from esp32gate import ds3231
        rep = {"event": "rtc", "type": "ds3231"}
        try:
            self.ds3231 = ds3231.from_config(sec, self.i2c_cls, self.pin_cls)
            if self.ds3231.stopped():
                rep["used"] = False
                rep["note"] = "oscillator stopped (battery flat or removed): its time is not trusted"
            else:
                t = self.ds3231.unix()
                rep["t"] = t
                from offgate.timekeep import plausible
                if plausible(t):
                    self.clock.setter = None  # set the internal RTC without writing the DS3231 back
                    from esp32gate.rtc import set_unix_time
                    try:
                        set_unix_time(t)
                    except Exception:
                        pass
                    self.clock.set(t)
                    self.clock.setter = self._set_rtc
                    self.clock.source_name = "ds3231"
                    rep["used"] = True
                else:
                    rep["used"] = False
                    rep["note"] = "implausible time"
        except OSError as e:
            rep["used"] = False
            rep["note"] = "not answering on I2C (%s)" % e
        return rep

    def _feed(self):
        if self.watchdog is not None:
            self.watchdog.feed()

    async def start(self):
        cfg = self.cfg
        self.watchdog = Watchdog(cfg["watchdog_ms"], self.wdt_cls)  # from here on a hang resets the chip
        mkdirs(cfg["state_dir"])
        rep = await self.scanner.setup(cfg["scanner"])
        self._feed()
        rtc_rep = self._clock_from_ds3231()
        gc.collect()
        from offgate import gate as gatemod  # here, not at the top: main() sets the outputs first
        self.gate = gatemod.build(cfg, self.actuator, self.out, self.clock)  # emits the boot line
        self._feed()
        rep["board"] = cfg.get("board")
        if self.locked:
            rep["console"] = self.locked
        self.emit(rep)
        if rtc_rep is not None:
            self.emit(rtc_rep)
        tk = self.gate.time
        if tk is not None and not tk.trusted:  # also in the boot line: clock_* fields and a note
            st = {"event": "clock", "valid": False, "t": self.clock.now()}
            tk.report(st, st["t"])
            self.emit(st)
        self.watchdog.watch("scanner", lambda: self.scanner.last_poll)
        self.watchdog.watch("actuator", lambda: self.actuator.last_tick)

    async def supervise(self, name, fn):
        hist = []
        while True:
            try:
                await fn()
                self.emit({"event": "task_end", "task": name})
            except Exception as e:  # not BaseException: Ctrl-C (when enabled) and cancel pass through
                self.restarts[name] = self.restarts.get(name, 0) + 1
                self.emit({"event": "task_error", "task": name, "error": "%s: %s" % (type(e).__name__, e),
                           "restarts": self.restarts[name]})
                try:
                    self.actuator.error()
                except Exception:
                    pass
                now = time.ticks_ms()
                hist = [t for t in hist if time.ticks_diff(now, t) < RESTART_WINDOW_MS]
                hist.append(now)
                if len(hist) > MAX_RESTARTS:
                    raise Fatal("task %s failed %d times in %d s" % (name, len(hist), RESTART_WINDOW_MS // 1000))
            gc.collect()
            await asyncio.sleep_ms(BACKOFF_MS)

    async def _gate_task(self):
        await self.gate.run(self.scanner)

    async def _log_task(self):
        while True:
            await asyncio.sleep_ms(LOG_SYNC_MS)
            if hasattr(self.out, "sync"):
                self.out.sync()

    async def _stable_task(self):
        await asyncio.sleep(self.cfg["hardening"].get("stable_s", 120))
        if self.counter is not None:
            self.counter.clear()
        self.stable = True
        st = self.gate.status()
        st["event"] = "stable"
        st["actuator"] = self.actuator.status()
        self.emit(st)
        while True:  # nothing more to do; stay a task so the supervisor does not restart it
            await asyncio.sleep(3600)

    def task_list(self):
        return [("gate", self._gate_task), ("actuator", self.actuator.run), ("watchdog", self.watchdog.run),
                ("log", self._log_task), ("stable", self._stable_task)] + list(self.extra)

    def spawn(self):
        return [asyncio.create_task(self.supervise(n, f)) for n, f in self.task_list()]

    async def run(self):
        await self.start()
        await asyncio.gather(*self.spawn())


def _boot_error(msg):
    print("offgate: " + msg)
    try:
        with open(BOOT_ERROR, "w") as f:
            f.write(msg + "\n")
    except OSError:
        pass


def load_config(path):
    """(cfg, None) or (None, message): the board config validated, the checker then unloaded."""
    from offgate import boardcfg
    try:
        cfg, err = boardcfg.load(path), None
    except boardcfg.ConfigError as e:
        cfg, err = None, str(e)
    unload("offgate.boardcfg")
    gc.collect()
    return cfg, err


def main(path=CONFIG):
    """Boot the gate. Returns only in safe mode or on a config error (to the REPL); an unexpected
    error resets the chip when the console is locked (production) and is raised otherwise."""
    cfg, err = load_config(path)
    if cfg is None:
        _boot_error(err + " -- gate NOT started; fix gate.json (offgate board validate) and redeploy")
        return None
    act = Esp32Actuator(cfg)  # before anything else that can take time: every output inactive
    mkdirs(cfg["state_dir"])
    h = cfg["hardening"]
    from esp32gate import hardening
    counter = hardening.CrashCounter(cfg["state_dir"] + "/boots")
    mode, why = hardening.decide(h, counter)
    if mode == "safe":
        act.safe_mode()
        _boot_error("SAFE MODE: %s -- gate stopped, relay off, REPL available" % why)
        return None
    locked = hardening.lock_console() if h["detach_repl"] else []
    unload("esp32gate.hardening")  # the counter object keeps its class
    from esp32gate.logout import LogOut
    lg = cfg["log"]
    out = LogOut(lg["dir"], lg["max_kb"], lg["files"], lg.get("echo", False))
    app = App(cfg, out, actuator=act, counter=counter)
    app.locked = locked
    if cfg.get("sync"):
        from esp32gate import synclink  # the sync link's task (it does not import this module)
        t = synclink.task(app, cfg["sync"])
        if t is not None:
            app.extra.append(t)
    try:
        asyncio.run(app.run())
    except Exception as e:
        try:
            act.all_off()
            out.write(json.dumps({"event": "fatal", "error": "%s: %s" % (type(e).__name__, e)}) + "\n")
            out.sync()
        except Exception:
            pass
        if h["detach_repl"]:
            import machine
            machine.reset()
        raise
    return app
