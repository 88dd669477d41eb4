"""Smoke test for bench/privacy_bench.py (receipts, statistics): the bench code runs on small
sizes and its results hold together. No timing is checked."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import privacy_bench  # noqa: E402


def test_privacy_bench_small(tmp_path):
    st = privacy_bench.bench_stats(400)
    assert st["cells"] == 384 and st["submission_bytes"] > 8 * 384
    r = privacy_bench.bench_receipts(4, None, "sqlite")
    assert r["receipts"] == 4 and r["bundle_bytes_median"] > 0
