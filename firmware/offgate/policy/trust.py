"""Trusted issuer keys, by key id, each with its own validity window.

The gate holds public keys only. Several issuers (or an old and a new key during rotation) may be
trusted at once, and several keys may share a kid: the verifier tries every active one.
"""
from offgate.crypto import ecdsa

# A bigger store is refused whole ("no issuer trusted", reported) rather than read into the heap:
# each key costs ~0.5 KB of heap on a 32-bit build once parsed (docs/hardware.md, measured), and
# the back office ships only keys that are not expired.
MAX_BYTES = 4096
MAX_KEYS = 16


class TrustError(ValueError):
    pass


class IssuerKey:
    __slots__ = ("kid", "iss", "pub", "key", "nbf", "exp")

    def __init__(self, kid, iss, pub, nbf, exp):
        self.kid = kid
        self.iss = iss
        self.pub = pub
        self.key = ecdsa.parse_public_key(pub)  # rejects off-curve keys at load, not at scan
        self.nbf = nbf
        self.exp = exp

    def active(self, now):
        return self.nbf <= now < self.exp


class TrustStore:
    # lookup() results
    FOUND = 0
    UNKNOWN = 1
    INACTIVE = 2

    def __init__(self, keys=(), serial=0, issued=0):
        self.keys = list(keys)
        self.serial = serial  # inside the (root-signed) file: a lost sync.json cannot reset it
        self.issued = issued  # Unix seconds the back office made it (0: unknown)
        self.tables = (0, 0)  # (attached, refused) issuer comb tables

    def attach_tables(self, path, in_ram=False):
        """Give keys their comb tables from the file at path (offgate.crypto.keytables); a missing or
        bad file (or record) only leaves those keys on the generic path."""
        import offgate
        from offgate.crypto import keytables, p256
        self.tables = keytables.attach(path, [k.key for k in self.keys], in_ram)
        keytables = None
        offgate.unload("offgate.crypto.keytables")  # boot-time code: what rows need is in offgate.crypto.p256
        if self.keys:
            p256.gcomb()  # no G table in the file: load p256_gtable now, while the heap is unfragmented
        return self.tables

    @classmethod
    def from_bytes(cls, data):
        """Parse a trust store file (CBOR {"v": 1, "keys": [...], "serial", "issued", "crc"});
        any bad entry rejects the whole file with TrustError (the caller keeps its old store).
        The checks are offgate/policy/trustfile.py, loaded for the call and dropped after (boot
        and trust pushes only)."""
        import offgate
        from offgate.policy import trustfile
        try:
            entries, serial, issued = trustfile.parse(data, MAX_KEYS)
        except ValueError as e:
            raise TrustError(str(e))
        finally:
            trustfile = None
            offgate.unload("offgate.policy.trustfile")
        keys = []
        for i, (kid, iss, pub, nbf, exp) in enumerate(entries):
            try:
                keys.append(IssuerKey(kid, iss, pub, nbf, exp))
            except ValueError:
                raise TrustError("trust key %d: pub is not a valid P-256 point" % i)
        return cls(keys, serial, issued)

    @classmethod
    def load(cls, path):
        """The store in the file at `path` (at most MAX_BYTES bytes) with the comb tables of the
        file beside it attached. Raises TrustError."""
        try:
            import os
            n = os.stat(path)[6]
            if n > MAX_BYTES:
                raise TrustError("trust store %s: %d bytes, more than %d: not loaded" % (path, n, MAX_BYTES))
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise TrustError("cannot read trust store %s: %s" % (path, e))
        store = cls.from_bytes(data)
        data = None
        d = path.rpartition("/")[0]
        from offgate.statedir import TABLES  # comb tables for the keys (offgate.crypto.keytables), beside the store
        store.attach_tables((d + "/" if d else "") + TABLES)
        return store

    def lookup(self, kid, now):
        """Return (FOUND, [active keys]) or (UNKNOWN, []) or (INACTIVE, [])."""
        found = False
        active = []
        for k in self.keys:
            if k.kid == kid:
                found = True
                if k.active(now):
                    active.append(k)
        if active:
            return self.FOUND, active
        return (self.INACTIVE if found else self.UNKNOWN), active
