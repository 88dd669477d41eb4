"""Boot time of the conversion of a version-1 operation log (the old firmware's whole default log:
16 segments of 4096 bytes, 1008 unsynced 64-byte records) into 32-byte records, beside the
reference in the same run: the next boot's plain recovery of the converted log. Runs
tests/firmware/mp/oplog_upgrade.py (bench mode) on every unix interpreter present (the 32-bit build
at the device heap, 128k), on the host's file system (times, not flash wear: the conversion's
flash operations are bounded by tests/firmware/log/test_oplog_upgrade.py's power-cut run).

    python bench/oplog_upgrade.py   -> one JSON object on stdout
"""
import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "support"))


def main():
    from mpbridge import FW_TESTS, MP32, run_micropython
    from oplogv1 import write_v1_log
    out = {"records": 1008, "segment_bytes_v1": 4096, "segment_bytes_v2": 16368}
    for name, mp, heap in (("64-bit", None, "160k"), ("32-bit", MP32, "128k")):
        if name == "32-bit" and MP32 is None:
            continue
        work = Path(tempfile.mkdtemp(prefix="offgate-oplogup-"))
        try:
            write_v1_log(work / "log", 1008)
            r = run_micropython(FW_TESTS / "oplog_upgrade.py", "bench", work / "log", 16368, heap=heap, mp=mp)
            lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
            res = json.loads(lines[-1]) if lines else {"status": "failed", "stderr": r.stderr[-500:]}
            res["heap"] = heap
            out[name] = res
        finally:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
