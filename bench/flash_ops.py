"""Flash erases, programs and programmed bytes per logged scan: the operation log (and the replay
commit an OPEN also makes, written between scans as Gate.idle does) on real littlefs (os.VfsLfs2) over a counting NOR block device with
the ESP32's geometry (4096-byte sectors, MicroPython's default read/prog size 32).

    python bench/flash_ops.py [SCANS]      (re-runs itself on the MicroPython unix port)

Prints one JSON object. Numbers per scan are means over SCANS scans (default 630 = ten 4 KB
segments) plus the worst scan; acknowledgements are measured separately.
"""
import sys

SCANS = int(sys.argv[1]) if len(sys.argv) > 1 else 630

if sys.implementation.name != "micropython":
    import os
    import subprocess
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(root / "host_tools"))
    from offgate_host.device import simgate
    env = simgate.micropython_env([root / "tests" / "firmware" / "mp"])
    r = subprocess.run([simgate.micropython_bin(), "-X", "heapsize=16m", __file__, str(SCANS)], env=env,
                       cwd=str(root))
    sys.exit(r.returncode)

import json  # noqa: E402
import os  # noqa: E402

from powercut_bdev import PowerCutBdev  # noqa: E402
from offgate.log.oplog import OpLog  # noqa: E402
from offgate.policy.replay import ReplayGuard  # noqa: E402

BS = 4096
BLOCKS = 512          # a 2 MB littlefs partition
T0 = 1800000000


def diff(a, b):
    return {k: b[k] - a[k] for k in a}


def measure(with_replay):
    dev = PowerCutBdev(BS, BLOCKS)
    os.VfsLfs2.mkfs(dev)
    os.mount(os.VfsLfs2(dev), "/fl")
    try:
        lg = OpLog("/fl/oplog", 4096, 32, "refuse")
        lg.recover()
        rp = ReplayGuard("/fl/replay.log", 512) if with_replay else None
        if rp:
            rp.load(T0)
        per = []
        idle = []
        acks = []
        for i in range(SCANS):
            c = dev.counters()
            cti = bytes([i & 255, (i >> 8) & 255, 1, 2, 3, 4, 5, 6])
            if rp:  # as Gate.scan: the replay record is made durable by the log's record
                rp.commit(cti, i + 1, T0 + 86400, T0, durable=False)
            lg.append(T0 + i, cti, i + 1, "OPEN", 0)
            per.append(diff(c, dev.counters()))
            if rp:  # as Gate.idle, after the relay: the replay file's write
                c = dev.counters()
                rp.sync()
                idle.append(diff(c, dev.counters()))
            if i % 200 == 199:  # a sync every 200 scans acknowledges all but the newest 10
                c = dev.counters()
                s = lg.head()[0] - 10
                assert lg.acknowledge(s, lg.read(s, 1)[0]["chain"])
                acks.append(diff(c, dev.counters()))
        lg.close()
        if rp:
            rp.close()
    finally:
        os.umount("/fl")

    def stats(rows):
        n = len(rows)
        out = {}
        for k in ("erases", "programs", "prog_bytes"):
            v = [r[k] for r in rows]
            out[k + "_mean"] = round(sum(v) / n, 2)
            out[k + "_max"] = max(v)
        return out
    return stats(per), stats(acks) if acks else None, stats(idle) if idle else None


log_only, ack, _ = measure(False)
open_scan, _, open_idle = measure(True)
print(json.dumps({
    "geometry": {"block_size": BS, "blocks": BLOCKS, "prog_size": 32, "segment_bytes": 4096,
                 "record_bytes": 64},
    "scans": SCANS,
    "per_logged_scan": log_only,          # oplog.append (every scan, OPEN or DENY)
    "per_open_scan": open_scan,           # replay.commit (queued) + oplog.append: an OPEN's decision path
    "per_open_idle": open_idle,           # the replay file's write after the relay (Gate.idle)
    "per_acknowledge": ack,
    "raw_region_estimate": {"erases_mean": round(64 / 4096, 4), "programs_mean": 1, "prog_bytes_mean": 64},
}))
