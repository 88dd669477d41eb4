# Conversion of a version-1 operation log (64-byte records, written by the old firmware: the
# committed fixture tests/fixtures/oplog_v1/log) at boot, on real MicroPython.
#
#   micropython oplog_upgrade.py convert FIXTURE_DIR WORK_DIR SEGMENT_BYTES
#       copy the fixture into WORK_DIR (the unix file system), open the log (recover(): the
#       conversion, then the recovery), print one JSON line: the recovery summary, the log's
#       records after the acknowledged point (raw 32 bytes, hex, and chain), head/acked, and the
#       heap taken by the modules left loaded (must be none of the conversion's)
#   micropython oplog_upgrade.py powercut FIXTURE_DIR SEGMENT_BYTES BLOCK_SIZE BLOCK_COUNT
#       the same on littlefs (os.VfsLfs2 over powercut_bdev), the power cut at EVERY
#       erase/program operation of the boot in turn; after each cut: remount, boot again, and the
#       log must be exactly the uncut conversion's (same seqs, bytes, chains: nothing lost or
#       duplicated), then take one append. One JSON summary line.
#   micropython oplog_upgrade.py nospace FIXTURE_DIR
#       on littlefs filled up so that the copy does not fit: the boot keeps the old log untouched
#       (summary "upgrade_failed"), takes no record (LogFull), and once space is back the next
#       boot converts it. One JSON line.
#   micropython oplog_upgrade.py bench WORK_DIR SEGMENT_BYTES
#       time the converting boot (recover() of a version-1 log in WORK_DIR) and, the reference in
#       the same run, the next boot's recover() of the converted log (bench/oplog_upgrade.py)
import json
import os
import sys

from offgate.log.oplog import OpLog

MNT = "/pcu"


def copy_fixture(src, dst):
    try:
        os.mkdir(dst)
    except OSError:
        pass
    for nm in os.listdir(src):
        with open(src + "/" + nm, "rb") as f:
            b = f.read()
        with open(dst + "/" + nm, "wb") as f:
            f.write(b)


def snapshot(lg):
    aseq, achain = lg.acked()
    head, hchain = lg.head()
    recs = []
    for seq, b, ok, c in lg.chained(aseq + 1, 100000):
        recs.append([seq, bytes(b).hex(), ok, c.hex()])
    return {"acked": aseq, "acked_chain": achain.hex(), "head": head, "head_chain": hchain.hex(),
            "records": recs}


def boot(root, seg_bytes):
    lg = OpLog(root, seg_bytes, 62, "refuse")
    s = lg.recover()
    return lg, s


def convert(fixture, work, seg_bytes):
    copy_fixture(fixture + "/log", work)
    lg, s = boot(work, seg_bytes)
    out = snapshot(lg)
    out["summary"] = s
    out["files"] = sorted(os.listdir(work))
    out["loaded"] = sorted(k for k in sys.modules if k.startswith("offgate.log."))
    lg.close()
    # a second boot changes nothing
    lg, s2 = boot(work, seg_bytes)
    out["again"] = snapshot(lg) == {k: out[k] for k in ("acked", "acked_chain", "head", "head_chain", "records")}
    out["summary2"] = s2
    lg.close()
    print(json.dumps(out))


def powercut(fixture, seg_bytes, bs, nb):
    from powercut_bdev import PowerCutBdev
    base = PowerCutBdev(bs, nb)
    os.VfsLfs2.mkfs(base)
    os.mount(os.VfsLfs2(base), MNT)
    copy_fixture(fixture + "/log", MNT + "/log")
    os.umount(MNT)
    image = bytes(base.mem)
    # the uncut boot: the reference
    ref_dev = PowerCutBdev(bs, nb, image)
    os.mount(os.VfsLfs2(ref_dev), MNT)
    lg, s = boot(MNT + "/log", seg_bytes)
    ref = snapshot(lg)
    lg.close()
    os.umount(MNT)
    total = ref_dev.ops
    tried = failed = 0
    first_fail = None
    v1_left = v2_done = 0
    n = 1
    while True:
        dev = PowerCutBdev(bs, nb, image, cut_at=n, cut_seed=n)
        os.mount(os.VfsLfs2(dev), MNT)
        try:
            boot(MNT + "/log", seg_bytes)[0].close()
        except OSError:
            if not dev.dead:
                raise
        try:
            os.umount(MNT)
        except OSError:
            pass
        if not dev.dead:
            break
        tried += 1
        try:
            dev2 = PowerCutBdev(bs, nb, bytes(dev.mem))
            os.mount(os.VfsLfs2(dev2), MNT)
            try:
                names = os.listdir(MNT + "/log")
                if "upgrade" in names or any(nm.endswith(".tmp") for nm in names):
                    v2_done += 1 if "upgrade" in names else 0
                lg, s = boot(MNT + "/log", seg_bytes)
                got = snapshot(lg)
                assert got == ref, "log differs after the cut: %s" % json.dumps(got)[:300]
                left = [nm for nm in os.listdir(MNT + "/log") if nm.endswith(".tmp") or nm == "upgrade"]
                assert not left, "left behind: %s" % left
                assert lg.append(1, b"12345678", 1, "OPEN", 0) == ref["head"] + 1
                lg.close()
            finally:
                os.umount(MNT)
            assert dev2.overprogram == 0
        except Exception as e:
            failed += 1
            if first_fail is None:
                first_fail = "cut %d: %s %s" % (n, type(e).__name__, e)
        n += 1
    print(json.dumps({"ops_uncut": total, "cut_points": tried, "failed": failed, "first_failure": first_fail,
                      "cuts_after_commit": v2_done, "records": len(ref["records"]), "head": ref["head"]}))
    return failed


def bench(work, seg_bytes):
    import gc
    import time
    gc.collect()
    t = time.ticks_us()
    lg, s = boot(work, seg_bytes)
    conv = time.ticks_diff(time.ticks_us(), t)
    lg.close()
    gc.collect()
    t = time.ticks_us()
    lg, s2 = boot(work, seg_bytes)
    plain = time.ticks_diff(time.ticks_us(), t)
    lg.close()
    print(json.dumps({"converted": s["upgraded"][0], "head": s2["head"], "converting_boot_ms": conv // 1000,
                      "plain_recovery_ms": plain // 1000}))


def nospace(fixture):
    from powercut_bdev import PowerCutBdev
    from offgate.log.oplog import LogFull
    dev = PowerCutBdev(512, 40)
    os.VfsLfs2.mkfs(dev)
    os.mount(os.VfsLfs2(dev), MNT)
    out = {}
    try:
        copy_fixture(fixture + "/log", MNT + "/log")
        before = {nm: open(MNT + "/log/" + nm, "rb").read() for nm in os.listdir(MNT + "/log")}
        with open(MNT + "/filler", "wb") as f:  # the rest of the file system, in 512-byte steps
            try:
                while True:
                    f.write(bytes(512))
                    f.flush()
            except OSError:
                pass
        lg, s = boot(MNT + "/log", 224)
        out["summary"] = s
        try:
            lg.append(1, b"12345678", 1, "OPEN", 0)
            out["append"] = "logged"
        except LogFull:
            out["append"] = "LogFull"
        out["status_full"] = lg.status()["full"]
        out["read"] = len(lg.read(1, 100))
        lg.close()
        after = {nm: open(MNT + "/log/" + nm, "rb").read() for nm in os.listdir(MNT + "/log")}
        out["unchanged"] = after == before
        os.remove(MNT + "/filler")
        lg, s = boot(MNT + "/log", 224)
        out["summary2"] = s
        out["head"] = lg.head()[0]
        out["records"] = [r["seq"] for r in lg.read(lg.acked()[0] + 1, 100)]
        lg.close()
    finally:
        os.umount(MNT)
    print(json.dumps(out))


if sys.argv[1] == "nospace":
    nospace(sys.argv[2])
elif sys.argv[1] == "bench":
    bench(sys.argv[2], int(sys.argv[3]))
elif sys.argv[1] == "convert":
    convert(sys.argv[2], sys.argv[3], int(sys.argv[4]))
else:
    sys.exit(1 if powercut(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])) else 0)
