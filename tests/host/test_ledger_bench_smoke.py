"""bench/ledger_bench.py still runs (no timing checked: speed is `make bench`'s)."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ledger_bench_runs_small():
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "ledger_bench.py"), "--records", "600", "--credentials", "20"],
                       capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["sqlite"]["records"] == 600 and out["sqlite"]["trips_settled"] == 480
    if os.environ.get("OFFGATE_TEST_PG_URL"):
        assert out["postgresql"]["trips_settled"] == 480 and out["postgresql"]["bare_copy_s"] > 0
