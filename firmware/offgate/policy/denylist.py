"""The deny list: revoked credential ids, searched in place in the file.

File layout (docs/protocol.md §6), version 2 (root-signed, serial-numbered):

    0   b"OGDL"
    4   version 2 (u8)
    5   kind (u8): 0 = a full list (1 = a delta against `base`: only sent over sync, merged into
        a new full list by offgate.policy.denydelta, never stored as deny.bin)
    6   id length (u8): 0 = whole 8-byte ids; 4 .. 7 = that many leading bytes of each id (the
        back office keeps the prefixes of live credentials unique, docs/protocol.md §6)
    7   reserved, zero
    8   count (u32 BE)
    12  serial (u32 BE): grows with every list the back office issues; a gate never installs a
        list whose serial is not above its own
    16  issued (u32 BE, Unix seconds): when the back office signed it (its age at the gate)
    20  base (u32 BE): 0 for a full list (a delta's base serial)
    24  count ids of L bytes (8, or byte 6), strictly ascending
    24+Ln  sig_len (u16 BE) | sig: a root-signed COSE_Sign1 whose payload is CBOR
           {0: "deny", 1: serial, 2: issued, 3: count, 4: SHA-256(bytes 0 .. 24+Ln)}
    end-4  CRC-32 (IEEE, BE) of everything before it

Version 1 (b"OGDL", 1, three zero bytes, count, ids: no serial, no signature, no CRC) still loads
(a list deployed over USB before this format), as serial 0, unsigned; the sync link never
installs one.

At load the whole file is read once in small pieces: the CRC and the order of the ids are checked,
so a flipped bit or two swapped ids are found and reported (DenyListError), never searched. The
signature is checked when the list is installed (sync/admin.py), not at every boot: flash damage is what
the CRC is for, and whoever can write the flash can replace the firmware too.

A binary search reads ~log2(n) ids of L bytes from the open file into one preallocated buffer, so
a list of 100,000 ids costs no heap, only ~17 small reads per scan.
"""
HEADER = 12          # version 1 (version 2: 24)
ID_LEN = 8


class DenyListError(ValueError):
    """A deny list file that cannot be used (its path and what is wrong)."""


def check_bytes(data):
    """Validate a whole deny list image (offgate.policy.denycheck.check_bytes). Returns the count;
    DenyListError if it is malformed or damaged."""
    from offgate.policy import denycheck
    try:
        return denycheck.check_bytes(data)
    except ValueError as e:
        raise DenyListError(str(e))


class DenyList:
    def __init__(self, path=None):
        self._f = None
        self.count = 0
        self.serial = 0       # 0: no list, or an unsigned version-1 list
        self.issued = 0       # Unix seconds the back office signed it (0: unknown)
        self._h = HEADER      # header length: 12 for version 1, 24 for version 2 (signed)
        self._len = ID_LEN    # bytes stored per id: 8, or a prefix of 4 .. 7 (version 2, byte 6)
        self._buf = bytearray(ID_LEN)
        self._key = self._buf
        if path is not None:
            self.open(path)

    def open(self, path, known=None):
        """Open the list at `path`, checking it whole (CRC, order). A missing file is an empty list;
        a malformed or damaged one raises DenyListError and leaves the current list in place.
        `known` = (count, serial, issued, id length) of a version-2 list this gate has just built
        or checked itself (a merged delta, an install): the whole-file check is skipped."""
        try:
            f = open(path, "rb")
        except OSError:
            self.close()
            return
        if known is not None:
            n, serial, issued, L = known
            h = 24
        else:
            import offgate
            from offgate.policy import denycheck  # boot/install-time code: unloaded again right after
            try:
                f.seek(0, 2)
                v, h, n, serial, issued, sig, L = denycheck.check_file(f, f.tell())
                sig = None
            except ValueError as e:  # denycheck.DenyListError: malformed or damaged
                f.close()
                raise DenyListError("%s: %s" % (path, e))
            except Exception:
                f.close()
                raise
            finally:
                denycheck = None
                offgate.unload("offgate.policy.denycheck")
        self.close()
        self._f = f
        self.count = n
        self.serial = serial
        self.issued = issued
        self._h = h
        if L != self._len:  # buffers for the stored id length: made here, never per look-up
            self._len = L
            self._buf = bytearray(L)
            self._key = bytearray(L) if L != ID_LEN else self._buf

    def close(self):
        if self._f is not None:
            self._f.close()
        self._f = None
        self.count = 0
        self.serial = 0
        self.issued = 0

    def stale(self, now, max_age_s):
        """True if max_age_s (> 0) has passed since the list was issued (or its issue time is
        unknown: no list, or an unsigned version-1 list)."""
        return max_age_s > 0 and (not self.issued or now - self.issued > max_age_s)

    def contains(self, cid):
        """True if the 8-byte credential id `cid` (or, in a list of prefixes, its first bytes) is
        listed. ~log2(count) reads of one id into a preallocated buffer: no heap."""
        if self._f is None or len(cid) != ID_LEN:
            return False
        L = self._len
        key = cid
        if L != ID_LEN:
            key = self._key
            i = 0
            while i < L:  # the prefix, copied without a slice (no allocation per look-up)
                key[i] = cid[i]
                i += 1
        lo, hi = 0, self.count
        buf = self._buf
        f = self._f
        h = self._h
        while lo < hi:
            mid = (lo + hi) >> 1
            f.seek(h + mid * L)
            f.readinto(buf)
            if buf == key:
                return True
            if buf < key:
                lo = mid + 1
            else:
                hi = mid
        return False
