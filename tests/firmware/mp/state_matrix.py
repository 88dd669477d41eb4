# Boot on any damaged state (issue #10): every state file the gate reads x every damage, on
# MicroPython at the device heap. The host (tests/firmware/gate/test_state_matrix.py) made SCENARIO/: an intact
# state dir `intact/` (trust store, issuer tables, deny list with R revoked, gate.json,
# clock.json), codes.json (B1 accepted once in the intact state, R1 revoked, A1 valid) and
# variant files for "wrong version".
#
#   micropython state_matrix.py SCENARIO [FILE:DAMAGE ...]   (FILE "*": filesystem-wide rows
#                                                            fs_full, read_only, full_fs_boot)
#
# For each row: copy the intact state (after B1 was accepted there) to a fresh dir, damage it,
# gate.build() it (boot), scan B1 again, R1, A1; print one JSON line per row:
#   {"file", "damage", "boot": "ok" | "refused: <why>", "notes": [...], "B1", "R1", "A1"}
# The host checks: the gate boots or names why; the notes name what was found; B1 and R1 (which
# the intact gate refuses) are never OPEN.
import gc
import json
import os
import sys

from offgate import gate, unload
from offgate.clock import Clock

NOW = 0
LFS = "/lfsm"


class Out:
    def __init__(self):
        self.last = None

    def write(self, s):
        if s != "\n":  # Gate.emit writes a line, then its end
            self.last = s

    def flush(self):
        pass


class Act:
    def open(self, ms):
        pass

    def deny(self, reason):
        pass


def copy(src, dst):
    buf = bytearray(512)
    with open(src, "rb") as f, open(dst, "wb") as g:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            g.write(memoryview(buf)[:n])


def is_dir(p):
    try:
        return os.stat(p)[0] & 0x4000 != 0
    except OSError:
        return False


def copytree(src, dst):
    try:
        os.mkdir(dst)
    except OSError:
        pass
    for name in os.listdir(src):
        if is_dir(src + "/" + name):
            copytree(src + "/" + name, dst + "/" + name)
        else:
            copy(src + "/" + name, dst + "/" + name)


def rmtree(p):
    if is_dir(p):
        for name in os.listdir(p):
            rmtree(p + "/" + name)
        os.rmdir(p)
    else:
        try:
            os.remove(p)
        except OSError:
            pass


def size(p):
    return os.stat(p)[6]


def read(p):
    with open(p, "rb") as f:
        return f.read()


def write(p, data):
    with open(p, "wb") as f:
        f.write(data)


def target(d, name):
    """Path of the file standing for `name` in state dir d (the oplog: its first segment)."""
    if name == "oplog":
        segs = sorted(n for n in os.listdir(d + "/oplog") if n.endswith(".seg"))
        return d + "/oplog/" + segs[0]
    return d + "/" + name


def damage(d, name, kind, sc):
    p = target(d, name)
    if kind == "missing":
        rmtree(p)
    elif kind == "empty":
        write(p, b"")
    elif kind == "truncated":
        n = size(p) // 2
        copy(p, p + ".x")
        buf = bytearray(256)
        with open(p + ".x", "rb") as f, open(p, "wb") as g:
            while n > 0:
                k = f.readinto(buf)
                g.write(memoryview(buf)[:min(k, n)])
                n -= k
        os.remove(p + ".x")
    elif kind == "garbage":
        n = size(p)
        with open(p, "wb") as f:
            x = 12345
            for _ in range(n):
                x = (x * 1103515245 + 12345) & 0x7FFFFFFF
                f.write(bytes([x >> 16 & 255]))
    elif kind.startswith("bitflip"):
        n = size(p)
        if not n:
            return False
        i = n * (1 if kind == "bitflip1" else 2) // 3
        with open(p, "r+b") as f:
            f.seek(i)
            b = f.read(1)
            f.seek(i)
            f.write(bytes([b[0] ^ 0x10]))
    elif kind == "wrong_version":
        alt = sc["dir"] + "/variants/" + name
        try:
            os.stat(alt)
        except OSError:
            off = {"deny.bin": 4, "issuer_tables.bin": 4, "oplog": 3}.get(name)
            if off is None or size(p) <= off:
                return False  # no version field
            with open(p, "r+b") as f:
                f.seek(off)
                b = f.read(1)
                f.seek(off)
                f.write(bytes([(b[0] + 1) & 255]))
            return True
        copy(alt, p)
    elif kind == "oversized":
        with open(p, "ab") as f:
            chunk = b"\xa5" * 1024
            for _ in range(200):  # +200 KB: more than a 128 KB heap could ever read whole
                f.write(chunk)
    elif kind == "directory":
        rmtree(p)
        os.mkdir(p)
    else:
        raise ValueError(kind)
    return True


def run_row(sc, d, name, kind, clock):
    out = Out()
    row = {"file": name, "damage": kind}
    try:
        if name == "gate.json":
            from offgate import config
            cfg = config.load(d + "/gate.json")
            unload("offgate.config")
        else:
            cfg = dict(sc["cfg"])
        cfg["state_dir"] = d
    except Exception as e:
        row["boot"] = "refused: %s" % e
        return row
    g = None
    try:
        g = gate.build(cfg, Act(), out, clock)
    except Exception as e:  # the gate must never get here: a boot that fails is a boot loop
        row["boot"] = "CRASH %s: %s" % (type(e).__name__, e)
        return row
    if out.last is None:  # the boot report could not be written: that is a failure too
        row["boot"] = "CRASH no boot report"
        return row
    boot = json.loads(out.last)
    row["boot"] = "ok"
    row["notes"] = boot.get("notes")
    for k in ("fs_free_bytes", "log_full"):
        row[k] = boot.get(k)
    for k in ("B1", "R1", "A1"):
        row[k] = g.scan(sc["codes"][k].encode()).reason
        gc.collect()
    row["disk_full"] = g.disk_full
    g.replay.close()
    if g.oplog is not None:
        g.oplog._close()
    _last_gate[0] = g
    reboot()
    return row


def reboot():
    """What a reboot would free: G's comb table loaded from the firmware (no tables file)."""
    from offgate.crypto import p256
    p256.set_gcomb(None)
    unload("offgate.crypto._gen_p256_gtable")
    gc.collect()


_last_gate = [None]


class FileBdev:
    """A block device over a host file (littlefs rows): no flash image in the heap."""

    def __init__(self, path, bs, count):
        self.f = open(path, "w+b")
        self.bs = bs
        self.count = count
        ff = b"\xff" * 256
        for _ in range(bs * count // 256):
            self.f.write(ff)

    def readblocks(self, block, buf, off=0):
        self.f.seek(block * self.bs + off)
        self.f.readinto(buf)

    def writeblocks(self, block, buf, off=None):
        self.f.seek(block * self.bs + (off or 0))
        self.f.write(buf)
        return 0

    def ioctl(self, op, arg):
        if op == 4:
            return self.count
        if op == 5:
            return self.bs
        if op == 6:
            self.f.seek(arg * self.bs)
            ff = b"\xff" * 256
            for _ in range(self.bs // 256):
                self.f.write(ff)
            return 0
        return 0


def lfs_row(sc, kind, clock, tmpdir):
    """Filesystem-wide rows on littlefs: "fs_full" (ballast until ENOSPC) and "read_only"."""
    bdev = FileBdev(tmpdir + "/lfs-%s.img" % kind, 4096, 40)
    os.VfsLfs2.mkfs(bdev)
    vfs = os.VfsLfs2(bdev)
    os.mount(vfs, LFS)
    try:
        copytree(sc["dir"] + "/accepted", LFS + "/state")
        if kind == "stale_tmp":  # power cuts before the renames of atomic writes
            for n in ("deny.bin.tmp", "trust.cbor.tmp", "clock.json.tmp", "sync.json.tmp", "replay.log.tmp"):
                write(LFS + "/state/" + n, b"\x01" * 50)
        if kind == "full_fs_boot":  # field case: a torn replay file, a stale .tmp, then a full fs
            copy(sc["fullfs"], LFS + "/state/replay.log")
            write(LFS + "/state/replay.log.tmp", b"\x00" * 100)
        if kind in ("fs_full", "full_fs_boot"):
            chunk = b"\x00" * 1024
            try:
                with open(LFS + "/ballast", "wb") as f:
                    while True:
                        f.write(chunk)
                        f.flush()
            except OSError:
                pass
        elif kind == "read_only":
            os.umount(LFS)
            vfs = os.VfsLfs2(bdev)
            os.mount(vfs, LFS, readonly=True)
        row = run_row(sc, LFS + "/state", "*", kind, clock)
        if kind == "stale_tmp" and row["boot"] == "ok":
            row["tmp_left"] = [n for n in os.listdir(LFS + "/state") if n.endswith(".tmp")]
        if kind == "full_fs_boot" and row["boot"] == "ok":
            row["tmp_left"] = "replay.log.tmp" in os.listdir(LFS + "/state")
            kept = 0
            rg = _last_gate[0].replay
            with open(sc["fullfs"], "rb") as f:
                rec = bytearray(20)
                while f.readinto(rec) == 20:
                    if rg.highest(bytes(rec[0:8])) >= (rec[8] << 24 | rec[9] << 16 | rec[10] << 8 | rec[11]):
                        kept += 1
            row["replay_kept"] = kept
        _last_gate[0] = None
        return row
    finally:
        os.umount(LFS)
        bdev.f.close()


DAMAGES = ("missing", "empty", "truncated", "garbage", "bitflip1", "bitflip2", "wrong_version", "oversized",
           "directory")


def main():
    base = sys.argv[1]
    with open(base + "/scenario.json") as f:
        sc = json.load(f)
    sc["dir"] = base
    from offgate import config
    sc["cfg"] = config.load(base + "/intact/gate.json")
    config = None
    unload("offgate.config")
    t = sc["now"]
    clock = Clock(source=lambda: t)
    # the intact state once: B1 accepted (replay.log, oplog written), kept as accepted/
    acc = base + "/accepted"
    if not is_dir(acc):
        copytree(base + "/intact", acc)
        cfg = dict(sc["cfg"])
        cfg["state_dir"] = acc
        out = Out()
        g = gate.build(cfg, Act(), out, clock)
        r = g.scan(sc["codes"]["B1"].encode()).reason
        assert r == 0, r
        g.idle()  # the replay file's queued record written
        h = g.oplog.head()  # a sync acknowledged it: from now on only replay.log remembers B1
        assert g.oplog.acknowledge(h[0], h[1])
        g.scan(b"garbage")  # a DENY record after it, so the log has a segment to damage
        g.replay.close()
        g.oplog._close()
        g = None
        gc.collect()
    for arg in sys.argv[2:]:  # FILE:DAMAGE, one row (the host runs one process per row: a reboot)
        name, _, kind = arg.partition(":")
        if name == "*":
            row = lfs_row(sc, kind, clock, base)
            print(json.dumps(row))
            continue
        d = base + "/row-%s-%s" % (name.replace(".", "_"), kind)
        copytree(acc, d)
        if not damage(d, name, kind, sc):
            print(json.dumps({"file": name, "damage": kind, "boot": "n/a"}))
            continue
        print(json.dumps(run_row(sc, d, name, kind, clock)))

main()
