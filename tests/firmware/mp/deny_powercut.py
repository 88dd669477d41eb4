# Power-cut test of a deny delta's install on real littlefs (os.VfsLfs2 over the NOR-like RAM
# device of powercut_bdev.py): the old list and a delta are on flash, then offgate.policy.denydelta
# merges and installs (what offgate/sync/admin.py does after the signature check), with the power cut at
# EVERY erase/program of that run in turn. After each cut the surviving bytes are mounted again
# and deny.bin must open (whole-file check: CRC, order) as exactly the old or exactly the new list.
# Usage: micropython -X heapsize=4m deny_powercut.py BLOCK_SIZE BLOCKS N_OLD N_CHANGES
import gc
import hashlib
import json
import os
import struct
import sys

import powercut_bdev
from powercut_bdev import PowerCutBdev
from test_denydelta import write_full, write_delta, SIG
from fwutil import cti
from offgate.policy import denydelta
from offgate.policy.denylist import DenyList

MNT = "/pc"


def mount(bdev, fmt=False):
    powercut_bdev.mount(bdev, MNT, fmt)


def umount():
    powercut_bdev.umount(MNT)


def install(n_new):
    dl = DenyList(MNT + "/deny.bin")
    size = os.stat(MNT + "/deny.bin.tmp")[6]
    with open(MNT + "/deny.bin.tmp", "rb") as f:
        head = denydelta.check(f, size)
    try:
        denydelta.install(dl, MNT + "/deny.bin.tmp", MNT + "/deny.bin.new.tmp", MNT + "/deny.bin", head, DIGEST[0])
    finally:
        dl.close()
    os.remove(MNT + "/deny.bin.tmp")  # as offgate/sync/admin.py does after the install


DIGEST = [None]


def outcome(mem, bs, nb, n_old, n_new):
    bdev = PowerCutBdev(bs, nb, mem)
    mount(bdev)
    try:
        dl = DenyList(MNT + "/deny.bin")  # raises if damaged
        got = (dl.serial, dl.count)
        if got == (5, n_old):
            assert dl.contains(cti(0)) and not dl.contains(cti(1))
            r = "old"
        elif got == (6, n_new):
            assert not dl.contains(cti(0)) and dl.contains(cti(1))
            r = "new"
        else:
            raise AssertionError("deny.bin is neither list: serial %d, %d ids" % got)
        dl.close()
        return r
    finally:
        umount()


def main(bs, nb, n_old, k):
    fresh = PowerCutBdev(bs, nb)
    mount(fresh, True)
    try:
        write_full(MNT + "/deny.bin", lambda i: cti(2 * i), n_old, serial=5)
        add = lambda i: cti(2 * (i * 3) + 1)
        rm = lambda i: cti(2 * (i * 5))
        write_delta(MNT + "/deny.bin.tmp", add, k, rm, k, 6, 1800000100, 5, n_old)
    finally:
        umount()
    image = bytes(fresh.mem)
    # the uncut run gives the digest to expect (checked against an independent build in
    # test_denydelta) and the number of cut points
    full = PowerCutBdev(bs, nb, image)
    mount(full)
    try:
        dl = DenyList(MNT + "/deny.bin")
        size = os.stat(MNT + "/deny.bin.tmp")[6]
        with open(MNT + "/deny.bin.tmp", "rb") as f:
            head = denydelta.check(f, size)
        DIGEST[0] = denydelta.merge(dl._f, dl._h, dl.count, MNT + "/deny.bin.tmp", MNT + "/scratch", head)
        dl.close()
        os.remove(MNT + "/scratch")
    finally:
        umount()
    full = PowerCutBdev(bs, nb, image)
    mount(full)
    try:
        install(n_old)
    finally:
        umount()
    total = full.ops
    assert outcome(bytes(full.mem), bs, nb, n_old, n_old) == "new"
    seen = {"old": 0, "new": 0}
    failed = 0
    first = None
    n = 1
    while n <= total:
        bdev = PowerCutBdev(bs, nb, image, cut_at=n, cut_seed=n)
        mount(bdev)
        try:
            install(n_old)
        except Exception:
            if not bdev.dead:
                failed += 1
                first = first or "cut %d: failed with the power on" % n
        finally:
            umount()
        try:
            seen[outcome(bytes(bdev.mem), bs, nb, n_old, n_old)] += 1
        except Exception as e:
            failed += 1
            if first is None:
                first = "cut %d: %s %s" % (n, type(e).__name__, e)
        n += 1
        gc.collect()
    print(json.dumps({"block_size": bs, "blocks": nb, "ids": n_old, "changes": 2 * k, "ops_uncut": total,
                      "cut_points": n - 1, "old": seen["old"], "new": seen["new"], "failed": failed,
                      "first_failure": first}))
    return failed


if __name__ == "__main__":
    a = [int(x) for x in sys.argv[1:5]]
    sys.exit(1 if main(*a) else 0)
