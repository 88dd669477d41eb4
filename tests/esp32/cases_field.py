# Field cases (../shared/field-cases/) through the ESP32 application: GM65 driver, line assembler,
# real ESP32 actuator on fake pins. The host copies the case's files into the scenario directory.
import offgate.gate  # noqa: F401
import esp32gate.app  # noqa: F401

import machine
from esp32util import Out, fresh_cfg, run_app, scenario, wait_for
from offgate.clock import Clock

try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

SC = scenario()


def test_double_terminator_one_scan_one_decision():
    # scanner-stream.bin: one valid code ended by CR CR; gate 101, zone 1, time 1800000120
    from esp32gate.app import App
    from esp32gate.scanner import open_uart
    cfg = fresh_cfg(SC, gate_id=101, zone=1, scanner={"probe": [], "configure": False})
    machine.clear()
    out = Out()
    uart = open_uart(cfg["scanner"], machine.UART)
    app = App(cfg, out, uart=uart, pin_cls=machine.Pin, wdt_cls=machine.WDT,
              clock=Clock(source=lambda: 1800000120))
    with open(SC["dir"] + "/scanner-stream.bin", "rb") as f:
        stream = f.read()
    leds = cfg.get("leds") or {}
    red, on = leds.get("red"), leds.get("active", 1)

    async def body(app):
        app.uart.feed(stream)
        await wait_for(lambda: len(out.scans()) >= 1)
        await asyncio.sleep_ms(300)  # any phantom second decision would have come by now
        return out.scans()

    scans = run_app(app, body)
    assert len(scans) == 1, scans
    assert scans[0]["decision"] == "OPEN", scans
    assert app.actuator.pulses == 1 and app.actuator.denies == 0
    if red is not None:  # the red LED never lit (with the relay and green on: the field report)
        assert not [e for e in machine.TIMELINE if e[1] == "pin" and e[2] == red and e[3] == on], "red LED on"
