"""The gate in the field (issue #10), on the simulated gate as a device would run it: the 32-bit
MicroPython build at the device heap (128k), firmware from .mpy files. Field cases from
../shared/field-cases/ where the issue names them.

- a replay table that never stops the gate: 2,000 distinct credentials through one gate (4x the
  default replay_slots, all within one freshness horizon so the table must evict) all open, and
  the gate reboots and keeps refusing replays of what it still holds;
- double-terminator: a run of CR/LF is one terminator (ESP32 app, GM65 driver, fake pins);
"""
import os
import shutil
from pathlib import Path

import pytest

from fieldhelp import NOW, Issuer
from mpbridge import FW_TESTS, MP32, RUNTIMES, needs_mp32, run_micropython
from offgate_host.simgate import SimGate, write_gate_dir

N_DISTINCT = 2000


@needs_mp32
def test_2000_distinct_credentials_open_at_128k_on_32bit_and_the_gate_reboots(tmp_path):
    iss = Issuer()
    creds = [iss.credential() for _ in range(N_DISTINCT)]
    # log sized for the run (the default 2,016 records would fill with an unsynced gate: LOG_FULL
    # is its own, tested reason)
    cfg = write_gate_dir(tmp_path / "gate", gate_id=1, zone=1, trust=iss.trust(), max_age_s=3600,
                         log_max_segments=48)
    with SimGate(cfg, mp=MP32, heap="128k") as g:
        for i, (cti, cred) in enumerate(creds):
            r = g.scan(iss.code(cred, NOW, 1))
            assert r["decision"] == "OPEN", (i, r)
        st = g.stop()
    assert st["opened"] == N_DISTINCT and st["replay_evictions"] > 0, st
    assert st["replay_used"] * 4 <= st["replay_slots"] * 3
    with SimGate(cfg, mp=MP32, heap="128k") as g2:  # reboot: load and restore in the same bounded way
        assert g2.boot["event"] == "boot"
        last_cti, last = creds[-1]
        r = g2.scan(iss.code(last, NOW, 1))
        assert r["reason"] == "REPLAY", r          # the newest are kept
        r = g2.scan(iss.code(last, NOW, 2))
        assert r["decision"] == "OPEN", r
        for cti, cred in creds[:5]:                # older ones: may have been evicted, never an error
            assert g2.scan(iss.code(cred, NOW, 7))["decision"] == "OPEN"
        st2 = g2.stop()
    assert st2["denied"] == 1, st2


FIELD = Path(__file__).resolve().parents[2] / "shared" / "field-cases"
needs_field = lambda case: pytest.mark.skipif(not (FIELD / case).is_dir(),  # noqa: E731
                                              reason="field case %s not found beside the clone" % case)


@needs_field("double-terminator")
@pytest.mark.parametrize("mp", RUNTIMES)
def test_field_case_double_terminator_on_the_esp32_app(tmp_path, mp):
    """One code ended by CR CR through the GM65 driver and the ESP32 actuator: one OPEN, no phantom
    DENY EMPTY, the red LED never on."""
    from test_esp32_adapters import CASES_HEAP, compiled_helpers, make_scenario
    case = FIELD / "double-terminator"
    d = make_scenario(tmp_path / "sc", n_codes=1)
    for f in ("trust.cbor", "scanner-stream.bin"):
        shutil.copy(case / f, d / f)
    env_old = os.environ.get("OFFGATE_SCENARIO")
    os.environ["OFFGATE_SCENARIO"] = str(d)
    try:
        r = run_micropython(FW_TESTS / "mptest.py", "cases_field", heap=CASES_HEAP,
                            extra_path=[compiled_helpers()], timeout=120, mp=mp)
    finally:
        if env_old is None:
            del os.environ["OFFGATE_SCENARIO"]
        else:
            os.environ["OFFGATE_SCENARIO"] = env_old
    assert "1 passed, 0 failed" in r.stdout, r.stdout + r.stderr
