"""ECDSA P-256 / SHA-256 signature verification (ES256), pure MicroPython.

    verify(pub, msg, sig) -> bool          pub: SEC1 point, 65 bytes 04||x||y or 33 bytes 02/03||x
                                           sig: 64 bytes r||s (IEEE P1363), big-endian
    parse_public_key(pub) -> PublicKey     ValueError if malformed / not on the curve
    verify_key(key, msg, sig) -> bool      verify with an already-parsed key

verify and verify_key never raise for bad input: any malformed input is simply "not verified"
(fail closed). The one exception is MemoryError, which propagates: it is not evidence of a bad
signature, and the gate turns it into INTERNAL_ERROR rather than calling a valid rider a forger.
The arithmetic lives in offgate.crypto.p256fast (viper field arithmetic, used when the port has viper)
and offgate.crypto.p256ref (big integers, imported where first needed: the reference, and the path for every
exceptional case and for ports without viper).
"""
import hashlib

from offgate.crypto import p256, p256fast

_BYTES = (bytes, bytearray, memoryview)


class PublicKey:
    """A validated P-256 public key: affine x, y (0 <= x, y < p, on the curve, not infinity).
    tab caches the per-key odd-multiples table once precompute() is called (worth it for keys
    that verify many signatures, e.g. issuer keys; ~2.5 KiB each on a 32-bit port).
    comb, when set (offgate.crypto.keytables.attach, for trusted issuer keys), is the key's fixed-point
    comb table (an object with row(c)); verification then takes the comb path (~3.5x faster)."""

    def __init__(self, x, y):
        self.x = x
        self.y = y
        self.tab = None
        self.comb = None
        self.hi = None  # 2^128 * key (64 bytes), once precompute_split() ran: see p256fast

    def precompute_split(self):
        """Make hi = 2^128 * key so later verifications need 128 doublings, not 256 (fast path
        only; ~7M host instructions, ~60 ms estimated on an ESP32: for idle time). True if it did work."""
        if self.hi is not None or self.comb is not None or not p256fast.OK:
            return False
        self.hi = p256fast.pow2_128(self.x, self.y)
        return self.hi is not None

    def precompute(self):
        if self.tab is None:
            from offgate.crypto import p256ref  # big-integer tables: loaded on first use
            self.tab = p256ref.q_table(self.x, self.y)
        return self

    def __eq__(self, other):
        return isinstance(other, PublicKey) and self.x == other.x and self.y == other.y

    def __repr__(self):
        return "PublicKey(%064x, %064x)" % (self.x, self.y)


def parse_public_key(pub):
    """Decode a SEC1 uncompressed (04) or compressed (02/03) P-256 point into a PublicKey."""
    if not isinstance(pub, _BYTES):
        raise ValueError("public key must be bytes")
    pub = bytes(pub)
    ln = len(pub)
    if not ln:
        raise ValueError("empty public key")
    t = pub[0]
    p = p256.P
    if t == 4 and ln == 65:
        x = int.from_bytes(pub[1:33], "big")
        y = int.from_bytes(pub[33:], "big")
        if x >= p or y >= p or not p256.on_curve(x, y):
            raise ValueError("point not on P-256")
    elif (t == 2 or t == 3) and ln == 33:
        x = int.from_bytes(pub[1:], "big")
        if x >= p:
            raise ValueError("x >= p")
        y = p256.y_from_x(x, t & 1)
        if y is None:
            raise ValueError("x is not on P-256")
    else:
        # includes 00 (SEC1 infinity), hybrid 06/07 and any wrong length
        raise ValueError("bad public key encoding")
    return PublicKey(x, y)


def _sig_ints(sig):
    """(r, s) from a 64-byte P1363 signature, or None if malformed / out of [1, n-1]."""
    if not isinstance(sig, _BYTES) or len(sig) != 64:
        return None
    sig = bytes(sig)
    r = int.from_bytes(sig[:32], "big")
    s = int.from_bytes(sig[32:], "big")
    n = p256.N
    if not (0 < r < n and 0 < s < n):
        return None
    return r, s


def verify_key(key, msg, sig):
    """True iff sig is a valid ECDSA P-256/SHA-256 signature of msg under the PublicKey key."""
    try:
        if not isinstance(key, PublicKey) or not isinstance(msg, _BYTES):
            return False  # note: MicroPython's hashlib would happily hash a str
        rs = _sig_ints(sig)
        if rs is None:
            return False
        # n is 256 bits, so the whole SHA-256 digest is the integer e (no truncation)
        e = int.from_bytes(hashlib.sha256(msg).digest(), "big")
        r, s = rs
        if key.comb is not None:
            ok = p256fast.verify_comb(e, r, s, key.comb)
            if ok is None:  # no viper here, or an exceptional case: the big-int path decides
                from offgate.crypto import p256ref  # loaded on first use
                ok = p256ref.verify_comb(e, r, s, key.comb)
        else:
            if key.hi is not None:
                ok = p256fast.verify_split(e, r, s, key.x, key.y, key.hi)
            else:
                ok = p256fast.verify_core(e, r, s, key.x, key.y)
            if ok is None:
                from offgate.crypto import p256ref  # loaded on first use
                ok = p256ref.verify_core(e, r, s, key.x, key.y, key.tab)
        return ok is True
    except MemoryError:
        # Running out of memory says nothing about the signature: reporting "not verified" would
        # brand a valid rider a forger. Let the caller see it (the gate: INTERNAL_ERROR, deny).
        raise
    except Exception:  # fail closed: never let a bad input crash the gate
        return False


def verify(pub, msg, sig):
    """True iff sig (r||s) is a valid signature of msg under the SEC1-encoded public key pub."""
    try:
        key = parse_public_key(pub)
    except MemoryError:
        raise
    except Exception:
        return False
    return verify_key(key, msg, sig)
