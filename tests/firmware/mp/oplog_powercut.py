# Power-cut test of the operation log on real littlefs (os.VfsLfs2 over a NOR-like RAM device).
#
#   micropython oplog_powercut.py BLOCK_SIZE BLOCK_COUNT SEGMENT_BYTES MAX_SEGMENTS
#
# A scripted run (appends with acknowledgements, a reboot in the middle, the log filling up
# under "refuse") is first run uncut to count its erase/program operations K. Then for EVERY
# N in 1..K: start from the same freshly formatted image, run the script with the power cut at
# operation N, remount the surviving bytes and check:
#   * the file system mounts (no reformat) and the log recovers;
#   * the chain verifies from the acknowledged point to the head;
#   * every append that returned before the cut is there, byte for byte (seq, fields, chain),
#     unless it was acknowledged; the acknowledged point is at least the last acknowledge that
#     returned True before the cut; the one in-flight append is either absent or intact;
#   * the log keeps working: one more append, another recovery, the chain still verifies.
# Prints one JSON summary line; exit status 1 on any failure.
import gc
import json
import os
import sys

import powercut_bdev
from powercut_bdev import PowerCutBdev
from offgate.log.oplog import OpLog, LogFull
from offgate.log.oplogverify import verify_records

MNT = "/pc"
T0 = 1800000000


class Cut(Exception):
    pass


def cti(i):
    return bytes([i & 255, (i >> 8) & 255, 7, 7, 7, 7, 7, 7])


def fields(i):
    # (t, cti, ctr, decision, reason) of the i-th scan: some denials, some noise without a cti
    if i % 7 == 3:
        return T0 + i, None, None, "DENY", 13
    if i % 5 == 4:
        return T0 + i, cti(i), i, "DENY", 43
    return T0 + i, cti(i), i + 1, "OPEN", 0


class Run:
    """State the checker needs: what returned before the cut."""

    def __init__(self, bdev):
        self.bdev = bdev
        self.returned = {}      # seq -> (fields, chain)
        self.inflight = None    # (seq, fields) being appended when the power went
        self.acked = 0          # last acknowledge that returned True before the cut
        self.full_hits = 0


def script(run, seg_bytes, max_segs):
    bdev = run.bdev
    lg = OpLog(MNT + "/log", seg_bytes, max_segs, "refuse")
    lg.recover()
    per = lg.per_seg
    n_scans = per * (max_segs + 2)
    for i in range(n_scans):
        f = fields(i)
        run.inflight = (lg.head()[0] + 1, f)
        try:
            seq = lg.append(*f)
        except LogFull:
            run.full_hits += 1
            run.inflight = None
            # the back office catches up: acknowledge all but the newest record
            s = lg.head()[0] - 1
            if lg.acknowledge(s, run.returned[s][1]) and not bdev.dead:
                run.acked = s
            continue
        if bdev.dead:
            return  # it returned, but after the power went: the gate could not have acted on it
        run.inflight = None
        run.returned[seq] = (f, lg.head()[1])
        if i == n_scans // 2:
            lg.close()  # a clean reboot in the middle: recovery runs on a populated log
            lg = OpLog(MNT + "/log", seg_bytes, max_segs, "refuse")
            lg.recover()
        elif i == per + 1 or i == 3 * per:
            s = seq - 2  # acknowledge part of the backlog (not a segment boundary)
            ok = lg.acknowledge(s, run.returned[s][1])
            if bdev.dead:
                return
            assert ok
            run.acked = s
    lg.close()


def mount(bdev, fmt=False):
    powercut_bdev.mount(bdev, MNT, fmt)


def umount():
    powercut_bdev.umount(MNT)


def attempt(image, bs, nb, seg_bytes, max_segs, n):
    bdev = PowerCutBdev(bs, nb, image, cut_at=n, cut_seed=n)
    run = Run(bdev)
    mount(bdev)
    try:
        script(run, seg_bytes, max_segs)
    except OSError:
        if not bdev.dead:
            raise  # an I/O error with the power on is a real failure
    finally:
        umount()
    if not bdev.dead:
        return None  # the script finished before op n: every cut point is done
    check(bytes(bdev.mem), bs, nb, seg_bytes, max_segs, run)
    return run


def check(mem, bs, nb, seg_bytes, max_segs, run):
    bdev = PowerCutBdev(bs, nb, mem)
    mount(bdev)  # must mount the surviving bytes as they are
    try:
        lg = OpLog(MNT + "/log", seg_bytes, max_segs, "refuse")
        lg.recover()
        aseq, achain = lg.acked()
        head, hchain = lg.head()
        assert aseq >= run.acked, "acknowledge lost: %d < %d" % (aseq, run.acked)
        if aseq:
            assert achain == run.returned[aseq][1], "acked chain differs"
        recs = lg.read(aseq + 1, 10000)
        assert [r["seq"] for r in recs] == list(range(aseq + 1, head + 1)), "seq gap"
        assert verify_records(achain, recs) == hchain, "chain"
        top = max(run.returned) if run.returned else 0
        assert head >= top, "returned append lost: head %d < %d" % (head, top)
        for r in recs:
            s = r["seq"]
            if s in run.returned:
                f, ch = run.returned[s]
            else:
                assert run.inflight is not None and s == run.inflight[0] and s == head, "phantom %d" % s
                f, ch = run.inflight[1], r["chain"]
            assert (r["t"], r["cti"], r["ctr"] if f[2] is not None else None, r["decision"],
                    r["reason"]) == f, "record %d differs" % s
            assert r["chain"] == ch, "record %d chain differs" % s
        # it still works after the cut (making room first if the cut left it full)
        if lg.full():
            assert lg.acknowledge(head - 1, recs[-2]["chain"])
            aseq, achain = head - 1, recs[-2]["chain"]
        lg.append(T0, cti(1), 1, "OPEN", 0)
        lg.close()
        lg2 = OpLog(MNT + "/log", seg_bytes, max_segs, "refuse")
        lg2.recover()
        assert lg2.head()[0] == head + 1
        assert verify_records(achain, lg2.read(aseq + 1, 10000)) == lg2.head()[1]
        lg2.close()
    finally:
        umount()
    assert bdev.overprogram == 0, "littlefs programmed over unerased bytes"


def main(bs, nb, seg_bytes, max_segs):
    fresh = PowerCutBdev(bs, nb)
    os.VfsLfs2.mkfs(fresh)
    image = bytes(fresh.mem)
    # the uncut run: its op count bounds the cut points
    full = PowerCutBdev(bs, nb, image)
    run = Run(full)
    mount(full)
    try:
        script(run, seg_bytes, max_segs)
    finally:
        umount()
    total = full.ops
    tried = failed = 0
    first_fail = None
    n = 1
    while True:
        try:
            r = attempt(image, bs, nb, seg_bytes, max_segs, n)
        except Exception as e:
            failed += 1
            if first_fail is None:
                first_fail = "cut %d: %s %s" % (n, type(e).__name__, e)
            r = 1
        if r is None:
            break
        tried += 1
        n += 1
        gc.collect()
    print(json.dumps({"block_size": bs, "blocks": nb, "segment_bytes": seg_bytes,
                      "max_segments": max_segs, "ops_uncut": total, "records": len(run.returned),
                      "log_full_hits": run.full_hits, "cut_points": tried, "failed": failed,
                      "first_failure": first_fail}))
    return failed


if __name__ == "__main__":
    a = [int(x) for x in sys.argv[1:5]]
    sys.exit(1 if main(*a) else 0)
