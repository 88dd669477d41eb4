"""Credentials whose issuer signature has already verified, keyed by SHA-256 of their exact bytes.

A returning rider then costs one signature check (the rider's), not two. Bounded, least recently
used out first; a new trust store empties it (a key may have been withdrawn).

Stored as fixed 260-byte records in 1 KB pages (4 records) allocated at boot, not as objects: cached
credentials were ~0.9 KB of small objects each on the 64-bit unix port, made in the middle of
scans and freed later, and after a few thousand scans at 128 KB the heap had 19 KB free in holes
of at most 384 bytes (bench/soak_128k.py). A hit rebuilds a short-lived Credential from its
record. A credential that does not fit a record (more than 8 zones or gates, a field above
2^32 - 1) is simply not cached: it costs the issuer verification again, nothing else.

Record: digest 32 | cti 8 | nbf exp key_nbf key_exp product cap (6 x u32 BE, cap 0xFFFFFFFF =
none) | zones count, gates count (0xFF = none), has_hi, 0 | zones 8 x u32 | gates 8 x u32 |
rider key x || y 64 | 2^128 * key 64 (ecdsa.PublicKey.hi).
"""
import struct

from offgate.policy import credential
from offgate.crypto import ecdsa

REC = 260
PAGE = 4
MAXN = 8
_NONE = 0xFFFFFFFF
_FIELDS = ">IIIIII"
_O_FIELDS = 40
_O_COUNTS = 64
_O_ZONES = 68
_O_GATES = 100
_O_KEY = 132
_O_HI = 196


def _fits(c):
    for v in (c.nbf, c.exp, c.key_nbf, c.key_exp, c.product):
        if not 0 <= v < _NONE:
            return False
    if c.cap is not None and not 0 <= c.cap < _NONE:
        return False
    for lst in (c.zones, c.gates or ()):
        if len(lst) > MAXN:
            return False
        for z in lst:
            if not 0 <= z <= _NONE:
                return False
    return len(c.cti) == 8


class CredCache:
    def __init__(self, size):
        self.size = size if size > 0 else 0
        # pages of PAGE records: a 1 KB block is easier to find than one of REC * size on a
        # fragmented heap (the unix port's, where bytecode and loader temporaries interleave)
        self.pages = [memoryview(bytearray(REC * PAGE)) for _ in range((self.size + PAGE - 1) // PAGE)]
        self.stamp = [0] * self.size   # 0 = empty, else last use (higher = more recent)
        self.clock = 0
        self.n = 0
        self.hits = 0
        self.misses = 0

    def _rec(self, i):
        o = (i % PAGE) * REC
        return self.pages[i // PAGE][o:o + REC]

    def _find(self, digest):
        st = self.stamp
        for i in range(self.size):
            if st[i] and self._rec(i)[0:32] == digest:
                return i
        return -1

    def get(self, digest):
        """A fresh Credential for the cached record, or None."""
        i = self._find(digest)
        if i < 0:
            self.misses += 1
            return None
        self.hits += 1
        self.clock += 1
        self.stamp[i] = self.clock
        return self._load(i)

    def _load(self, i):
        mv = self._rec(i)
        c = credential.Credential()
        c.cti = bytes(mv[32:40])
        c.iss = c.sub = ""  # not kept: the gate decides on the fields below
        c.nbf, c.exp, c.key_nbf, c.key_exp, c.product, cap = struct.unpack_from(_FIELDS, mv, _O_FIELDS)
        c.cap = None if cap == _NONE else cap
        nz, ng, has_hi = mv[_O_COUNTS], mv[_O_COUNTS + 1], mv[_O_COUNTS + 2]
        c.zones = [struct.unpack_from(">I", mv, _O_ZONES + 4 * k)[0] for k in range(nz)]
        c.gates = None if ng == 0xFF else [struct.unpack_from(">I", mv, _O_GATES + 4 * k)[0] for k in range(ng)]
        key = ecdsa.PublicKey(int.from_bytes(mv[_O_KEY:_O_KEY + 32], "big"),
                              int.from_bytes(mv[_O_KEY + 32:_O_HI], "big"))
        if has_hi:
            key.hi = bytes(mv[_O_HI:REC])
        c.rider = key
        return c

    def put(self, digest, c):
        """Cache credential c under digest; False if it does not fit a record (not cached)."""
        if not self.size or not _fits(c) or self._find(digest) >= 0:
            return False
        st = self.stamp
        i = 0
        for j in range(self.size):  # an empty slot, else the least recently used
            if st[j] < st[i]:
                i = j
            if not st[j]:
                i = j
                break
        if not st[i]:
            self.n += 1
        mv = self._rec(i)
        mv[0:32] = digest
        mv[32:40] = c.cti
        struct.pack_into(_FIELDS, mv, _O_FIELDS, c.nbf, c.exp, c.key_nbf, c.key_exp, c.product,
                         _NONE if c.cap is None else c.cap)
        mv[_O_COUNTS] = len(c.zones)
        mv[_O_COUNTS + 1] = 0xFF if c.gates is None else len(c.gates)
        mv[_O_COUNTS + 2] = 0
        for k, z in enumerate(c.zones):
            struct.pack_into(">I", mv, _O_ZONES + 4 * k, z)
        for k, g in enumerate(c.gates or ()):
            struct.pack_into(">I", mv, _O_GATES + 4 * k, g)
        mv[_O_KEY:_O_KEY + 32] = c.rider.x.to_bytes(32, "big")
        mv[_O_KEY + 32:_O_HI] = c.rider.y.to_bytes(32, "big")
        self.clock += 1
        st[i] = self.clock
        return True

    def precompute(self, digest):
        """Give the cached rider key at digest its 2^128 multiple (ecdsa.PublicKey.precompute_split),
        stored in the record. Work for idle time; True if it did some."""
        i = self._find(digest)
        if i < 0:
            return False
        mv = self._rec(i)
        if mv[_O_COUNTS + 2]:
            return False
        key = ecdsa.PublicKey(int.from_bytes(mv[_O_KEY:_O_KEY + 32], "big"),
                              int.from_bytes(mv[_O_KEY + 32:_O_HI], "big"))
        if not key.precompute_split():
            return False
        mv[_O_HI:REC] = key.hi
        mv[_O_COUNTS + 2] = 1
        return True

    def clear(self):
        for i in range(self.size):
            self.stamp[i] = 0
        self.n = 0

    def __len__(self):
        return self.n
