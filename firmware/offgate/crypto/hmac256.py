"""HMAC-SHA-256 (RFC 2104 / FIPS 198-1) on hashlib.sha256, for ports whose hashlib has no hmac.

MicroPython's sha256 objects cannot be copied, so the padded keys are rehashed per message; that
is two extra compression calls per MAC, irrelevant at the gate's rates.
"""
import hashlib

_BLOCK = 64
_IPAD = int.from_bytes(b"\x36" * 64, "big")
_OPAD = int.from_bytes(b"\x5c" * 64, "big")


def _pads(key):
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()  # RFC 2104: long keys are hashed first
    # the key, zero-padded to the block, XORed with 0x36.. / 0x5C.. as one integer each (a byte
    # loop here was ~2/3 of an HMAC's instructions on MicroPython)
    k = int.from_bytes(bytes(key) + bytes(_BLOCK - len(key)), "big")
    return (k ^ _IPAD).to_bytes(_BLOCK, "big"), (k ^ _OPAD).to_bytes(_BLOCK, "big")


def hmac_sha256(key, msg, *more):
    """HMAC-SHA-256 of msg (and any further parts, concatenated) under key: 32 bytes."""
    ipad, opad = _pads(key)
    h = hashlib.sha256(ipad)
    h.update(msg)
    for m in more:
        h.update(m)
    o = hashlib.sha256(opad)
    o.update(h.digest())
    return o.digest()


def equal(a, b):
    """Constant-time comparison for MACs and tags (no early exit on the first difference)."""
    if len(a) != len(b):
        return False
    d = 0
    for i in range(len(a)):
        d |= a[i] ^ b[i]
    return d == 0
