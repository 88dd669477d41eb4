"""The gate's own P-256 key: made on the gate, kept on its flash, never sent anywhere.

It signs what the gate reports (batch summaries) and does ECDH for encryption. Only the public
interface of offgate.crypto.p256 is used (P, N, GX, GY, inv, on_curve, y_from_x, mul).

Key file (state dir): b"OGK1" | d (32 bytes, big-endian) | crc32 of the first 36 bytes. Written
to a temporary file and renamed over (atomic on littlefs). A corrupt key file is an error, not
a reason to make a new key: a new key is a new gate identity the back office does not know.

Nonces: RFC 6979 (HMAC-SHA-256 DRBG seeded with the key and the message hash), hedged with 32
bytes of os.urandom as the "additional data" of RFC 6979 3.6. Why: the ESP32's RNG is only a
true RNG while the radio is on, and an offline gate's radio may be off; a purely random nonce
from a weak RNG leaks the key, a deterministic one cannot repeat across messages. The random
part protects against fault attacks on the deterministic computation. sign(msg, hedge=False)
gives plain RFC 6979 (test vectors, reproducible examples).

Scalar multiplications run on the viper field arithmetic (p256fast.mul_g: G's comb table;
p256fast.mul_point: width-5 NAF) where the port has it, about 10x fewer instructions than the
big-int p256ref.mul, which stays the fallback (CPython, webassembly, an exceptional case).

Side channels: neither p256fast nor p256ref.mul is constant time. Timing of
one signature leaks little through the gate's interfaces (signing happens at sync, not per scan),
but this is not a hardened implementation; see docs/protocol.md "Batch summaries".
"""
import hashlib
import os
import struct

from offgate import statedir
from offgate.checksum import crc32
from offgate.crypto import p256
from offgate.crypto.hmac256 import hmac_sha256

_MAGIC = b"OGK1"




def _int(b):
    return int.from_bytes(b, "big")


def _b32(x):
    return x.to_bytes(32, "big")


def random_scalar():
    """Uniform 1 <= d < n by rejection (never reduced mod n, which would bias it)."""
    n = p256.N
    while True:
        d = _int(os.urandom(32))
        if 0 < d < n:
            return d


def parse_point(pub):
    """(x, y) of a SEC1 point (65-byte uncompressed or 33-byte compressed) on P-256, else
    ValueError. Infinity (00), hybrid encodings and off-curve points are refused."""
    pub = bytes(pub)
    p = p256.P
    if len(pub) == 65 and pub[0] == 4:
        x = _int(pub[1:33])
        y = _int(pub[33:])
        if x >= p or y >= p or not p256.on_curve(x, y):
            raise ValueError("point not on P-256")
        return x, y
    if len(pub) == 33 and (pub[0] == 2 or pub[0] == 3):
        x = _int(pub[1:])
        if x >= p:
            raise ValueError("x >= p")
        y = p256.y_from_x(x, pub[0] & 1)
        if y is None:
            raise ValueError("x is not on P-256")
        return x, y
    raise ValueError("bad point encoding")


def rfc6979_k(d, h1, extra=b""):
    """Yield candidate nonces k for key d and message hash h1 (RFC 6979 3.2, SHA-256, qlen 256;
    `extra` is the additional data of 3.6)."""
    n = p256.N
    x = _b32(d)
    h = _b32(_int(h1) % n)  # bits2octets
    V = b"\x01" * 32
    K = hmac_sha256(b"\x00" * 32, V, b"\x00", x, h, extra)
    V = hmac_sha256(K, V)
    K = hmac_sha256(K, V, b"\x01", x, h, extra)
    V = hmac_sha256(K, V)
    while True:
        V = hmac_sha256(K, V)
        k = _int(V)
        if 0 < k < n:
            yield k
        K = hmac_sha256(K, V, b"\x00")
        V = hmac_sha256(K, V)


def _mul(k, x=None, y=None):
    """k*(x, y) (k*G when x is None) as affine ints: the fast path first, then the big-int one."""
    try:
        from offgate.crypto import p256fast
        r = p256fast.mul_g(k) if x is None else p256fast.mul_point(k, x, y)
    except ImportError:
        r = False
    except MemoryError:  # no room for G's comb table (one 16 KB block): the slower path needs little heap
        import gc
        gc.collect()
        r = False
    if r is False:
        from offgate.crypto import p256ref  # the big-integer fallback, loaded on first use
        r = p256ref.mul(k, p256.GX, p256.GY) if x is None else p256ref.mul(k, x, y)
    return r


class DeviceKey:
    def __init__(self, d):
        if not 0 < d < p256.N:
            raise ValueError("private scalar out of range")
        self._d = d
        self._pub = None  # computed on first use (one scalar multiplication)

    def public_bytes(self):
        if self._pub is None:
            q = _mul(self._d)
            self._pub = b"\x04" + _b32(q[0]) + _b32(q[1])
        return self._pub

    def sign(self, msg, hedge=True):
        """ES256: 64-byte r || s over SHA-256(msg)."""
        return self.sign_digest(hashlib.sha256(msg).digest(), hedge)

    def sign_digest(self, h1, hedge=True):
        """ES256 over an already computed SHA-256 digest (for messages hashed piecewise)."""
        n = p256.N
        e = _int(h1)  # n is 256 bits: the whole digest, no truncation
        for k in rfc6979_k(self._d, h1, os.urandom(32) if hedge else b""):
            R = _mul(k)
            r = R[0] % n
            if not r:
                continue
            s = p256.inv(k, n) * (e + r * self._d) % n
            if s:
                return _b32(r) + _b32(s)

    def ecdh(self, peer_pub65):
        """The shared x coordinate (32 bytes) with a peer's P-256 public key. The peer point is
        validated (on the curve, not infinity): an invalid-curve point would leak the key."""
        x, y = parse_point(peer_pub65)
        R = _mul(self._d, x, y)
        if R is None:
            raise ValueError("shared point is infinity")
        return _b32(R[0])


def generate():
    """A fresh key in RAM only (ephemeral keys)."""
    return DeviceKey(random_scalar())


def _encode(d):
    b = bytearray(_MAGIC + _b32(d))
    return bytes(b) + struct.pack(">I", crc32(b) & 0xFFFFFFFF)


def load_or_create(path, pub=None):
    """The gate's key from `path`; made (and stored atomically) on first boot. `pub`: its public
    key (65 bytes) as computed before from this file, if the caller kept it: spares the scalar
    multiplication when the key is read again (a sync session drops and re-reads it)."""
    raw = statedir.read(path)
    if raw is None:
        d = random_scalar()
        statedir.atomic_write(path, _encode(d))
        return DeviceKey(d)
    if len(raw) != 40 or raw[:4] != _MAGIC or struct.unpack(">I", raw[36:])[0] != crc32(raw[:36]) & 0xFFFFFFFF:
        raise ValueError("device key file %s is corrupt" % path)
    k = DeviceKey(_int(raw[4:36]))
    if pub is not None and len(pub) == 65:
        k._pub = bytes(pub)
    return k
