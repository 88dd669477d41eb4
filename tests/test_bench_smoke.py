"""Smoke test for the benchmark: the MicroPython-side driver (bench/mp_scan.py) still runs the real
decision path for a couple of scans. No timing is checked: only that the bench code has not rotted."""
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))
import bench_data  # noqa: E402


def test_bench_driver_two_scans(tmp_path):
    data, info = bench_data.build(tmp_path, n_first=2, n_returning=2, n_verify=1, deny_count=3)
    env = bench_data.compile_driver()
    for kind in ("first", "returning"):
        rc, recs, err = bench_data.run_driver(env, data, "128k", "scan", kind, 2, timeout=60)
        assert rc == 0, err
        setup = [r for r in recs if r["event"] == "setup"]
        scans = [r for r in recs if r["event"] == "scan"]
        assert len(setup) == 1 and setup[0]["warmup"] == "OK"
        assert [r["reason"] for r in scans] == ["OK", "OK"], (kind, scans)
        for r in scans:
            assert {"ms", "decide_ms", "alloc", "free_before"} <= set(r)
    rc, recs, err = bench_data.run_driver(env, data, "128k", "verify", 1, timeout=60)
    assert rc == 0, err
    assert [(r["ok_key"], r["ok_bytes"]) for r in recs] == [(True, True)]
    for kind in ("first", "verify"):  # the callgrind mode, run without valgrind
        rc, recs, err = bench_data.run_driver(env, data, "128k", "cg", kind, 1, timeout=60)
        assert rc == 0, err
        assert recs[-1]["ok"] == 1, recs
    assert info["typical_qr_text"].startswith("OG1:")
