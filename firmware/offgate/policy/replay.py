"""Replay protection: the highest counter this gate has accepted for each credential.

A code is accepted only if its counter is above the highest one seen here for its credential
(a repeat is a replayed code; a lower one is an older code shown after a newer one). The state
survives a reboot: every accepted counter is appended to a small file and flushed *before* the
gate opens; at boot the file is replayed into the table.

How long an entry is kept: until its credential expires, or `horizon` seconds after the accept,
whichever is first. The gate sets horizon = max_age_s + 2 * skew_s: a code older than that is
refused as CODE_STALE anyway (an honest wallet's counter rises with its iat, so every code with a
counter at or below the accepted one has an iat at most skew_s after the accept), so forgetting
the entry then costs nothing. The table therefore only has to hold the distinct credentials one
gate admits within one horizon (default 120 s), not within a credential's lifetime.

Memory: 1 KB pages of 16-byte slots (cti 8 | ctr 4 | keep-until 4), open addressing with linear
probing. Pages rather than one block because a 128 KB heap that has loaded the firmware's bytecode
(.mpy files) is fragmented: measured 59 KB free with no free run above 7 KB. The table starts at
LOW_SLOTS (2 KB) and doubles up to `slots` (the configured capacity) when 3/4 full of live entries;
tidy() (between scans, at a sync session's start) halves it again once a quarter full. A gate
admits at most ~1 rider a second, so between rushes the table holds the ~100 credentials of one
horizon and the 6 KB a full 512-slot table would take stay free for a sync session. A resize
allocates the new pages and a copy of the live entries (1 KB pieces) before it changes anything:
short of heap, the table keeps its size and evicts as below (counted in `grow_failed`).
Making room never allocates per entry: expired entries are deleted in place (backward-shift
deletion, Knuth 6.4 Algorithm R, so no tombstones and every probe chain stays intact); if the
table is still 3/4 full of live entries, those kept-until earliest are evicted down to half,
chosen by a bisection over the time left (1 s resolution, <= 25 counting passes, ~8 with the
gate's horizon; no sort, no list). Evictions are counted (`evictions`); an evicted credential's older codes that are still
within their freshness window could be accepted once more at this gate (docs/security.md).

File: 20-byte records (cti 8 | ctr 4 BE | keep-until 4 BE | crc32 4 BE). A torn last record
(power cut mid-append) or a record with a bad CRC is skipped and counted; the file is rewritten
compactly when that happens or when it has grown to 4x the table, via a temporary file and an
atomic rename (littlefs), so a cut during compaction leaves either the old or the new file.
Compaction is housekeeping: if it fails (a full filesystem) the table is already complete, the
temporary file is removed and the failure is counted (`compact_errors`), never raised.
"""
import struct

from offgate.checksum import crc32

REC = 20
SLOT = 16
PAGE_SLOTS = 64  # 1 KB per page
LOW_SLOTS = 128  # the table's size between rushes (2 KB)
PEND = 8         # records commit(durable=False) may queue before sync()
EXP_MAX = 0xFFFFFFFF
_ZERO = bytes(SLOT)


def _copy(dst, d, src, s):
    """One slot from src[s:] to dst[d:], byte by byte: no object made (a resize must not fail half way)."""
    for j in range(SLOT):
        dst[d + j] = src[s + j]


def _record(cti, ctr, exp):
    body = bytes(cti) + struct.pack(">II", ctr, exp)
    return body + struct.pack(">I", crc32(body) & 0xFFFFFFFF)


class ReplayGuard:
    def __init__(self, path, slots=512, horizon=0):
        """path: the replay file; slots: table size (16 bytes each); horizon: seconds an accepted
        counter is kept at most (0: until the credential expires)."""
        self.path = path
        self.cap = slots                    # the most slots the table may grow to
        self.low = min(slots, LOW_SLOTS)    # its size between rushes
        self.slots = self.low               # its size now
        self.horizon = horizon
        self.pages = self._alloc(self.low, [])
        self.used = 0
        self.evictions = 0
        self.resizes = 0        # times the table grew or shrank
        self.grow_failed = 0    # growths refused by a short heap (the table evicted instead)
        # ctis of live entries evicted because the table could not grow (a 4096-bit Bloom filter,
        # 3 bits each) while one of their codes could still be fresh: until evict_until (0: none).
        # Preallocated: such evictions happen when the heap is short.
        self.evicted = bytearray(512)
        self.evict_until = 0
        self._tidied = 0        # clock second of the last tidy() that looked at the table
        self.skipped = 0        # torn or corrupt records found at load
        self.records = 0        # records in the file
        self.compact_errors = 0  # compactions that failed (e.g. filesystem full); the table is intact
        self.stale_tmp = False   # a temporary file from a cut compaction was found at load
        self.load_error = None   # errno of an unreadable file at load (e.g. 21: a directory)
        self.corrupt = 0         # records with a bad CRC at load (damage, not a power cut)
        self.torn = False        # the file ended mid-record (a power cut mid-append, or truncation)
        self.missing = False     # no file at load
        self._f = None
        self._pend = bytearray(REC * PEND)  # records of commit(durable=False) not yet written
        self._npend = 0
        self._dirty = False      # restore() added entries the file lacks: sync() rewrites it

    @staticmethod
    def _alloc(n, old):
        """Pages for n slots, reusing the whole pages of `old` (a list of pages) where they fit.
        Raises MemoryError before anything is changed."""
        pages = []
        i = 0
        while n > 0:
            k = min(n, PAGE_SLOTS)
            if i < len(old) and len(old[i]) == k * SLOT:
                pages.append(old[i])
            else:
                pages.append(memoryview(bytearray(k * SLOT)))
            n -= k
            i += 1
        return pages

    def _resize(self, n):
        """Rehash the table into n slots (n >= used * 4 // 3). The new pages and a copy of the
        live entries are allocated first: MemoryError leaves the table as it was."""
        used = self.used
        tmp = []
        left = used
        while left > 0:
            tmp.append(bytearray(min(left, PAGE_SLOTS) * SLOT))
            left -= PAGE_SLOTS
        pages = self._alloc(n, self.pages)
        # from here on nothing is allocated (byte copies: reading a slice makes an object), so no
        # MemoryError can leave the table half moved
        k = 0
        for mv in self.pages:
            for o in range(0, len(mv), SLOT):
                if mv[o + 12] or mv[o + 13] or mv[o + 14] or mv[o + 15]:
                    _copy(tmp[k // PAGE_SLOTS], (k % PAGE_SLOTS) * SLOT, mv, o)
                    k += 1
                mv[o:o + SLOT] = _ZERO  # (a slice store allocates nothing) reused pages start empty
        self.pages = pages
        self.slots = n
        for k in range(used):
            t = tmp[k // PAGE_SLOTS]
            q = (k % PAGE_SLOTS) * SLOT
            i = ((t[q] << 16) | (t[q + 1] << 8) | t[q + 2]) % n
            while True:
                mv, o = self._slot(i)
                if not (mv[o + 12] or mv[o + 13] or mv[o + 14] or mv[o + 15]):
                    _copy(mv, o, t, q)
                    break
                i += 1
                if i == n:
                    i = 0
        self.resizes += 1

    def _grow(self):
        """Double the table (up to cap). False if it is at cap or the heap is short."""
        if self.slots >= self.cap:
            return False
        try:
            self._resize(min(self.cap, self.slots * 2))
            return True
        except MemoryError:
            self.grow_failed += 1
            return False

    def tidy(self, now, every=60):
        """Between scans: delete expired entries and give back half of the table while it is at
        most a quarter full, at most once every `every` seconds (0: now). Bounded work: one pass
        over the table and a rehash of at most a quarter of it. Never raises."""
        if self.slots <= self.low or (every and 0 <= now - self._tidied < every):
            return False
        self._tidied = now
        try:
            self._sweep(now >> 16, now & 0xFFFF, 0, 0)
            n = self.low
            while n * 2 < self.slots:
                n *= 2
            if self.used * 2 > n:
                return False
            self._resize(n)
            return True
        except MemoryError:  # the copy of the entries: next time
            return False

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

    @staticmethod
    def _rel(mv, o, nh, nl):
        """Seconds from now until the keep-until of the slot at (mv, o) (<= 0: expired), capped at
        2^24 - 1 (~194 days); nh, nl = now >> 16, now & 0xFFFF. Small ints only: the 32-bit value
        itself would be a heap-allocated int on a 32-bit MicroPython, once per slot."""
        d = ((mv[o + 12] << 8) | mv[o + 13]) - nh
        if d >= 255:
            return 0xFFFFFF
        if d < -1:
            return -1
        return d * 65536 + ((mv[o + 14] << 8) | mv[o + 15]) - nl

    def _delete(self, i):
        """Empty slot i and close the gap behind it in place (backward-shift deletion): each entry
        after it in the same run moves back unless that would put it before its home slot."""
        slots = self.slots
        mi, oi = self._slot(i)
        mi[oi:oi + SLOT] = _ZERO
        self.used -= 1
        j = i
        while True:
            j += 1
            if j == slots:
                j = 0
            mj, oj = self._slot(j)
            if mj[oj + 12] == 0 and mj[oj + 13] == 0 and mj[oj + 14] == 0 and mj[oj + 15] == 0:
                return
            h = ((mj[oj] << 16) | (mj[oj + 1] << 8) | mj[oj + 2]) % slots
            # the entry at j may fill the hole at i unless its home lies cyclically in (i, j]
            if (i < h <= j) if i <= j else (h > i or h <= j):
                continue
            mi, oi = self._slot(i)
            mi[oi:oi + SLOT] = mj[oj:oj + SLOT]
            mj[oj:oj + SLOT] = _ZERO
            i = j

    def _sweep(self, nh, nl, kmax, eq, mark=False):
        """Delete (in place) expired entries, those with _rel below kmax, and `eq` of those at
        kmax (their ctis marked in `evicted` if `mark`). Returns how many live entries were deleted."""
        evicted = 0
        i = 0
        while i < self.slots:
            mv, o = self._slot(i)
            if mv[o + 12] or mv[o + 13] or mv[o + 14] or mv[o + 15]:
                k = self._rel(mv, o, nh, nl)
                if k <= 0:
                    self._delete(i)
                    continue  # slot i now holds the next entry of its run: look again
                if k < kmax or (k == kmax and eq > 0):
                    if k == kmax:
                        eq -= 1
                    if mark:
                        self._mark(mv, o)
                    self._delete(i)
                    evicted += 1
                    continue
            i += 1
        return evicted

    def _count_le(self, key, nh, nl):
        n = 0
        for mv in self.pages:
            for o in range(0, len(mv), SLOT):
                if (mv[o + 12] or mv[o + 13] or mv[o + 14] or mv[o + 15]) and self._rel(mv, o, nh, nl) <= key:
                    n += 1
        return n

    def _make_room(self, now):
        """Delete expired entries; if the table is still 3/4 full, grow it (up to cap) or, at cap
        or short of heap, evict those kept-until earliest down to half. In place: no list of entries, no sort; at most 27 passes over the table."""
        nh = now >> 16
        nl = now & 0xFFFF
        self._sweep(nh, nl, 0, 0)
        if self.used * 4 < self.slots * 3:
            return
        if self._grow():
            return
        need = self.used - self.slots // 2
        # the smallest K with at least `need` entries kept at most K seconds more: bisection up to
        # the largest time left (~7 passes with the gate's 120 s horizon, at most 24)
        hi = 1
        for mv in self.pages:
            for o in range(0, len(mv), SLOT):
                if mv[o + 12] or mv[o + 13] or mv[o + 14] or mv[o + 15]:
                    k = self._rel(mv, o, nh, nl)
                    if k > hi:
                        hi = k
        lo = 1
        while lo < hi:
            mid = (lo + hi) >> 1
            if self._count_le(mid, nh, nl) >= need:
                hi = mid
            else:
                lo = mid + 1
        below = self._count_le(lo - 1, nh, nl)
        # below its cap the table evicts only because the heap is short (a sync session on a
        # 128 KB gate): fail closed then, so that no number of credentials can push a counter
        # out and replay it (at the cap the documented overflow rule applies: docs/security.md)
        mark = self.slots < self.cap
        if mark:
            if now >= self.evict_until:
                for j in range(512):
                    self.evicted[j] = 0
            if now + lo > self.evict_until:
                self.evict_until = now + lo  # what is evicted now is kept at most lo s more
        self.evictions += self._sweep(nh, nl, lo, need - below, mark)

    def _mark(self, mv, o):
        b = self.evicted
        for j in (3, 5, 7):
            h = ((mv[o + j] << 8) | mv[o + j - 3]) & 4095
            b[h >> 3] |= 1 << (h & 7)

    def maybe_evicted(self, cti, now):
        """True if cti has no entry here but may have been evicted while one of its codes could
        still be fresh (then the code must be refused: its counter is unknown). False positives
        (~0.3 % at 200 evicted ctis) refuse an honest first code; the rider's next one opens
        once evict_until has passed."""
        b = self.evicted
        if now >= self.evict_until:
            return False
        for j in (3, 5, 7):
            h = ((cti[j] << 8) | cti[j - 3]) & 4095
            if not b[h >> 3] & (1 << (h & 7)):
                return False
        return self.highest(cti) < 0

    def _clear(self):
        for mv in self.pages:
            for o in range(0, len(mv), SLOT):
                mv[o:o + SLOT] = _ZERO  # in place: no temporary copy of the table
        self.used = 0

    # -- persistence ------------------------------------------------------------
    def load(self, now=0):
        """Rebuild the table from the file. Safe on a missing, torn, corrupt or unreadable file
        (`load_error` then names the OSError; what was read so far stays) and on a full
        filesystem (compaction is skipped). Never raises. The reading is boot-only code,
        offgate/policy/replayfile.py, loaded for the call and dropped after."""
        import offgate
        self.close()
        self._npend = 0
        self._dirty = False
        self._clear()
        from offgate import statedir  # boot and housekeeping only: not resident between scans
        self.stale_tmp = statedir.remove(self.path + statedir.TMP)  # left by a compaction a power cut interrupted
        from offgate.policy import replayfile
        try:
            (self.records, self.skipped, self.corrupt, self.torn, self.missing,
             self.load_error) = replayfile.load(self.path, now, self._put, bytearray(REC))
        finally:
            replayfile = None
            offgate.unload("offgate.policy.replayfile")
        if self.load_error is None and (self.skipped or self.records > 4 * self.cap):
            self.compact()

    def compact(self):
        """Rewrite the file with one record per live table entry (tmp file + atomic rename).
        Housekeeping: True if done; on failure (e.g. ENOSPC) the old file stays, the temporary
        file is removed, `compact_errors` counts it and False is returned; never raises."""
        if self._npend:
            try:
                self.sync()
            except Exception:
                pass  # the queued records are in the table; the rewrite below holds them
        self.close()
        tmp = None
        n = 0
        rec = bytearray(REC)
        try:
            from offgate import statedir  # housekeeping only: not resident between scans
            tmp = self.path + statedir.TMP
            with open(tmp, "wb") as f:
                for mv in self.pages:
                    for o in range(0, len(mv), SLOT):
                        if mv[o + 12] or mv[o + 13] or mv[o + 14] or mv[o + 15]:
                            rec[0:16] = mv[o:o + 16]
                            struct.pack_into(">I", rec, 16, crc32(memoryview(rec)[:16]) & 0xFFFFFFFF)
                            f.write(rec)
                            n += 1
            statedir.replace(tmp, self.path)
        except Exception:  # OSError 28 on a full filesystem, above all
            self.compact_errors += 1
            if tmp is not None:
                statedir.remove(tmp)
            return False
        self._npend = 0
        self._dirty = False
        self.records = n
        return True

    def commit(self, cti, ctr, exp, now, durable=True, iat=None):
        """Record an accepted counter in the table and the file, before the gate opens.
        durable: appended and flushed before returning, so a cut after this cannot let the same
        code in twice. durable=False only queues the record (up to PEND) for sync(): on littlefs
        every append to a flushed file costs a block erase, tens of ms on NOR flash. Only for a
        caller that has its own durable record of (cti, ctr) before the relay moves, from which
        restore() completes the table at boot: the gate's operation log."""
        if self.horizon:  # from the code's iat if later than now (degraded time: offgate.timekeep)
            exp = min(exp, (iat if iat is not None and iat > now else now) + self.horizon)
        exp = min(exp, EXP_MAX)  # the field is 32 bits: a later expiry is kept until 2106, not wrapped
        rec = _record(cti, ctr, exp)
        if not durable and self._npend < PEND:
            o = self._npend * REC
            self._pend[o:o + REC] = rec
            self._npend += 1
        else:
            self._append(rec)
        self._put(cti, ctr, exp, now)
        if self.records > 4 * self.cap:
            self.compact()  # never raises: the record above is already written

    def _append(self, data):
        if self._f is None:
            self._f = open(self.path, "ab")
        self._f.write(data)
        self._f.flush()
        self.records += len(data) // REC

    def sync(self):
        """Write and flush what commit(durable=False) queued (between scans), or rewrite the file
        if restore() put entries into the table only. True if it did."""
        if self._dirty:
            return self.compact()
        n = self._npend
        if not n:
            return False
        self._npend = 0
        self._append(memoryview(self._pend)[:n * REC])
        return True

    def restore(self, records, now):
        """Complete the table from the operation log: records as OpLog.read gives them; every
        OPEN whose counter the table lacks (its queued append was lost with the power) goes back
        into the table, kept for the horizon from the record's time (the log does not hold the
        credential's expiry; without a horizon: until evicted); records older than the horizon
        are no longer needed. Table only: the log still holds them, and sync() (called before
        the log frees records) rewrites the file from the table. Returns how many were restored.
        Boot-only (offgate/policy/replayfile.py; gate.build drops it after the boot)."""
        from offgate.policy import replayfile
        n = replayfile.restore(records, now, self.horizon, self.highest, self._put, EXP_MAX)
        if n:
            self._dirty = True
        return n

    def close(self):
        if self._f is not None:
            self._f.close()
            self._f = None
