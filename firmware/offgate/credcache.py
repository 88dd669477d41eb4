"""Credentials whose issuer signature has already verified, keyed by SHA-256 of their exact bytes.

A returning rider then costs one signature check (the rider's), not two. Bounded, least recently
used out first; a new trust store empties it (a key may have been withdrawn). Bounded twice: by
`size` entries and, between scans, by the heap (trim): an entry is ~0.9 KB on the 64-bit unix
port (~0.45 KB on an ESP32), so at 128 KB a full cache of 32 would leave a scan too little room.
"""
import gc


class CredCache:
    def __init__(self, size):
        self.size = size
        self._d = {}
        self._order = []  # oldest first; size is small (tens), so list ops are cheap
        self.hits = 0
        self.misses = 0
        self.trimmed = 0  # entries dropped for heap (trim)

    def get(self, digest):
        c = self._d.get(digest)
        if c is None:
            self.misses += 1
            return None
        self.hits += 1
        if self._order[-1] != digest:
            self._order.remove(digest)
            self._order.append(digest)
        return c

    def put(self, digest, cred):
        if self.size <= 0:
            return
        if digest in self._d:
            return
        if len(self._order) >= self.size:
            del self._d[self._order.pop(0)]
        self._d[digest] = cred
        self._order.append(digest)

    def trim(self, min_free):
        """Drop least recently used entries while less than min_free bytes of heap are free (call
        it between scans, not inside a decision: it collects garbage). Returns how many went."""
        n = 0
        if gc.mem_free() >= min_free:
            return 0
        gc.collect()
        while self._order and gc.mem_free() < min_free:
            del self._d[self._order.pop(0)]
            n += 1
            gc.collect()
        self.trimmed += n
        return n

    def clear(self):
        self._d = {}
        self._order = []

    def __len__(self):
        return len(self._order)
