"""Power-cut test of the operation log on real littlefs, run on MicroPython.

tests/firmware/mp/oplog_powercut.py mounts os.VfsLfs2 on a NOR-like RAM block device
(tests/firmware/mp/powercut_bdev.py), runs a scripted sequence of logged scans, acknowledgements,
a reboot and a full log, and cuts the power at EVERY erase/program operation of that run in
turn (a partial program or a half erase at the cut), then remounts the surviving bytes and checks
the log. The heap is larger than the gate's: the test keeps flash images in RAM.
"""
import json

import pytest

from mpbridge import FW_TESTS, run_micropython


@pytest.mark.parametrize("geometry", [
    (512, 128, 512, 4),     # small blocks: many segments, rotation, full log, deletions
    (4096, 32, 1024, 3),    # ESP32 flash sector size
])
def test_every_cut_point_recovers(geometry):
    r = run_micropython(FW_TESTS / "oplog_powercut.py", *geometry, heap="4m", timeout=300)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    assert lines, r.stdout + r.stderr
    res = json.loads(lines[-1])
    print(res)
    assert res["failed"] == 0 and r.returncode == 0, res["first_failure"]
    assert res["cut_points"] == res["ops_uncut"] and res["cut_points"] > 200
    assert res["records"] > 30


def test_default_log_holds_three_busy_days_in_one_mib():
    """Issue 12: >= 3 days of a 10,000-passage/day gate in <= 1 MiB of flash, measured on littlefs
    (4 KiB blocks): one full default segment takes 4 blocks, the default log 62 of them."""
    r = run_micropython(FW_TESTS / "oplog_capacity.py", heap="1m", timeout=120)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    assert lines, r.stdout + r.stderr
    res = json.loads(lines[-1])
    print(res)
    assert res["file_bytes"] == res["segment_bytes"] - 16      # header + 509 records, 16 bytes spare
    assert res["blocks_one_segment"] <= 4
    assert res["records"] >= 30000 and res["log_bytes"] <= 1024 * 1024
