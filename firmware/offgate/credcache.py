"""Credentials whose issuer signature has already verified, keyed by SHA-256 of their exact bytes.

A returning rider then costs one signature check (the rider's), not two. Bounded, least recently
used out first; a new trust store empties it (a key may have been withdrawn).
"""


class CredCache:
    def __init__(self, size):
        self.size = size
        self._d = {}
        self._order = []  # oldest first; size is small (tens), so list ops are cheap
        self.hits = 0
        self.misses = 0

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

    def clear(self):
        self._d = {}
        self._order = []

    def __len__(self):
        return len(self._order)
