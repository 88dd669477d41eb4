"""Deny list deltas (offgate/policy/denydelta.py): the streaming merge against lists built independently
here, a wrong base refused, and a 100,000-id list merged and searched with no heap growth."""
import gc
import hashlib
import struct

from offgate.policy import denydelta
from offgate.checksum import crc32
from offgate.policy.denycheck import DenyListError
from offgate.policy.denylist import DenyList
from fwutil import scratch_dir, write, read, cti

SIG = b"\xd2\x84fake-root-signature"  # the merge carries the signature, it does not check it


def full_head(n, serial, issued, L=8):
    return b"OGDL\x02\x00" + bytes((L % 8, 0)) + struct.pack(">IIII", n, serial, issued, 0)


def write_full(path, ids_fn, n, serial=5, issued=1800000000, sig=SIG, L=8):
    """A version-2 list of n ids (ids_fn(i), ascending), written in pieces: never whole in RAM.
    Returns the SHA-256 of its header and ids (what the root signature covers)."""
    h = hashlib.sha256()
    with open(path, "wb") as f:
        head = full_head(n, serial, issued, L)
        crc = crc32(head)
        h.update(head)
        f.write(head)
        i = 0
        while i < n:
            piece = b"".join([ids_fn(j)[:L] for j in range(i, min(n, i + 64))])
            crc = crc32(piece, crc)
            h.update(piece)
            f.write(piece)
            i += 64
        tail = struct.pack(">H", len(sig)) + sig
        f.write(tail)
        f.write(struct.pack(">I", crc32(tail, crc) & 0xFFFFFFFF))
    return h.digest()


def delta_image(adds, removes, serial, issued, base, n, sig=SIG, L=8):
    adds = sorted(set(x[:L] for x in adds))
    removes = sorted(set(x[:L] for x in removes))
    body = b"OGDL\x02\x01" + bytes((L % 8, 0)) + struct.pack(">IIIIII", len(adds) + len(removes), serial, issued, base,
                                                 len(adds), n)
    body += b"".join(adds) + b"".join(removes) + struct.pack(">H", len(sig)) + sig
    return body + struct.pack(">I", crc32(body) & 0xFFFFFFFF)


def apply(d, old_path, delta):
    """check + merge as offgate/sync/admin.py does (without the signature): -> (digest, head)."""
    write(d + "/delta", delta)
    dl = DenyList(old_path)
    try:
        with open(d + "/delta", "rb") as f:
            head = denydelta.check(f, len(delta))
        return denydelta.merge(dl._f, dl._h, dl.count, d + "/delta", d + "/new", head), head
    finally:
        dl.close()


def test_merge_small_lists_match_a_list_built_whole():
    merge_small(8)


def test_merge_small_lists_of_5_byte_prefixes():
    merge_small(5)


def merge_small(L):
    d = scratch_dir("dd")
    old = [cti(i * 4) for i in range(120)]
    write_full(d + "/deny.bin", lambda i: old[i], len(old), L=L)
    cases = [
        ([cti(1), cti(5), cti(4 * 119 + 1), cti(0x7FFFFFFF)], [cti(0), cti(8), cti(4 * 119)]),  # ends included
        ([], []),                                      # a re-signed list, nothing changed
        ([], old),                                     # everything removed
        ([cti(4 * i + 2) for i in range(120)], []),    # as many adds as ids, interleaved
    ]
    for adds, removes in cases:
        new = sorted((set(old) | set(adds)) - set(removes))
        digest, head = apply(d, d + "/deny.bin", delta_image(adds, removes, 6, 1800000100, 5, len(new), L=L))
        want = full_head(len(new), 6, 1800000100, L) + b"".join([x[:L] for x in new])
        got = read(d + "/new")
        assert got[:len(want)] == want and digest == hashlib.sha256(want).digest()
        tail = struct.pack(">H", len(SIG)) + SIG
        assert got[len(want):-4] == tail and struct.unpack(">I", got[-4:])[0] == crc32(want + tail) & 0xFFFFFFFF
        dl = DenyList(d + "/new")   # the merged file passes the whole-file check of a boot
        assert dl.count == len(new) and dl.serial == 6 and dl._len == L and all(dl.contains(x) for x in adds)
        assert not any(dl.contains(x) for x in removes)
        dl.close()


def test_wrong_base_is_refused():
    d = scratch_dir("dd")
    old = [cti(i * 4) for i in range(50)]
    write_full(d + "/deny.bin", lambda i: old[i], len(old))
    for adds, removes, n in (([cti(4)], [], 51),        # adds an id already there
                             ([], [cti(5)], 49),        # removes an id not there
                             ([cti(5)], [], 52),        # the count the signature gives is wrong
                             ([cti(5)], [cti(5)], 50)):  # both added and removed
        try:
            apply(d, d + "/deny.bin", delta_image(adds, removes, 6, 1800000100, 5, n))
            assert False, "merged a delta for another list"
        except DenyListError:
            pass


def test_delta_of_another_id_length_does_not_fit():
    d = scratch_dir("dd")
    old = [cti(i * 4) for i in range(50)]
    write_full(d + "/deny.bin", lambda i: old[i], len(old), L=5)
    dl = DenyList(d + "/deny.bin")
    delta = delta_image([cti(1)], [], 6, 1800000100, 5, 51, L=8)
    write(d + "/delta", delta)
    with open(d + "/delta", "rb") as f:
        head = denydelta.check(f, len(delta))
    assert head[7] == 8 and dl._len == 5  # sync/admin.py refuses this pair before any merge
    dl.close()


def test_damaged_delta_is_refused():
    d = scratch_dir("dd")
    good = delta_image([cti(1), cti(9)], [cti(4)], 6, 1800000100, 5, 3)
    bad = bytearray(good)
    bad[33] ^= 1                                         # a flipped bit: CRC
    unsorted = delta_image([cti(1)], [], 6, 1800000100, 5, 3)
    unsorted = bytearray(unsorted)
    for b in (bytes(bad), good[:-1], good[:30], b"XXXX" + good[4:], bytes(unsorted[:8]) + b"\x00\x00\x00\x02" + bytes(unsorted[12:]),
              delta_image([cti(9), cti(1)], [], 6, 1800000100, 5, 3)[:32] + cti(9) + cti(1) + good[48:]):
        write(d + "/delta", b)
        try:
            with open(d + "/delta", "rb") as f:
                denydelta.check(f, len(b))
            assert False, "damaged delta accepted"
        except DenyListError:
            pass
    write(d + "/delta", delta_image([], [], 5, 1800000100, 5, 0))  # not newer than its base
    try:
        with open(d + "/delta", "rb") as f:
            denydelta.check(f, 200)
        assert False
    except DenyListError:
        pass


def write_delta(path, add_fn, a, rm_fn, r, serial, issued, base, n, sig=SIG, L=8):
    """delta_image written id by id (a 128 KiB heap has no room for big lists in a test either)."""
    with open(path, "wb") as f:
        head = b"OGDL\x02\x01" + bytes((L % 8, 0)) + struct.pack(">IIIIII", a + r, serial, issued, base, a, n)
        crc = crc32(head)
        f.write(head)
        for fn, k in ((add_fn, a), (rm_fn, r)):
            for i in range(k):
                x = fn(i)[:L]
                crc = crc32(x, crc)
                f.write(x)
        tail = struct.pack(">H", len(sig)) + sig
        f.write(tail)
        f.write(struct.pack(">I", crc32(tail, crc) & 0xFFFFFFFF))


def test_100k_list_merged_and_searched_without_heap_growth():
    import os
    d = scratch_dir("dd")
    n = 100000
    k = 500
    L = 5                                                 # the back office's default (§6)
    write_full(d + "/deny.bin", lambda i: cti(2 * i), n, L=L)  # even ids
    add = lambda i: cti(2 * (i * 97) + 1)                 # odd: new (ascending in i)
    rm = lambda i: cti(2 * (i * 193))                     # even: on the list
    n_new = n + k - k
    write_delta(d + "/delta", add, k, rm, k, 6, 1800000100, 5, n_new, L=L)
    size = os.stat(d + "/delta")[6]
    assert size < 20 * 1024  # a 1,000-id change
    gc.collect()
    free0 = gc.mem_free() if hasattr(gc, "mem_free") else 0
    dl = DenyList(d + "/deny.bin")
    with open(d + "/delta", "rb") as f:
        head = denydelta.check(f, size)
    digest = denydelta.merge(dl._f, dl._h, dl.count, d + "/delta", d + "/new", head)
    dl.close()
    # the digest a back office would sign, from the list built here id by id
    h = hashlib.sha256(full_head(n_new, 6, 1800000100, L))
    for v in range(2 * n):
        if v & 1:
            i = (v - 1) // 2
            if i % 97 == 0 and i // 97 < k:
                h.update(cti(v)[:L])
        elif not ((v // 2) % 193 == 0 and v // 2 // 193 < k):
            h.update(cti(v)[:L])
    assert digest == h.digest()
    dl = DenyList(d + "/new")
    assert dl.count == n_new and dl.serial == 6 and dl._len == L
    assert os.stat(d + "/new")[6] == 24 + L * n_new + 6 + len(SIG)  # 500,000 bytes of ids, not 800,000
    probes = (cti(2 * 4001), cti(2 * 97 + 1), cti(2 * 193), cti(2 * n), cti(7))
    expect = (True, True, False, False, False)
    for reps in (10, 1000):          # ten or a thousand look-ups: the same heap
        gc.collect()
        if hasattr(gc, "mem_alloc"):
            a0 = gc.mem_alloc()
        for i in range(reps):
            assert dl.contains(probes[i % 5]) == expect[i % 5]
        if hasattr(gc, "mem_alloc"):
            assert gc.mem_alloc() - a0 < 64, gc.mem_alloc() - a0
    dl.close()
    if free0:
        gc.collect()
        assert gc.mem_free() > free0 - 2048  # nothing of the merge stays
