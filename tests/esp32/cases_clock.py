# The ESP32 app's clock: a DS3231 on the fake I2C bus at boot, signed time into the RTC and the
# DS3231 (own process: each case builds an app, which the shared cases_units heap cannot hold twice).
import offgate.gate  # noqa: F401  (firmware first, while the heap is unfragmented)
import esp32gate.app  # noqa: F401

try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

import gc

import machine
from cases_units import _fake_ds3231
from esp32util import fresh_cfg, scenario


def _app_with_rtc(osf, t=1800000120):
    from esp32util import make_app
    cfg = fresh_cfg(scenario(), scanner={"probe": [], "configure": False},
                    rtc={"type": "ds3231", "i2c": 0, "scl": 22, "sda": 21})
    app, out = make_app(cfg)
    _fake_ds3231(t, osf)
    app.i2c_cls = machine.I2C
    app.pin_cls = machine.Pin

    async def main():
        await app.start()
    asyncio.run(main())
    return app, out


def test_ds3231_sets_the_clock_at_boot_unless_its_oscillator_stopped():
    app, out = _app_with_rtc(False)
    rtc = out.events("rtc")[0]
    assert rtc["used"] and rtc["t"] == 1800000120, rtc
    boot = out.events("boot")[0]
    assert boot["clock_trusted"] and boot["clock_source"] == "ds3231", boot
    assert abs(app.clock.now() - 1800000120) < 5
    assert [e for e in machine.TIMELINE if e[1] == "rtc_set"]  # the ESP32 RTC was set from it
    app = out = rtc = boot = None
    gc.collect()  # the first app goes before the second is built: two apps do not fit the heap
    app, out = _app_with_rtc(True)  # battery flat: its time is not believed
    rtc = out.events("rtc")[0]
    assert not rtc["used"] and "oscillator stopped" in rtc["note"], rtc
    assert out.events("boot")[0]["clock_source"] != "ds3231"


def test_signed_time_sets_rtc_and_ds3231_and_survives_a_reset():
    from offgate import timekeep
    app, out = _app_with_rtc(True)
    g = app.gate
    assert timekeep.check_signed(g.time, 0) is not None           # implausible
    assert timekeep.check_signed(g.time, 1 << 40) is not None     # implausible
    assert timekeep.check_signed(g.time, 1800000300) is None
    timekeep.set_signed(g.time, app.clock, 1800000300)
    assert machine.RTC.state["dt"][:3] == (2027, 1, 15)         # the ESP32 RTC holds it
    d = app.ds3231
    assert not d.stopped() and abs(d.unix() - 1800000300) < 2   # and the DS3231, OSF cleared
    assert g.time.trusted and g.time.source == "signed" and g.time.floor == 1800000300
    # below the floor: refused unless forced
    assert "floor" in timekeep.check_signed(g.time, 1800000300 - 7200)
    assert timekeep.check_signed(g.time, 1800000300 - 7200, force=True) is None
