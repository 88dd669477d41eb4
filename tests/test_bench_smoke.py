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


def test_sync_heap_seal_driver(tmp_path):
    """bench/mp_seal.py (the gate side of a 200-record pull, callgrind in bench/sync_heap.py) runs
    in each mode on the 64-bit port; no valgrind, no timing."""
    import json
    import subprocess
    sys.path.insert(0, str(BENCH.parent / "tests" / "support"))
    from backlog import prefill
    from offgate_host.device import simgate
    prefill(tmp_path, 210)
    env = simgate.micropython_env([BENCH])
    for mode in ("none", "session", "per_seal", "bigint"):
        r = subprocess.run([simgate.micropython_bin(), "-X", "heapsize=256k", str(BENCH / "mp_seal.py"), str(tmp_path),
                            mode, "1"], capture_output=True, text=True, env=env, timeout=120)
        assert r.returncode == 0, r.stderr
        rec = json.loads(r.stdout.strip().splitlines()[-1])
        assert rec["ok"] == (0 if mode == "none" else 1) and (mode == "none" or rec["bytes"] > 4000), (mode, rec)


def test_sync_bench_runs_small():
    """bench/sync_bench.py still drives sync_gate (it broke once when sync_gate began passing
    session= to open_batch); 300 records, SQLite only, no timing checked."""
    import json
    import subprocess
    r = subprocess.run([sys.executable, str(BENCH / "sync_bench.py"), "--records", "300", "--pg", ""],
                       capture_output=True, text=True, timeout=300, cwd=str(BENCH.parent))
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert [x["db"] for x in out["results"]] == ["sqlite"]
    assert out["results"][0]["records"] == 300 and out["results"][0]["settled_trips"] > 0


def test_boot_only_code_is_not_resident_after_boot():
    """bench/bootmap.py (docs/performance.md "The gate's heap after boot"): after the gate's boot
    with the simulator's parts, the boot-only and on-demand modules are gone from the heap (the
    status report, the replay file's reader, the trust store's checks, the boot wiring, the
    config checker, log recovery) and the scan path is there. No size is checked: sizes go in
    `make bench` (section boot_heap)."""
    import json
    import subprocess
    r = subprocess.run([sys.executable, str(BENCH / "bootmap.py"), "--sim", "--64"], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout)
    assert "64-bit .mpy" in res
    for name, v in res.items():
        resident = set(v["resident"])
        assert {"offgate.gate", "offgate.policy.verifier", "offgate.log.oplog", "sim.streams"} <= resident, name
        dropped = {"offgate.gateboot", "offgate.gatestatus", "offgate.policy.replayfile", "offgate.policy.trustfile",
                   "offgate.config", "offgate.log.oplogrecover", "offgate.timekeep", "offgate.statedir",
                   "offgate.crypto.keytables", "offgate.log.oplogverify"}
        assert not dropped & resident, (name, sorted(dropped & resident))
        assert v["boot_bytes"] > 0 and v["at_128k"]["free_bytes"] > 0, name
