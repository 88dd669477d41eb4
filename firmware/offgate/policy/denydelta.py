"""Apply a deny list delta (kind 1, docs/protocol.md §6) to the installed list.

Delta layout (a version-2 header, then two more words):

    0   b"OGDL", 2 (version), 1 (kind: delta), id length L (0 = 8, as in a full list), zero
    8   count c = a + r (u32 BE): ids in the body
    12  serial (u32 BE) of the list the delta makes
    16  issued (u32 BE) of that list
    20  base (u32 BE): the serial the delta applies to (exactly)
    24  a (u32 BE): ids added
    28  n (u32 BE): ids in the resulting list
    32  a added ids, strictly ascending, then r removed ids, strictly ascending (L bytes each)
    32+Lc  sig_len (u16 BE) | sig | CRC-32 (BE) of everything before: as in a full list, and sig is
           the root signature of the *resulting full list* ({0: "deny", 1: serial, 2: issued,
           3: n, 4: SHA-256 of its header and ids})

The gate merges its sorted file with the adds and removes into `deny.bin.new.tmp` in 512-byte pieces:
the old file is read once, window by window; each change is placed by a binary search inside the
window that holds its place, the runs between changes are copied as they are (never decoded id by
id), and the SHA-256 of the result is computed on the way.
The new file is installed only if it has n ids and that digest is the signed one; a wrong base, a
torn upload or a forged delta leaves the old list. The result is byte for byte the full list the
back office signed (same header, ids, signature, CRC), so a later boot checks it like any other.
Heap: three preallocated buffers (512 + 2 ids) and the digest; nothing grows with the list.
Loaded for an install only and unloaded after (offgate/sync/admin.py).
"""
import hashlib
import struct

from offgate.checksum import crc32
from offgate.policy.denycheck import DenyListError, MAGIC
from offgate.statedir import remove, replace

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

_H = const(32)       # delta header
_FULL = const(24)    # a full version-2 list's header
_ID = const(8)
_PIECE = const(512)
_SIG_MAX = const(512)


def check(f, size):
    """Check an open delta file of `size` bytes: header, length, CRC, each run strictly
    ascending. Returns (serial, issued, base, adds, removes, n, sig bytes, id length);
    raises DenyListError."""
    f.seek(0)
    head = f.read(_H)
    if len(head) != _H or head[:4] != MAGIC or head[4] != 2 or head[5] != 1 or head[7] or \
            (head[6] and not 4 <= head[6] <= 7):
        raise DenyListError("deny delta: bad header")
    L = head[6] or _ID
    c, serial, issued, base, a, n = struct.unpack(">IIIIII", head[8:32])
    if a > c or not base or serial <= base:
        raise DenyListError("deny delta: bad header (adds %d of %d, base %d, serial %d)" % (a, c, base, serial))
    end = _H + c * L
    if size < end + 6:
        raise DenyListError("deny delta: length does not match count %d" % c)
    crc = crc32(head)
    buf = bytearray(_PIECE - _PIECE % L)
    prev = None
    i = 0
    pos = _H
    while pos < end:
        k = end - pos
        if k > len(buf):
            k = len(buf)
        mv = memoryview(buf)[:k]
        if f.readinto(mv) != k:
            raise DenyListError("deny delta: length does not match count %d" % c)
        crc = crc32(mv, crc)
        for j in range(0, k, L):
            cur = bytes(mv[j:j + L])
            if i == a:
                prev = None  # the removes start a new run
            if prev is not None and cur <= prev:
                raise DenyListError("deny delta: ids not strictly ascending at %d" % i)
            prev = cur
            i += 1
        pos += k
    ln = f.read(2)
    if len(ln) != 2 or ((ln[0] << 8) | ln[1]) > _SIG_MAX or size - end != 2 + ((ln[0] << 8) | ln[1]) + 4:
        raise DenyListError("deny delta: length does not match count %d" % c)
    tail = ln + f.read(size - end - 2)
    if len(tail) != size - end or struct.unpack(">I", tail[-4:])[0] != crc32(tail[:-4], crc) & 0xFFFFFFFF:
        raise DenyListError("deny delta: CRC mismatch (damaged)")
    return serial, issued, base, a, c - a, n, bytes(tail[2:-4]), L


class _Merge:
    """One merge: the old list's open file (header length h, count n), the delta file, the output."""

    def __init__(self, old_f, h, n, d, out, L):
        self.src, self.h, self.n, self.d, self.out, self.L = old_f, h, n, d, out, L
        self.buf = bytearray(_PIECE - _PIECE % L)
        self.written = 0
        self.sha = None
        self.crc = 0

    def emit(self, data):
        self.sha.update(data)
        self.crc = crc32(data, self.crc)
        self.out.write(data)

    def copy(self, lo, hi):
        """Old ids lo .. hi-1 to the output, in pieces."""
        src = self.src
        src.seek(self.h + lo * self.L)
        left = (hi - lo) * self.L
        mv = memoryview(self.buf)
        p = len(self.buf)
        while left:
            k = left if left < p else p
            piece = mv if k == p else mv[:k]
            if src.readinto(piece) != k:
                raise DenyListError("deny list: short read while merging")
            self.emit(piece)
            left -= k
        self.written += hi - lo

    # The window: old ids ws .. we-1 held in buf, read once as the merge walks the file.
    ws = we = 0

    def _cmp(self, i, x):
        """Old id i (in the window) against x: -1, 0 or 1, byte by byte, allocating nothing
        (a bytes slice per comparison cost more than the whole comparison)."""
        buf = self.buf
        o = (i - self.ws) * self.L
        j = 0
        while j < self.L:
            a = buf[o + j]
            b = x[j]
            if a != b:
                return -1 if a < b else 1
            j += 1
        return 0

    def place(self, pos, x):
        """Emit the old ids from pos that are below x. Returns (index of the first old id not
        below x, whether it is x). Walks the file in 512-byte windows, each read once; the place
        inside a window is found by a binary search in memory."""
        L = self.L
        while True:
            if pos >= self.we:
                if pos >= self.n:
                    return pos, False
                k = self.n - pos
                cap = len(self.buf) // L
                if k > cap:
                    k = cap
                self.src.seek(self.h + pos * L)
                if self.src.readinto(memoryview(self.buf)[:k * L]) != k * L:
                    raise DenyListError("deny list: short read while merging")
                self.ws, self.we = pos, pos + k
            if self._cmp(self.we - 1, x) < 0:
                self._emit_window(pos, self.we)
                pos = self.we
                continue
            lo, hi = pos, self.we - 1
            while lo < hi:
                mid = (lo + hi) >> 1
                if self._cmp(mid, x) < 0:
                    lo = mid + 1
                else:
                    hi = mid
            self._emit_window(pos, lo)
            return lo, self._cmp(lo, x) == 0

    def _emit_window(self, a, b):
        if b > a:
            self.emit(memoryview(self.buf)[(a - self.ws) * self.L:(b - self.ws) * self.L])
            self.written += b - a

    def rest(self, pos):
        """Emit the old ids from pos to the end."""
        if pos < self.we:
            self._emit_window(pos, self.we)
            pos = self.we
        self.copy(pos, self.n)


def merge(old_f, h, n, delta_path, out_path, head):
    # the caller checked that the delta's id length is the old list's
    """Write the list made by the delta at `delta_path` (already checked: `head` = check()'s
    result) from the old list's open file `old_f` (ids at offset h, n of them) to `out_path`.
    Returns the SHA-256 of the new header and ids; raises DenyListError if the delta does not fit
    the old list (an add already on it, a remove not on it: a wrong base) or the count is wrong.
    The caller compares the digest with the signed one before installing anything."""
    serial, issued, base, a, r, n_new, sig, L = head
    hdr = MAGIC + bytes((2, 0, 0 if L == _ID else L, 0)) + struct.pack(">IIII", n_new, serial, issued, 0)
    with open(delta_path, "rb") as d, open(out_path, "wb") as out:
        m = _Merge(old_f, h, n, d, out, L)
        m.sha = hashlib.sha256()
        m.emit(hdr)
        abuf = bytearray(L)
        rbuf = bytearray(L)
        ai = ri = 0
        pos = 0
        if a:
            d.seek(_H)
            d.readinto(abuf)
        if r:
            d.seek(_H + a * L)
            d.readinto(rbuf)
        while ai < a or ri < r:
            add = ri >= r or (ai < a and abuf < rbuf)
            if ai < a and ri < r and abuf == rbuf:
                raise DenyListError("deny delta: an id both added and removed")
            x = abuf if add else rbuf
            k, hit = m.place(pos, x)
            if add:
                if hit:
                    raise DenyListError("deny delta: adds an id the list already holds (wrong base)")
                m.emit(x)
                m.written += 1
                pos = k
                ai += 1
                if ai < a:
                    d.seek(_H + ai * L)
                    d.readinto(abuf)
            else:
                if not hit:
                    raise DenyListError("deny delta: removes an id the list does not hold (wrong base)")
                pos = k + 1
                ri += 1
                if ri < r:
                    d.seek(_H + (a + ri) * L)
                    d.readinto(rbuf)
        m.rest(pos)
        if m.written != n_new:
            raise DenyListError("deny delta: makes %d ids, its signature says %d (wrong base)" % (m.written, n_new))
        digest = m.sha.digest()
        m.sha = hashlib.sha256()  # the tail is not covered by the digest, only by the CRC
        m.emit(struct.pack(">H", len(sig)) + sig)
        out.write(struct.pack(">I", m.crc & 0xFFFFFFFF))
        try:
            out.flush()
        except (AttributeError, OSError):
            pass
    return digest


def install(dl, delta_path, new_path, path, head, signed_digest):
    """Merge the checked delta (`head` = check()'s result, its signature already verified and
    its base dl's serial) with the open DenyList `dl` into `new_path`; if the result's SHA-256 is
    `signed_digest`, rename it over `path` (the list file dl has open) and reopen dl on it.
    Otherwise, or on a write error, remove `new_path` and raise DenyListError: `path` and dl are
    as they were (also on a MemoryError, which is raised as it is: the merge can be repeated). A power cut at any point leaves `path` old or new, whole (rename is atomic)."""
    try:
        digest = merge(dl._f, dl._h, dl.count, delta_path, new_path, head)
        if digest != signed_digest:
            raise DenyListError("the merged list is not the signed one (wrong base?)")
        replace(new_path, path)
    except Exception as e:  # MemoryError too: the half-written new list goes, the caller may repeat
        remove(new_path)
        if isinstance(e, OSError):
            raise DenyListError("writing the new list failed (%s)" % e)
        raise
    dl.open(path, (head[5], head[0], head[1], head[7]))
