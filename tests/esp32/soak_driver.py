# Soak: one board config, N codes in a row through the gate, heap measured at scan 100 and N.
#   micropython -X heapsize=<board heap_kb>k -m soak_driver SCENARIO_DIR CODES_FILE  (compiled, on the path)
# ESP32 boards: the ESP32 app (scanner adapter, actuators, watchdog) on the fake machine.
# The simulator board: the gate with the simulator's actuator, as sim_main runs it.
# Prints one JSON line: {"board", "scans", "opened", "m100", "mN", "free"}.
import gc
import json
import sys
import time

try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

MARKS = (100,)


class CountOut:
    def __init__(self):
        self.scans = 0
        self.opened = 0
        self.other = []
        self.reasons = {}

    def write(self, text):
        if '"scan"' in text:
            self.scans += 1
            if '"OPEN"' in text:
                self.opened += 1
            else:
                i = text.find('"reason": "')
                r = text[i + 11:text.find('"', i + 11)] if i >= 0 else "?"
                self.reasons[r] = self.reasons.get(r, 0) + 1
        elif len(self.other) < 20:
            self.other.append(text[:200])

    def flush(self):
        pass


def mem():
    gc.collect()
    return gc.mem_alloc()


def main():
    sdir, codes_path = sys.argv[1], sys.argv[2]
    with open(sdir + "/gate.json") as f:
        chip = json.load(f).get("chip")
    scaffold = 0
    if chip != "unix":  # the fake machine module: in ROM on a device, in the heap here
        m0 = mem()
        import machine  # noqa: F401
        scaffold = mem() - m0
    gc.collect()
    if chip == "unix":  # as sim_main does
        from offgate import config
        cfg = config.load(sdir + "/gate.json")
    else:  # as main.py does: config checked, the checker dropped, then the gate
        from esp32gate.app import load_config
        cfg, err = load_config(sdir + "/gate.json")
        if err:
            raise SystemExit(err)
    out = CountOut()
    res = {"board": cfg["board"], "scaffold": scaffold}
    f = open(codes_path, "rb")
    if cfg["chip"] == "unix":
        from offgate import gate
        from offgate.clock import Clock
        from sim.actuators import SimActuator
        g = gate.build(cfg, SimActuator(None), out, Clock())
        n = 0
        while True:
            line = f.readline()
            if not line:
                break
            g.scan(line.rstrip(b"\r\n"))
            n += 1
            gc.collect()
            if n in MARKS:
                res["m%d" % n] = mem()
        res["mN"] = mem()
    else:
        import machine
        machine.RECORD[0] = False  # the fake's timeline would grow; the device has none
        from esp32gate.app import App
        from esp32gate.scanner import open_uart
        uart = open_uart(cfg["scanner"], machine.UART)
        app = App(cfg, out, uart=uart, pin_cls=machine.Pin, wdt_cls=machine.WDT)

        async def run():
            await app.start()
            tasks = app.spawn()
            n = 0
            while True:
                line = f.readline()
                if not line:
                    break
                uart.feed(line)
                n += 1
                t0 = time.ticks_ms()
                while out.scans < n:
                    if time.ticks_diff(time.ticks_ms(), t0) > 10000:  # a lost scan: report it, go on
                        res["lost"] = res.get("lost", 0) + 1
                        n = out.scans
                        break
                    await asyncio.sleep_ms(0)
                if n in MARKS:
                    res["m%d" % n] = mem()
            res["mN"] = mem()
            res["wdt_feeds"] = machine.WDT.instances[0].feeds
            res["pulses"] = app.actuator.pulses
            res["restarts"] = app.restarts
            res["errors"] = [o for o in out.other if "task_error" in o][:3]
            for t in tasks:
                t.cancel()

        asyncio.run(run())
    res["scans"] = out.scans
    res["opened"] = out.opened
    res["other"] = out.other
    res["denied"] = out.reasons
    res["free"] = gc.mem_free()
    print(json.dumps(res))


main()
