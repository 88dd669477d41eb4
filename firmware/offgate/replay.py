"""Replay protection: the highest counter this gate has accepted for each credential.

A code is accepted only if its counter is above the highest one seen here for its credential
(a repeat is a replayed code; a lower one is an older code shown after a newer one). The state
survives a reboot: every accepted counter is appended to a small file and flushed *before* the
gate opens; at boot the file is replayed into the table.

Memory: preallocated 1 KB pages of 16-byte slots (cti 8 | ctr 4 | exp 4), open addressing with
linear probing. Pages rather than one block because a 128 KB heap that has
loaded the firmware's bytecode (the unix port, or an ESP32 running .mpy files rather than frozen
ones) is fragmented: measured 59 KB free with no free run above 7 KB. Entries of expired credentials are dropped when room is needed; if every slot
holds a live credential the one expiring first is evicted and counted (see `evictions`), since a
gate must keep admitting riders. Size `slots` for the riders a gate sees per credential lifetime.

File: 20-byte records (cti 8 | ctr 4 BE | exp 4 BE | crc32 4 BE). A torn last record (power cut
mid-append) or a record with a bad CRC is skipped and counted; the file is rewritten compactly at
boot when that happens or when it has grown to 4x the table, via a temporary file and an atomic
rename (littlefs), so a cut during compaction leaves either the old or the new file.
"""
import os
import struct
from offgate.checksum import crc32

REC = 20
SLOT = 16
PAGE_SLOTS = 64  # 1 KB per page
PEND = 8         # records commit(durable=False) may queue before sync()
EXP_MAX = 0xFFFFFFFF


def _record(cti, ctr, exp):
    body = bytes(cti) + struct.pack(">II", ctr, exp)
    return body + struct.pack(">I", crc32(body) & 0xFFFFFFFF)


class ReplayGuard:
    def __init__(self, path, slots=512):
        self.path = path
        self.slots = slots
        self.pages = []
        left = slots
        while left > 0:
            n = min(left, PAGE_SLOTS)
            self.pages.append(memoryview(bytearray(n * SLOT)))
            left -= n
        self.used = 0
        self.evictions = 0
        self.skipped = 0        # torn or corrupt records found at load
        self.records = 0        # records in the file
        self._f = None
        self._pend = bytearray(REC * PEND)  # records of commit(durable=False) not yet written
        self._npend = 0

    def _slot(self, i):
        """(page, byte offset) of slot i."""
        return self.pages[i // PAGE_SLOTS], (i % PAGE_SLOTS) * SLOT

    # -- table ----------------------------------------------------------------
    def _home(self, cti):
        return ((cti[0] << 16) | (cti[1] << 8) | cti[2]) % self.slots

    def _find(self, cti):
        """Slot index holding cti, or -(empty slot index) - 1 if absent, or None if full."""
        i = self._home(cti)
        for _ in range(self.slots):
            mv, o = self._slot(i)
            if mv[o + 12] == 0 and mv[o + 13] == 0 and mv[o + 14] == 0 and mv[o + 15] == 0:
                return -i - 1  # exp == 0 marks an empty slot
            if mv[o:o + 8] == cti:
                return i
            i += 1
            if i == self.slots:
                i = 0
        return None

    def highest(self, cti):
        """Highest accepted counter for cti, or -1 if none."""
        i = self._find(cti)
        if i is None or i < 0:
            return -1
        mv, o = self._slot(i)
        return struct.unpack_from(">I", mv, o + 8)[0]

    def fresh(self, cti, ctr):
        return ctr > self.highest(cti)

    def _put(self, cti, ctr, exp, now):
        i = self._find(cti)
        if i is None or (i < 0 and self.used * 4 >= self.slots * 3):
            self._make_room(now)  # keep the table at most 3/4 full so probes stay short
            i = self._find(cti)
        if i < 0:
            i = -i - 1
            self.used += 1
        mv, o = self._slot(i)
        if mv[o + 12] or mv[o + 13] or mv[o + 14] or mv[o + 15]:
            old_ctr, old_exp = struct.unpack_from(">II", mv, o + 8)
            if old_ctr >= ctr:
                return
            exp = max(exp, old_exp)
        mv[o:o + 8] = cti
        struct.pack_into(">II", mv, o + 8, ctr, exp)

    def _entries(self):
        for mv in self.pages:
            for o in range(0, len(mv), SLOT):
                ctr, exp = struct.unpack_from(">II", mv, o + 8)
                if exp:
                    yield bytes(mv[o:o + 8]), ctr, exp

    def _make_room(self, now):
        live = [e for e in self._entries() if e[2] > now]
        if len(live) * 4 >= self.slots * 3:
            # every slot holds a live credential: evict those expiring first
            live.sort(key=lambda e: e[2])
            drop = len(live) - self.slots // 2
            self.evictions += drop
            live = live[drop:]
        self._rebuild(live)

    def _rebuild(self, entries):
        z = bytes(SLOT)
        for mv in self.pages:
            for o in range(0, len(mv), SLOT):
                mv[o:o + SLOT] = z  # clear in place: no temporary copy of the table
        self.used = 0
        for cti, ctr, exp in entries:
            self._put(cti, ctr, exp, 0)

    # -- persistence ------------------------------------------------------------
    def load(self, now=0):
        """Rebuild the table from the file. Safe on a missing, torn or corrupt file."""
        self.close()
        self._npend = 0
        self._rebuild(())
        self.records = self.skipped = 0
        buf = bytearray(REC)
        try:
            f = open(self.path, "rb")
        except OSError:
            f = None
        if f is not None:
            try:
                while True:
                    n = f.readinto(buf)
                    if not n:
                        break
                    if n < REC:
                        self.skipped += 1  # torn tail
                        break
                    body = bytes(buf[:16])
                    if (crc32(body) & 0xFFFFFFFF) != struct.unpack_from(">I", buf, 16)[0]:
                        self.skipped += 1
                        continue
                    ctr, exp = struct.unpack_from(">II", buf, 8)
                    if exp == 0:
                        self.skipped += 1
                        continue
                    self.records += 1
                    if exp > now:
                        self._put(body[:8], ctr, exp, now)
            finally:
                f.close()
        if self.skipped or self.records > 4 * self.slots:
            self.compact()

    def compact(self):
        """Rewrite the file with one record per live table entry (tmp file + atomic rename)."""
        self._npend = 0  # queued records are in the table, so in the rewritten file
        self.close()
        tmp = self.path + ".tmp"
        n = 0
        with open(tmp, "wb") as f:
            for cti, ctr, exp in self._entries():
                f.write(_record(cti, ctr, exp))
                n += 1
        os.rename(tmp, self.path)
        self.records = n

    def commit(self, cti, ctr, exp, now, durable=True):
        """Record an accepted counter in the table and the file, before the gate opens.
        durable: appended and flushed before returning, so a cut after this cannot let the same
        code in twice. durable=False only queues the record (up to PEND) for sync(): on littlefs
        every append to a flushed file costs a block erase, tens of ms on NOR flash. Only for a
        caller that has its own durable record of (cti, ctr) before the relay moves, from which
        restore() completes the table at boot: the gate's operation log."""
        exp = min(exp, EXP_MAX)  # the field is 32 bits: a later expiry is kept until 2106, not wrapped
        rec = _record(cti, ctr, exp)
        if not durable and self._npend < PEND:
            o = self._npend * REC
            self._pend[o:o + REC] = rec
            self._npend += 1
        else:
            self._append(rec)
        self._put(cti, ctr, exp, now)
        if self.records > 4 * self.slots:
            self.compact()

    def _append(self, data):
        if self._f is None:
            self._f = open(self.path, "ab")
        self._f.write(data)
        self._f.flush()
        self.records += len(data) // REC

    def sync(self):
        """Write and flush what commit(durable=False) queued (between scans). True if it did."""
        n = self._npend
        if not n:
            return False
        self._npend = 0
        self._append(memoryview(self._pend)[:n * REC])
        return True

    def restore(self, records, now):
        """Complete the table from the operation log: records as OpLog.read gives them; every
        OPEN whose counter the table lacks (its queued append was lost with the power) is
        committed again, durably, with the widest expiry (the log does not hold it: kept until
        evicted). Returns how many were restored."""
        n = 0
        for r in records:
            c = r["cti"]
            if r["decision"] == "OPEN" and c is not None and r["ctr"] > self.highest(c):
                self.commit(c, r["ctr"], EXP_MAX, now)
                n += 1
        return n

    def close(self):
        if self._f is not None:
            self._f.close()
            self._f = None
