"""The ESP32 adapters (firmware/esp32gate) and the app that wires them, on the MicroPython unix port
against a fake `machine` (tests/support/fakes/machine.py: Pin, UART, WDT, RTC with a recorded timeline) and
a fake GM65 module: the real gate firmware decides real codes made here by the host tools.

The MicroPython side is tests/esp32/cases_*.py, run with tests/firmware/mp/mptest.py on the 64-bit
port and on the 32-bit build (the ESP32 stand-in, skipped when absent); the firmware is the
compiled .mpy from build/unix-mpy or build/unix-mpy-x86 (as simgate runs it)."""
import json
import re

import pytest

from esp32help import BOARDS, CASES_HEAP, compiled_helpers, make_scenario
from mpbridge import FW_TESTS, ROOT, RUNTIMES, run_micropython


def run_cases(module, scenario_dir, heap=CASES_HEAP, mp=None):
    import os
    old = os.environ.get("OFFGATE_SCENARIO")
    os.environ["OFFGATE_SCENARIO"] = str(scenario_dir)
    try:
        r = run_micropython(FW_TESTS / "mptest.py", module, heap=heap, extra_path=[compiled_helpers()], timeout=120,
                            mp=mp)
    finally:
        if old is None:
            del os.environ["OFFGATE_SCENARIO"]
        else:
            os.environ["OFFGATE_SCENARIO"] = old
    out = r.stdout + r.stderr
    m = re.search(r"^(\d+) passed, (\d+) failed$", r.stdout, re.M)
    assert m, "no result line:\n" + out
    return int(m.group(1)), int(m.group(2)), out


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    return make_scenario(tmp_path_factory.mktemp("esp32"), n_codes=16)


@pytest.mark.parametrize("mp", RUNTIMES)
@pytest.mark.parametrize("module,expect", [("cases_app", 11), ("cases_units", 10), ("cases_clock", 2)])
def test_esp32_cases_on_micropython(module, expect, scenario, mp):
    passed, failed, out = run_cases(module, scenario, mp=mp)
    assert failed == 0, out
    assert passed == expect, out


def test_code_fits_the_smallest_rx_buffer(scenario):
    """The biggest code must fit the UART RX buffer of every board (the 256-byte default does not)."""
    sc = json.loads((scenario / "scenario.json").read_text())
    longest = max(len(c) for c in sc["codes"]) + 2
    assert 256 < longest
    for p in BOARDS.glob("*.json"):
        assert json.loads(p.read_text())["scanner"]["rxbuf"] >= max(600, longest), p.name


def test_no_machine_import_under_offgate():
    """The adapters import machine; the gate logic never does."""
    for p in (ROOT / "firmware" / "offgate").rglob("*.py"):
        src = p.read_text()
        assert not re.search(r"^\s*(import machine|from machine)", src, re.M), p.name
