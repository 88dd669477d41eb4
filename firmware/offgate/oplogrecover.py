"""Recovery of the operation log at boot (and after an I/O error): OpLog.recover() loads this
module for the call and unloads it after. See offgate.oplog for the format and the rules."""
import os
import struct

from offgate.oplog import (ACK_LEN, ACK_MAGIC, BODY, HDR, MAGIC, REC, SEG_MAGIC, ZERO32, _chain,
                           _crc, _remove)


def _read_ack(log):
    b = bytearray(ACK_LEN)
    try:
        with open(log.root + "/ack", "rb") as f:
            n = f.readinto(b)
    except OSError:
        return None
    if n != ACK_LEN or b[0:4] != ACK_MAGIC or _crc(b, 40) != struct.unpack_from(">I", b, 40)[0]:
        return None
    return struct.unpack_from(">I", b, 4)[0], bytes(b[8:40])

def _check_record(log, b, seq, chain):
    """The chain after record b if it is record `seq` following `chain`, else None."""
    if b[0] != MAGIC or _crc(b, 60) != struct.unpack_from(">I", b, 60)[0]:
        return None
    if struct.unpack_from(">I", b, 4)[0] != seq:
        return None
    c = _chain(chain, log._mv[0:BODY])
    if c != b[28:60]:
        return None
    return c

def _scan_segment(log, segno, expect_seq, expect_chain):
    """Read one segment. Returns (first_seq, count, chain_after, clean) or None if its header
    is bad or it does not follow expect_seq/expect_chain (None = no expectation)."""
    b = log._buf
    try:
        f = open(log._path(segno), "rb")
    except OSError:
        return None
    try:
        h = log._hdr
        if f.readinto(h) != HDR or h[0:4] != SEG_MAGIC or h[4] != 1:
            return None
        if _crc(h, 60) != struct.unpack_from(">I", h, 60)[0]:
            return None
        if struct.unpack_from(">I", h, 8)[0] != segno:
            return None
        first = struct.unpack_from(">I", h, 12)[0]
        chain = bytes(h[16:48])
        if expect_seq is not None and (first != expect_seq or chain != expect_chain):
            return None
        n = 0
        clean = True
        while n < log.per_seg:
            k = f.readinto(b)
            if not k:
                break
            c = _check_record(log, b, first + n, chain) if k == REC else None
            if c is None:
                clean = False  # torn or corrupt: cut here
                break
            chain = c
            n += 1
        if clean and f.readinto(b):
            clean = False      # bytes beyond a full segment
        return first, n, chain, clean
    finally:
        f.close()

def _truncate(log, segno, count):
    """Keep the first `count` records of a segment: copy them to a tmp file, rename over."""
    path = log._path(segno)
    tmp = path + ".tmp"
    b = log._buf
    with open(path, "rb") as src:
        with open(tmp, "wb") as dst:
            src.readinto(log._hdr)
            dst.write(log._hdr)
            for _ in range(count):
                src.readinto(b)
                dst.write(b)
    os.rename(tmp, path)

def recover(log):
    """Open the log at boot: cut a torn/corrupt tail, finish an interrupted acknowledge,
    resume the chain. Returns a summary dict."""
    log._close()
    try:
        os.mkdir(log.root)
    except OSError:
        pass  # exists
    names = os.listdir(log.root)
    segnos = []
    for nm in names:
        if nm.endswith(".tmp"):
            _remove(log.root + "/" + nm)  # leftovers of a cut rewrite: the original stands
        elif nm.endswith(".seg") and len(nm) == 12:
            try:
                segnos.append(int(nm[:8]))
            except ValueError:
                pass
    segnos.sort()
    if segnos and segnos[-1] > log._last_segno:
        log._last_segno = segnos[-1]
    ack = _read_ack(log)
    segs = []
    cut = 0
    expect_seq = expect_chain = None
    i = 0
    while i < len(segnos):
        segno = segnos[i]
        r = _scan_segment(log, segno, expect_seq, expect_chain)
        if r is None:
            break  # bad header or a break in the chain: this segment and all later ones go
        first, n, chain, clean = r
        if not clean:
            cut += 1
            if n:
                _truncate(log, segno, n)
                segs.append([segno, first, n])
            else:
                _remove(log._path(segno))
            i += 1
            expect_seq = first + n
            expect_chain = chain
            break
        if n == 0:
            break  # an empty segment (header only): drop it and anything after it
        segs.append([segno, first, n])
        expect_seq = first + n
        expect_chain = chain
        i += 1
        if n < log.per_seg:
            break  # only the last segment may be partly filled
    # everything from segnos[i] on is beyond the cut (newest first: each step stays valid)
    for j in range(len(segnos) - 1, i - 1, -1):
        _remove(log._path(segnos[j]))
        cut += 1
    if segs:
        log._seq = expect_seq - 1
        log._chain = expect_chain
    else:
        log._seq = 0
        log._chain = ZERO32
    gap = False
    if ack is not None:
        aseq, achain = ack
    elif segs:
        # no ack file (never acknowledged, or lost): everything present is unacknowledged
        s0 = segs[0]
        aseq = s0[1] - 1
        achain = _prev_chain_of(log, s0[0])
    else:
        aseq, achain = 0, ZERO32
    if aseq >= log._seq:
        # everything logged is acknowledged: finish removing, resume from the ack state
        for s in segs:
            _remove(log._path(s[0]))
        segs = []
        log._seq = aseq
        log._chain = achain
    else:
        # finish an interrupted acknowledge: drop segments wholly at or below it
        while segs and segs[0][1] + segs[0][2] - 1 <= aseq:
            _remove(log._path(segs.pop(0)[0]))
        gap = segs[0][1] > aseq + 1  # records between the ack and the log were lost
    log._acked_seq = aseq
    log._acked_chain = achain
    log._segs = segs
    log.cut = cut
    return {"head": log._seq, "acked": aseq, "segments": len(segs), "cut": cut, "gap": gap}

def _prev_chain_of(log, segno):
    with open(log._path(segno), "rb") as f:
        f.readinto(log._hdr)
    return bytes(log._hdr[16:48])
