"""Conversion of a version-1 operation log (64-byte records that stored their chain: firmware up
to commit 017a642) into the version-2 format (32-byte records, chain recomputed), at boot before
recovery. offgate.log.oplogrecover loads this module only when it sees a version-1 segment or an
unfinished conversion (the `upgrade` marker), and unloads it after: it is never resident.

Version-1 record: 0..27 body (the same bytes as a version-2 record's body) | 28 chain (32) |
60 crc32 of record[0:60]. Segment header: as version 2, version byte 1. The ack and hwm files
did not change (offgate.log.record ACK_LEN), so they are kept as they are.

The rules (docs/oplog.md "Upgrading from the 64-byte format"):
* Records at or below the acknowledged seq are dropped (the back office has them); every other
  record is copied in seq order, its body unchanged, into version-2 segments numbered above every
  version-1 segment (so no name is shared), all full but the last. The chain is the same function
  of the same bodies, so it continues from the acknowledged chain; segment headers carry it.
* A version-1 record is checked as the old recovery did (magic, CRC-32 of bytes 0..59, its seq
  for its place, the link of its stored chain). A damaged one (bad magic/CRC) is copied as a
  damaged version-2 record (its body as stored, a CRC that fails), so recovery keeps it in place
  and read() returns it as damaged; a run of seqs lost between segments is filled with damaged
  records (zero bodies), so every later record keeps its seq. A damaged tail is cut by the
  version-2 recovery that runs next, as for any torn tail.
* Power-cut safe, by statedir's one atomic-write policy: the version-2 segments are written as
  `<segno>.seg.tmp`; then the marker file `upgrade` is written atomically (statedir.atomic_write:
  the commit point); then each .tmp is renamed to its `.seg` name (statedir.replace), the
  version-1 segments are removed and the marker last. A cut before the marker leaves the
  version-1 log and stale .tmp files (removed, the conversion starts over); a cut after it is
  finished from the marker at the next boot. Either way no record is lost or duplicated.

Memory: one 64-byte read buffer and one 32-byte record buffer; segment files are streamed."""
import hashlib
import os
import struct

from offgate import statedir
from offgate.log.record import ACK_LEN, ACK_MAGIC, BODY, HDR, MAGIC, REC, SEG_MAGIC, UPGRADE, VERSION, crc, seg_name

V1 = 1                 # the old segment format's version byte
V1_REC = 64            # its record: body 28 | chain 32 | crc32 of [0:60]
_UMAGIC = b"OGU1"      # marker layout: magic 4 | first new segno u32 | last new segno u32 |
_ULEN = 28             #   records converted u32 | chain breaks u32 | first break seq u32 | crc32 of [0:24]
MAX_FILL = 4096        # seqs lost between version-1 segments filled with damaged records, at most


def _segnos(root):
    out = []
    for nm in os.listdir(root):
        if nm.endswith(".seg") and len(nm) == 12:
            try:
                out.append(int(nm[:8]))
            except ValueError:
                pass
    out.sort()
    return out


def _read_marker(root):
    b = statedir.read(root + "/" + UPGRADE)
    if b is None or len(b) != _ULEN or b[0:4] != _UMAGIC or crc(b, 24) != struct.unpack_from(">I", b, 24)[0]:
        return None
    return struct.unpack_from(">IIIII", b, 4)


def _ack(root):
    """(seq, chain) of the ack file, or None (same check as oplogrecover's)."""
    b = statedir.read(root + "/ack")
    if b is None or len(b) != ACK_LEN or b[0:4] != ACK_MAGIC or crc(b, 40) != struct.unpack_from(">I", b, 40)[0]:
        return None
    return struct.unpack_from(">I", b, 4)[0], bytes(b[8:40])


class _Writer:
    """Streams version-2 segments (as .tmp files) of `per` records each, numbered from `segno`."""

    def __init__(self, root, per, segno, hdr):
        self.root = root
        self.per = per
        self.segno = segno - 1
        self.first_segno = segno
        self.h = hdr
        self.rec = bytearray(REC)
        self.f = None
        self.n = 0
        self.chain = None

    def put(self, seq, body, good):
        """Append the record `seq` with this 28-byte body (good: a passing CRC, else one that fails)."""
        if self.f is None or self.n == self.per:
            self.close()
            self.segno += 1
            h = self.h
            for i in range(HDR):
                h[i] = 0
            h[0:4] = SEG_MAGIC
            h[4] = VERSION
            struct.pack_into(">II", h, 8, self.segno, seq)
            h[16:48] = self.chain
            struct.pack_into(">I", h, 60, crc(h, 60))
            self.f = open(self.root + "/" + seg_name(self.segno) + statedir.TMP, "wb")
            self.f.write(h)
            self.n = 0
        r = self.rec
        r[0:BODY] = body
        c = crc(r, BODY)
        struct.pack_into(">I", r, BODY, c if good else c ^ 0xFFFFFFFF)
        self.f.write(r)
        self.n += 1
        h = hashlib.sha256(self.chain)
        h.update(body)
        self.chain = h.digest()

    def close(self):
        if self.f is not None:
            self.f.flush()
            self.f.close()
            self.f = None


def _convert(root, old, per, hdr):
    """Write the version-2 .tmp segments for the version-1 segments `old` (segnos, ascending).
    Returns (first new segno, last new segno, records converted, chain breaks, first break seq)."""
    ack = _ack(root)
    aseq = ack[0] if ack is not None else 0
    w = _Writer(root, per, old[-1] + 1 if old else 1, hdr)
    b = bytearray(V1_REC)
    h = bytearray(HDR)
    c = None          # the chain after the last record read (None: not known yet)
    expect = None     # the next seq
    n_good = 0
    breaks = first_break = 0
    zero = bytes(BODY)
    for segno in old:
        with open(root + "/" + seg_name(segno), "rb") as f:
            first = None
            if f.readinto(h) == HDR and h[0:4] == SEG_MAGIC and h[4] == V1 \
                    and crc(h, 60) == struct.unpack_from(">I", h, 60)[0]:
                first = struct.unpack_from(">I", h, 12)[0]
                if expect is None or first != expect:
                    c = bytes(h[16:48])  # the segment's checkpoint (a gap or the log's start)
            else:
                # a damaged header: placed by its first good record, as the old recovery did
                i = 0
                while f.readinto(b) == V1_REC:
                    if _v1_ok(b):
                        first = struct.unpack_from(">I", b, 4)[0] - i
                        break
                    i += 1
                f.seek(HDR)
            if first is None or (expect is not None and first < expect):
                continue  # nothing in it can be placed after what is placed: not this log's
            i = 0
            while f.readinto(b) == V1_REC:  # a torn partial record (only ever the tail) is dropped
                seq = first + i
                good = _v1_ok(b)
                if good and struct.unpack_from(">I", b, 4)[0] != seq:
                    break  # a good record out of place: not this segment's
                i += 1
                if seq <= aseq:
                    c = ack[1] if seq == aseq else (bytes(b[28:60]) if good else None)
                    expect = seq + 1
                    continue
                if w.chain is None:
                    # the first record kept: the chain before it is the acknowledged one, the one
                    # its predecessor stored, or its segment's checkpoint
                    if ack is not None and seq == aseq + 1:
                        c = ack[1]
                    w.chain = c if c is not None else bytes(32)
                elif expect is not None and seq > expect:
                    if seq - expect > MAX_FILL:
                        raise OSError(22)  # not a log this firmware wrote: the old log is kept as it is
                    while expect < seq:   # seqs lost with a segment: damaged placeholders
                        w.put(expect, zero, False)
                        expect += 1
                if good and c is not None:
                    # the old recovery's link check: the stored chain follows from the one before
                    hh = hashlib.sha256(c)
                    hh.update(b[0:BODY])
                    if hh.digest() != b[28:60]:
                        breaks += 1
                        first_break = first_break or seq
                w.put(seq, b[0:BODY], good)
                if good:
                    n_good += 1
                c = bytes(b[28:60]) if good else None
                expect = seq + 1
    w.close()
    last = w.segno
    return w.first_segno, last, n_good, breaks, first_break


def _v1_ok(b):
    return b[0] == MAGIC and crc(b, 60) == struct.unpack_from(">I", b, 60)[0]


def _finish(root, first_new, last_new):
    for s in range(first_new, last_new + 1):
        p = root + "/" + seg_name(s)
        try:
            os.stat(p + statedir.TMP)
        except OSError:
            continue  # renamed before a cut
        statedir.replace(p + statedir.TMP, p)
    for s in _segnos(root):
        if s < first_new:
            statedir.remove(root + "/" + seg_name(s))
    statedir.remove(root + "/" + UPGRADE)


def upgrade(root, per_seg, hdr):
    """Convert the version-1 segments in directory `root` into version-2 segments of `per_seg`
    records (or finish a conversion a power cut interrupted). `hdr`: a 64-byte scratch buffer.
    Returns (intact records converted, chain breaks found, seq of the first break or 0): a break is
    a record with a good CRC whose stored chain does not follow from its predecessor's (a record
    lost or changed between them), reported at boot because the new format recomputes the chain
    and cannot show it to the ledger. Raises OSError (e.g. 28, no space left:
    the version-1 log stays and the next boot tries again)."""
    m = _read_marker(root)
    if m is None:
        for nm in os.listdir(root):
            if nm.endswith(statedir.TMP):
                statedir.remove(root + "/" + nm)  # an earlier conversion cut before its commit
        old = _segnos(root)
        try:
            m = _convert(root, old, per_seg, hdr)
            b = bytearray(_ULEN)
            b[0:4] = _UMAGIC
            struct.pack_into(">IIIII", b, 4, m[0], m[1], m[2], m[3], m[4])
            struct.pack_into(">I", b, 24, crc(b, 24))
            statedir.atomic_write(root + "/" + UPGRADE, b)  # the commit point
        except OSError:
            for nm in os.listdir(root):
                if nm.endswith(statedir.TMP):
                    statedir.remove(root + "/" + nm)  # room back; the version-1 log stands
            raise
    _finish(root, m[0], m[1])
    return m[2], m[3], m[4]
