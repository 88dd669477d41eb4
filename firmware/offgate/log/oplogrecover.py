"""Recovery of the operation log at boot (and after an I/O error): OpLog.recover() loads this
module for the call and unloads it after. It reads the log's directory and returns the state it
found; OpLog sets its own fields from it. See offgate.log.oplog for the format and the rules."""
import os
import struct

from offgate.log.record import (ACK_LEN, ACK_MAGIC, BODY, HDR, HWM_MAGIC, REC, SEG_MAGIC, VERSION, ZERO32,
                                chain as _chain, crc as _crc, ok as _ok, seg_name)
from offgate.statedir import TMP, remove as _remove


class _Dir:
    """The log's directory and the scratch buffers the scan reads into (the OpLog's own, lent for
    the call: recovery allocates no record buffers)."""

    def __init__(self, root, per_seg, hdr, buf):
        self.root = root
        self.per_seg = per_seg
        self._hdr = hdr
        self._buf = buf
        self._mv = memoryview(buf)

    def path(self, segno):
        return self.root + "/" + seg_name(segno)


def _read_ack(log, path, magic):
    """(seq, chain) of the ack (or high-water mark) file, or None if missing or damaged."""
    b = bytearray(ACK_LEN)
    try:
        with open(log.root + path, "rb") as f:
            n = f.readinto(b)
    except OSError:
        return None
    if n != ACK_LEN or b[0:4] != magic or _crc(b, 40) != struct.unpack_from(">I", b, 40)[0]:
        return None
    return struct.unpack_from(">I", b, 4)[0], bytes(b[8:40])


_CHUNK = 16  # records per read on the fast path (512 bytes)


def _scan_fast():
    """offgate.log.oplogscan.good_run (viper), or None where there is no viper emitter."""
    try:
        from offgate.log.oplogscan import good_run
        return good_run
    except Exception:
        return None


def _good(b, seq):
    """Record b is intact (magic, CRC) and is record `seq`."""
    return _ok(b) and struct.unpack_from(">I", b, 4)[0] == seq


def _scan_segment(log, segno, expect_seq):
    """Read one segment. Returns (first_seq, count, clean, damaged seqs, header_ok) or None if
    nothing in it can be placed. A record that fails its magic/CRC/seq check but is followed by a
    good record (right seq for its place) is damaged, not a cut: it is kept in place (read()
    reports it as damaged, with its bytes). Only damaged records at the end of the segment are a
    torn tail (count stops before them, clean = False). The chain is not checked here: records
    do not store it (the head's is recomputed by recover(), the rest when read)."""
    b = log._buf
    try:
        f = open(log.path(segno), "rb")
    except OSError:
        return None
    try:
        h = log._hdr
        hn = f.readinto(h)
        first = None
        if hn == HDR and h[0:4] == SEG_MAGIC and h[4] == VERSION and _crc(h, 60) == struct.unpack_from(">I", h, 60)[0] \
                and struct.unpack_from(">I", h, 8)[0] == segno:
            first = struct.unpack_from(">I", h, 12)[0]
            if expect_seq is not None and first < expect_seq:
                return None  # overlaps what is already placed: not this log's continuation
            header_ok = True
        else:
            header_ok = False
            if hn != HDR:
                return None
        n = 0
        good = 0          # records up to the last good one
        damaged = []
        torn = False
        fast = _scan_fast()
        if fast is not None and first is not None:
            # whole chunks of intact records in one call; the first chunk that is not goes
            # through the per-record checks below, from its start
            blk = bytearray(_CHUNK * REC)
            while n < log.per_seg:
                want = min(_CHUNK, log.per_seg - n)
                got = f.readinto(memoryview(blk)[:want * REC])
                s = first + n
                if got == want * REC and fast(blk, want, s >> 16, s & 0xFFFF) == want:
                    n += want
                    good = n
                    continue
                f.seek(HDR + n * REC)
                break
            blk = None
        while n < log.per_seg:
            k = f.readinto(b)
            if not k:
                break
            if k != REC:
                torn = True
                break  # a torn partial record: only ever the tail
            if first is None:  # header damaged: place the segment by its first good record
                if not _ok(b):
                    damaged.append(n)
                    n += 1
                    continue
                first = struct.unpack_from(">I", b, 4)[0] - n
                if expect_seq is not None and first < expect_seq:
                    return None
            if _good(b, first + n):
                n += 1
                good = n
                continue
            if _ok(b):
                break  # a good CRC but a seq out of place: not this segment's record
            damaged.append(n)
            n += 1
        clean = good == n and not torn
        if first is None:
            return None
        if clean and n == log.per_seg and f.readinto(b):
            clean = False      # bytes beyond a full segment
        dam = [first + i for i in damaged if i < good]
        return first, good, clean, dam, header_ok
    finally:
        f.close()


def _chain_after(log, segno, count, prev):
    """The chain after the first `count` records of segment segno, from `prev` (None: the
    segment header's prev_chain), over the bytes as stored."""
    b = log._buf
    with open(log.path(segno), "rb") as f:
        f.readinto(log._hdr)
        c = bytes(log._hdr[16:48]) if prev is None else prev
        for _ in range(count):
            if f.readinto(b) != REC:
                break
            c = _chain(c, log._mv[0:BODY])
    return c


def recover(root, per_seg, last_segno, hdr, buf):
    """Scan the log in directory `root` (segments of `per_seg` records; `last_segno` the highest
    segment number the caller has seen; `hdr`, `buf`: scratch buffers of a header and a record) at
    boot: cut a torn/corrupt tail, finish an interrupted acknowledge, recompute the head's chain.
    Returns (state, summary): state = (head seq, head chain, acked seq, acked chain, segments
    [[segno, first seq, count], ...], last segno, segments/records cut, damaged records kept);
    summary a dict."""
    log = _Dir(root, per_seg, hdr, buf)
    try:
        os.mkdir(log.root)
    except OSError:
        pass  # exists
    names = os.listdir(log.root)
    segnos = []
    for nm in names:
        if nm.endswith(TMP):
            _remove(log.root + "/" + nm)  # leftovers of a cut rewrite: the original stands
        elif nm.endswith(".seg") and len(nm) == 12:
            try:
                segnos.append(int(nm[:8]))
            except ValueError:
                pass
    segnos.sort()
    if segnos and segnos[-1] > last_segno:
        last_segno = segnos[-1]
    ack = _read_ack(log, "/ack", ACK_MAGIC)
    hwm = _read_ack(log, "/hwm", HWM_MAGIC)
    segs = []
    damaged = []
    cut = 0
    rebuilt = 0  # segment headers rebuilt from their records
    expect_seq = None
    gap = False
    i = 0
    while i < len(segnos):
        segno = segnos[i]
        r = _scan_segment(log, segno, expect_seq)
        if r is None:
            break  # nothing in it continues the log: this segment and all later ones go
        first, n, clean, dam, header_ok = r
        damaged.extend(dam)
        if not header_ok:
            rebuilt += 1
            # the chain before it: after the segment placed before (if it ends right there), or
            # the acknowledged one; else zeros (the next batch then reports a break here)
            if segs and segs[-1][1] + segs[-1][2] == first:
                pc = _chain_after(log, segs[-1][0], segs[-1][2], None)
            elif ack is not None and ack[0] + 1 == first:
                pc = ack[1]
            else:
                pc = ZERO32
            from offgate.log import oplogrepair  # rare: loaded for the repair only (unloaded by recover())
            oplogrepair.rewrite(log.path(segno), log._hdr, log._buf, segno, None, first, pc)
        if expect_seq is not None and first > expect_seq:
            gap = True  # a segment lost between: the records after it are kept
        if not clean:
            cut += 1
            if n:
                from offgate.log import oplogrepair
                oplogrepair.rewrite(log.path(segno), log._hdr, log._buf, segno, n, None, None)
                segs.append([segno, first, n])
            else:
                _remove(log.path(segno))
            i += 1
            expect_seq = first + n
            break
        if n == 0:
            break  # an empty segment (header only): drop it and anything after it
        segs.append([segno, first, n])
        expect_seq = first + n
        i += 1
        if n < log.per_seg:
            break  # only the last segment may be partly filled
    # everything from segnos[i] on is beyond the cut (newest first: each step stays valid)
    for j in range(len(segnos) - 1, i - 1, -1):
        _remove(log.path(segnos[j]))
        cut += 1
    if segs:
        head = expect_seq - 1
        # the head's chain: recomputed over the last segment from its header (records do not store it)
        hchain = _chain_after(log, segs[-1][0], segs[-1][2], None)
    else:
        head = 0
        hchain = ZERO32
    if ack is not None:
        aseq, achain = ack
    elif segs:
        # no ack file (never acknowledged, or lost): everything present is unacknowledged
        s0 = segs[0]
        aseq = s0[1] - 1
        achain = _prev_chain_of(log, s0[0])
    elif hwm is not None:
        aseq, achain = hwm  # the ack file is lost and nothing is left: everything was acknowledged
    else:
        aseq, achain = 0, ZERO32
    if aseq >= head:
        # everything logged is acknowledged: finish removing, resume from the ack state
        for s in segs:
            _remove(log.path(s[0]))
        segs = []
        head = aseq
        hchain = achain
    else:
        # finish an interrupted acknowledge: drop segments wholly at or below it
        while segs and segs[0][1] + segs[0][2] - 1 <= aseq:
            _remove(log.path(segs.pop(0)[0]))
        gap = gap or segs[0][1] > aseq + 1  # records between the ack and the log were lost
    if hwm is not None and hwm[0] > head:
        # seqs up to the high-water mark were used once: never again (the ledger would see a
        # different record under a seq it already holds)
        head = hwm[0]
        hchain = hwm[1]
        if aseq < hwm[0] and not segs:
            gap = True
    damaged = [d for d in damaged if d > aseq]
    return ((head, hchain, aseq, achain, segs, last_segno, cut, len(damaged)),
            {"head": head, "acked": aseq, "segments": len(segs), "cut": cut, "gap": gap,
             "damaged": damaged[:16], "rebuilt": rebuilt})

def _prev_chain_of(log, segno):
    return _chain_after(log, segno, 0, None)
