"""The deny list: revoked credential ids, searched in place in the file.

File layout (docs/protocol.md §6): b"OGDL", version 1, three zero bytes, uint32 BE count, then
count sorted 8-byte ids. A binary search reads ~log2(n) ids of 8 bytes from the open file into one
preallocated buffer, so a list of 100,000 ids costs no heap, only ~17 small reads per scan.
"""
import struct

MAGIC = b"OGDL"
HEADER = 12
ID_LEN = 8


class DenyListError(ValueError):
    pass


def check_bytes(data):
    """Validate a whole deny list image (used before it replaces the current one). Returns the count."""
    if len(data) < HEADER or data[:4] != MAGIC or data[4] != 1 or data[5:8] != b"\x00\x00\x00":
        raise DenyListError("deny list: bad header")
    n = struct.unpack(">I", data[8:12])[0]
    if len(data) != HEADER + n * ID_LEN:
        raise DenyListError("deny list: length does not match count %d" % n)
    prev = None
    for i in range(n):
        cur = data[HEADER + i * ID_LEN:HEADER + (i + 1) * ID_LEN]
        if prev is not None and cur <= prev:
            raise DenyListError("deny list: ids not strictly ascending at %d" % i)
        prev = cur
    return n


class DenyList:
    def __init__(self, path=None):
        self._f = None
        self.count = 0
        self._buf = bytearray(ID_LEN)
        if path is not None:
            self.open(path)

    def open(self, path):
        """Open the list at `path`. A missing file is an empty list; a malformed one raises and
        leaves the current list in place."""
        try:
            f = open(path, "rb")
        except OSError:
            self.close()
            return
        try:
            head = f.read(HEADER)
            if len(head) != HEADER or head[:4] != MAGIC or head[4] != 1:
                raise DenyListError("deny list %s: bad header" % path)
            n = struct.unpack(">I", head[8:12])[0]
            f.seek(0, 2)
            if f.tell() != HEADER + n * ID_LEN:
                raise DenyListError("deny list %s: length does not match count" % path)
        except Exception:
            f.close()
            raise
        self.close()
        self._f = f
        self.count = n

    def close(self):
        if self._f is not None:
            self._f.close()
        self._f = None
        self.count = 0

    def contains(self, cid):
        if self._f is None or len(cid) != ID_LEN:
            return False
        lo, hi = 0, self.count
        buf = self._buf
        f = self._f
        while lo < hi:
            mid = (lo + hi) >> 1
            f.seek(HEADER + mid * ID_LEN)
            f.readinto(buf)
            if buf == cid:
                return True
            if buf < cid:
                lo = mid + 1
            else:
                hi = mid
        return False
