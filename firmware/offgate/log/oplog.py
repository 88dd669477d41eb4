"""Append-only operation log: one CRC-checked 32-byte record per gate decision, hash-chained.

Storage: segment files on the gate's littlefs, `<root>/<segno 8 digits>.seg`, plus an `ack` file
holding the last acknowledged (seq, chain). Why littlefs files and not a raw flash region:
littlefs already gives atomic sync (a power cut leaves the last synced state, never a half-written
record), wear levelling across the whole partition, and power-cut-safe rename for the ack file.
The price is measured in docs/oplog.md (bench/flash_ops.py).

Segment file = 64-byte header, then up to (segment_bytes - 64) // 32 records of 32 bytes:

  header  0 "OGL1" | 4 version u8 (2) | 5..7 zero | 8 segno u32 | 12 first_seq u32 |
          16 prev_chain (32: the chain before the segment's first record) | 48..59 zero | 60 crc32
  record  0 magic 0x4F | 1 decision (1 OPEN, 0 DENY) | 2 reason u8 | 3 flags (bit0: cti present)
          4 seq u32 | 8 t u32 (gate Unix seconds) | 12 ctr u32 | 16 cti (8) |
          24 missed u32 (decisions that could not be logged since the previous record)
          28 crc32 of record[0:28]
  All integers big-endian. The record's first 28 bytes are its body.

Chain: chain(seq) = SHA-256(chain(seq - 1) || body(seq)), over the bytes as stored; the chain before
seq 1 is 32 zero bytes. Records do not store it (that halved the record): it is recomputed from the
bodies, by the gate from the nearest checkpoint (a segment header's prev_chain, the acknowledged
point, the head) and by the ledger from the batch's `prev`. A segment header whose prev_chain is not
the chain the records before it give (a lost segment, flash damage or tampering in the segment
before) restarts the chain there: reads and batches report it as a break (docs/oplog.md).

Recovery (recover(), at boot; offgate/log/oplogrecover.py): segments are read oldest first, each
record's magic, CRC and seq checked. A damaged record followed by good ones is kept in place and
skipped (read() returns it as damaged, with its bytes); only damaged records at the very end (a
torn tail) are cut, by rewriting the segment with its good prefix (tmp file + atomic rename). A
damaged header is rebuilt from the records; a lost segment leaves a reported gap. Recovery is
idempotent, so a cut during recovery is harmless. A log of version-1 segments (64-byte records,
older firmware) is first converted to this format (offgate/log/oplogupgrade.py). Seqs are never
reused: acknowledge() also writes a high-water mark file (`hwm`), and recovery resumes above
max(ack, hwm, last record).

Records are removed only by acknowledge(seq, chain): the ack file is replaced atomically first,
then segments whose last record is at or below seq are removed (recovery finishes an interrupted
removal). When max_segments segments hold unacknowledged records and the last one is full, the
log is full: policy "refuse" raises LogFull (the gate then refuses to open), policy "admit"
returns None and counts; either way the count of decisions not logged is reported in status()
and written into the next record that can be logged (field `missed`).
"""
import hashlib
import struct

from offgate.log.record import (ACK_LEN, ACK_MAGIC, BODY, DENY, HDR, HWM_MAGIC, MAGIC, OPEN, REC,  # noqa: F401
                                SEG_MAGIC, VERSION, ZERO32, chain as _chain, crc as _crc, ok as _ok, seg_name)

WARN_PCT = 50  # unsynced share of the capacity (percent) from which status() says "warn"
               # (the back office's LOG_WARN_PCT: docs/oplog.md "When full")


class LogFull(Exception):
    """Storage is full of unacknowledged records and the policy is "refuse"."""


class DiskFull(LogFull):
    """The filesystem (shared with the other state files) is full, not the log's own segments:
    the gate reports DISK_FULL, not LOG_FULL. Same policy as a full log."""


_READ_RECS = 16  # records per file read (chained(), a 512-byte buffer)


def _is_open(decision):
    # accept the gate's wording, ints and bools (bool is not an int on MicroPython)
    return decision == "OPEN" or decision is True or decision == 1


class OpLog:
    def __init__(self, root, segment_bytes=16368, max_segments=62, full_policy="refuse", before_free=None):
        if full_policy != "refuse" and full_policy != "admit":
            raise ValueError("full_policy must be 'refuse' or 'admit'")
        per = (segment_bytes - HDR) // REC
        if per < 1 or max_segments < 1:
            raise ValueError("segment_bytes must hold at least one record, max_segments >= 1")
        self.root = root
        self.segment_bytes = segment_bytes
        self.per_seg = per
        self.max_segments = max_segments
        self.policy = full_policy
        # Preallocated: an append formats its record here, no per-scan buffers.
        self._buf = bytearray(REC)
        self._mv = memoryview(self._buf)
        self._hdr = bytearray(HDR)
        self._seq = 0
        self._chain = ZERO32          # head chain (bytes)
        self._acked_seq = 0
        self._acked_chain = ZERO32
        self._segs = []               # [segno, first_seq, count], oldest first
        self._f = None                # the last segment, open for appending
        self._last_segno = 0          # highest segment number seen: new ones go above it
        self._memo = None             # (seq, chain) last computed by a read (a pull's batch end)
        self.not_logged = 0           # decisions that could not be logged since boot
        self._missed = 0              # ... since the last written record (goes into the next one)
        self.cut = 0                  # records/segments cut at the last recovery
        self.damaged = 0              # damaged records found (and kept in place) at the last recovery
        self.before_free = before_free  # called before acknowledged records are dropped (gate.build:
                                      # the replay file's write, which those records back up)

    # -- paths ------------------------------------------------------------------
    def _path(self, segno):
        return self.root + "/" + seg_name(segno)

    def _close(self):
        if self._f is not None:
            try:
                self._f.close()
            except OSError:
                pass
            self._f = None

    close = _close

    # -- recovery ---------------------------------------------------------------
    def _write_ack(self, seq, chain, name="ack", magic=ACK_MAGIC):
        b = bytearray(ACK_LEN)
        b[0:4] = magic
        struct.pack_into(">I", b, 4, seq)
        b[8:40] = chain
        struct.pack_into(">I", b, 40, _crc(b, 40))
        from offgate import statedir  # at acknowledge (sync) only: not resident between scans
        statedir.atomic_write(self.root + "/" + name, b)  # old or new file, never half

    def recover(self):
        """Open the log at boot: cut a torn/corrupt tail, finish an interrupted acknowledge, resume
        the chain. Returns a summary dict. The scan is offgate.log.oplogrecover, loaded for the
        call and unloaded after (boot and I/O-error code that need not sit in a 128 KB heap
        between scans); it returns the state found, which is set here."""
        import gc
        import offgate
        self._close()
        self._memo = None
        gc.collect()  # the recovery code is compiled/loaded now, at boot after the trust store: room first
        from offgate.log import oplogrecover
        try:
            st, summary = oplogrecover.recover(self.root, self.per_seg, self._last_segno, self._hdr, self._buf)
        finally:
            oplogrecover = None
            offgate.unload("offgate.log.oplogrecover")
            offgate.unload("offgate.log.oplogrepair")  # loaded only if a segment had to be rewritten
            offgate.unload("offgate.log.oplogscan")
            offgate.unload("offgate.log.oplogupgrade")  # loaded only for a version-1 log
        (self._seq, self._chain, self._acked_seq, self._acked_chain, self._segs, self._last_segno,
         self.cut, self.damaged) = st
        if self._segs is None:
            # an old-format log that could not be converted (summary "upgrade_failed"): the log
            # counts as full (segments ending at seq 0: no reader opens them), so nothing is written
            # over it before a later boot converts it
            self._segs = [[0, 1 - self.per_seg, self.per_seg]] * self.max_segments
        return summary

    # -- appending --------------------------------------------------------------
    def full(self):
        """True if the next append cannot be stored (all segments unacknowledged and full)."""
        segs = self._segs
        if segs and segs[-1][2] < self.per_seg:
            return False
        return len(segs) >= self.max_segments

    def _not_logged(self, exc=LogFull):
        self.not_logged += 1
        self._missed += 1
        if self.policy == "refuse":
            raise exc("operation log full: %d unacknowledged records" % (self._seq - self._acked_seq))
        return None

    def append(self, t, cti, ctr, decision, reason):
        """Log one decision; durable (synced) when it returns. Returns its seq; None under the
        "admit" policy when the log is full; raises LogFull under "refuse"."""
        if self.full():
            return self._not_logged()
        seq = self._seq + 1
        b = self._buf
        b[0] = MAGIC
        b[1] = OPEN if _is_open(decision) else DENY
        b[2] = reason & 0xFF
        struct.pack_into(">III", b, 4, seq, t, ctr or 0)
        n = len(cti) if cti else 0
        b[3] = 1 if n else 0
        for i in range(8):  # in place: a slice assignment of another length would resize b
            b[16 + i] = cti[i] if i < n else 0
        struct.pack_into(">I", b, 24, self._missed)
        struct.pack_into(">I", b, BODY, _crc(self._mv, BODY))
        try:
            self._write(seq)
        except OSError as e:
            # The handle's state is unknown: drop it and let recovery say what is on flash. If the
            # record made it (the sync completed), it stands; otherwise nothing was logged.
            self._close()
            try:
                self.recover()
            except Exception:
                pass
            if self._seq >= seq:
                self._missed = 0
                return seq
            if e.args and e.args[0] == 28:  # ENOSPC
                return self._not_logged(DiskFull)  # the file system (shared) is full: same policy
            self.not_logged += 1
            self._missed += 1
            raise
        self._seq = seq
        self._chain = _chain(self._chain, self._mv[0:BODY])
        self._missed = 0
        return seq

    def _write(self, seq):
        segs = self._segs
        if segs and segs[-1][2] < self.per_seg:
            s = segs[-1]
            if self._f is None:
                self._f = open(self._path(s[0]), "ab")
            self._f.write(self._mv)
            self._f.flush()  # lfs_file_sync: the record is committed when this returns
            s[2] += 1
            return
        # a new segment: header and first record written and synced together
        self._close()
        segno = self._last_segno + 1
        h = self._hdr
        for i in range(HDR):
            h[i] = 0
        h[0:4] = SEG_MAGIC
        h[4] = VERSION
        struct.pack_into(">II", h, 8, segno, seq)
        h[16:48] = self._chain
        struct.pack_into(">I", h, 60, _crc(h, 60))
        f = open(self._path(segno), "wb")
        self._f = f
        f.write(h)
        f.write(self._mv)
        f.flush()
        self._last_segno = segno
        segs.append([segno, seq, 1])

    # -- reading ----------------------------------------------------------------
    def available(self, from_seq, max_records):
        """How many records read(from_seq, max_records) returns (a segment lost in the middle
        leaves a gap in the seqs)."""
        n = 0
        for segno, first, count in self._segs:
            last = first + count - 1
            if last < from_seq:
                continue
            n += count - (from_seq - first if from_seq > first else 0)
        return n if n < max_records else max_records

    def read(self, from_seq, max_records, chains=True):
        """Records from from_seq on (at most max_records), oldest first, as dicts with their chain
        (recomputed; chains=False leaves it out: one SHA-256 a record less, for readers that need
        only the fields). A record whose CRC fails (flash damage found at recovery, kept in place)
        comes back as {"seq", "damaged": its 32 bytes, "chain"}."""
        out = []
        if chains:
            it = self.chained(from_seq, max_records)
        else:
            it = self._raw(from_seq, max_records, None)
        for seq, b, ok, c in it:
            if not chains:
                c = None
            if ok:
                r = _decode(b)
                r["chain"] = c
                out.append(r)
            else:
                out.append({"seq": seq, "damaged": bytes(b), "chain": c})
        return out

    def _header_chain(self, segno):
        """The prev_chain stored in segment segno's header (bytes 32)."""
        h = bytearray(48)
        with open(self._path(segno), "rb") as f:
            f.readinto(h)
        return bytes(h[16:48])

    def _chain_before(self, seq):
        """The chain before record seq (the checkpoint a walk from seq starts at)."""
        if seq == self._acked_seq + 1:
            return self._acked_chain
        m = self._memo
        if m is not None and m[0] == seq - 1:
            return m[1]
        for segno, first, count in self._segs:
            if first + count > seq:
                c = self._header_chain(segno)
                if seq > first:
                    for _s, _b, _ok, c in self.chained(first, seq - first, c):
                        pass
                return c
        return self._chain

    def chain_at(self, seq):
        """The chain after record seq (None if seq is not on flash, the head or the acked point)."""
        if seq == self._seq:
            return self._chain
        if seq == self._acked_seq:
            return self._acked_chain
        m = self._memo
        if m is not None and m[0] == seq:
            return m[1]
        for s, _b, _ok, c in self.chained(seq, 1):
            if s == seq:
                return c
        return None

    def chained(self, from_seq, max_records, chain=None, breaks=None):
        """The raw records with their chain: yields (seq, rec, ok, chain after rec), rec a 32-byte
        memoryview valid until the next item, ok False for a damaged record (bad magic or CRC).
        No object per record but the chain's digest. The walk starts at
        `chain` (default: the checkpoint before from_seq) and restarts at each segment start whose
        header says otherwise (a gap or a break; appended to `breaks` as [seq, header chain]).
        Remembers its last (seq, chain) for an acknowledge that follows."""
        c = self._chain_before(from_seq) if chain is None else chain
        hd = bytearray(48)
        sha = hashlib.sha256
        seq = None
        for seq, b, ok, first in self._raw(from_seq, max_records, hd):
            if first:
                hc = hd[16:48]
                if hc != c:
                    c = bytes(hc)
                    if breaks is not None:
                        breaks.append([seq, c])
            h = sha(c)
            h.update(b[0:BODY])
            c = h.digest()
            yield seq, b, ok, c
        if seq is not None:
            self._memo = (seq, c)

    def _raw(self, from_seq, max_records, hd):
        # The raw records from from_seq on (at most max_records), oldest first: yields (seq, rec,
        # ok, first), rec a 32-byte memoryview valid until the next item, ok False for a damaged
        # record (bad magic or CRC), first True for a segment's first record (hd then holds that
        # segment's header). Up to _READ_RECS records per file read; no object per record.
        blk = bytearray(REC * (max_records if max_records < _READ_RECS else _READ_RECS))
        mv = memoryview(blk)
        n = 0
        for segno, first, count in self._segs:
            last = first + count - 1
            if last < from_seq:
                continue
            if n >= max_records:
                break
            start = from_seq - first if from_seq > first else 0
            with open(self._path(segno), "rb") as f:
                if start == 0 and hd is not None:
                    f.readinto(hd)
                f.seek(HDR + start * REC)
                i = start
                while i < count and n < max_records:
                    k = min(count - i, max_records - n, _READ_RECS)
                    got = f.readinto(mv[:k * REC]) // REC
                    for j in range(got):
                        b = mv[j * REC:(j + 1) * REC]
                        n += 1
                        yield first + i + j, b, _ok(b), i + j == 0
                    if got < k:
                        break  # a short segment file: on to the next one, as before
                    i += k

    def head(self):
        return self._seq, self._chain

    def acked(self):
        return self._acked_seq, self._acked_chain

    def acknowledge(self, seq, chain):
        """The back office has stored everything up to seq, whose chain is `chain`. Checked
        against the log (False if seq is unknown or the chain differs); then persisted and the
        segments wholly at or below seq are freed. Re-acknowledging the current point is True."""
        chain = bytes(chain)
        if seq == self._acked_seq:
            return chain == self._acked_chain
        if seq > self._seq or seq < self._acked_seq:
            return False  # beyond the head, or already acknowledged further (not checkable)
        mine = self.chain_at(seq)
        if mine is None or mine != chain:
            return False
        if self.before_free is not None:
            self.before_free()
        # the high-water mark (the head's seq and chain) first, in its own file: if the ack file is
        # later lost with every segment freed, seqs still resume above every seq ever used
        self._write_ack(self._seq, self._chain, "hwm", HWM_MAGIC)
        self._write_ack(seq, chain)
        self._acked_seq = seq
        self._acked_chain = chain
        from offgate.statedir import remove
        segs = self._segs
        while segs and segs[0][1] + segs[0][2] - 1 <= seq:
            if len(segs) == 1:
                self._close()  # the segment being appended to is wholly acknowledged
            remove(self._path(segs.pop(0)[0]))
        return True

    def status(self):
        segs = self._segs
        recs = 0
        for s in segs:
            recs += s[2]
        cap = self.max_segments * self.per_seg
        return {
            "policy": self.policy,
            "head_seq": self._seq,
            "acked_seq": self._acked_seq,
            "backlog": self._seq - self._acked_seq,
            "segments": len(segs),
            "bytes_used": len(segs) * HDR + recs * REC,
            "capacity": self.max_segments * (HDR + self.per_seg * REC),
            "capacity_records": cap,
            "not_logged": self.not_logged,
            "damaged": self.damaged,
            "cut": self.cut,
            "full": self.full(),
            # unsynced share of the capacity, percent: the back office warns from LOG_WARN_PCT on
            "fill_pct": (self._seq - self._acked_seq) * 100 // (cap or 1),
            "warn": (self._seq - self._acked_seq) * 100 >= WARN_PCT * cap,
        }



def _decode(b):
    seq, t, ctr = struct.unpack_from(">III", b, 4)
    return {
        "seq": seq,
        "t": t,
        "cti": bytes(b[16:24]) if b[3] & 1 else None,
        "ctr": ctr,
        "decision": "OPEN" if b[1] == OPEN else "DENY",
        "reason": b[2],
        "missed": struct.unpack_from(">I", b, 24)[0],
    }
