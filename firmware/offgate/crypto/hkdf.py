"""HKDF with SHA-256 (RFC 5869): extract-then-expand key derivation."""
from offgate.crypto.hmac256 import hmac_sha256

HASH_LEN = 32


def extract(salt, ikm):
    # RFC 5869 2.2: a missing salt is HashLen zero bytes
    return hmac_sha256(salt if salt else bytes(HASH_LEN), ikm)


def expand(prk, info, length):
    if length < 0 or length > 255 * HASH_LEN:
        raise ValueError("HKDF length must be 0..8160")
    out = bytearray()
    t = b""
    i = 1
    while len(out) < length:
        t = hmac_sha256(prk, t, info, bytes((i,)))
        out.extend(t)
        i += 1
    return bytes(out[:length])


def hkdf_sha256(ikm, salt, info, length):
    """OKM of `length` bytes from input keying material ikm, salt and info (RFC 5869)."""
    return expand(extract(salt, ikm), info, length)
