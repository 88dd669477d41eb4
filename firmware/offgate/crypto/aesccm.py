"""AES-CCM (RFC 3610, NIST SP 800-38C) from the port's AES block cipher (cryptolib).

cryptolib offers ECB and CBC only (no CTR in this build), which is all CCM needs: the CBC-MAC is
one CBC encryption with a zero IV over B0 || encoded AAD || message (the last block is the MAC),
and the CTR keystream is one ECB encryption of the counter blocks A1..An. Both run in C; Python
only lays out blocks and XORs with big-int arithmetic (one operation for the whole message).

Parameters: key 16 or 32 bytes (24 where the port's AES has it), nonce 7..13 bytes (L = 15 - len),
tag 4, 6, ..., 16 bytes. encrypt() returns ciphertext || tag; decrypt() raises ValueError on
any mismatch and returns nothing of the plaintext then.
"""
import cryptolib

from offgate.crypto.hmac256 import equal

try:
    from offgate.crypto.xorbuf import xor_into  # viper: none under CPython or without a native emitter
except Exception:
    xor_into = None

_ECB = 1
_CBC = 2


class AuthError(ValueError):
    """The tag does not match: tampered data, wrong key, nonce or AAD."""


def _check(key, nonce, tag_len, msg_len):
    if len(key) not in (16, 24, 32):
        raise ValueError("AES key must be 16, 24 or 32 bytes")
    n = len(nonce)
    if n < 7 or n > 13:
        raise ValueError("CCM nonce must be 7..13 bytes")
    if tag_len < 4 or tag_len > 16 or tag_len & 1:
        raise ValueError("CCM tag must be 4, 6, ..., 16 bytes")
    L = 15 - n
    if L < 8 and msg_len >= 1 << (8 * L):
        raise ValueError("message too long for this nonce size")
    return L


def _pad16(n):
    return bytes(-n % 16)


def _span(n):
    """Bytes per C call for an n-byte message: whole blocks, at most _CHUNK."""
    n = (n + 15) & ~15
    return n if 0 < n < _CHUNK else (_CHUNK if n else 16)


_CHUNK = 256  # bytes per C call: bounds the temporaries whatever the message size


def _mac(key, nonce, aad, msg, tag_len, L):
    """CBC-MAC of B0 || encoded AAD || msg, chunk by chunk (the CBC object keeps its chaining),
    each chunk copied into one buffer and encrypted in place: no new block per chunk (a sync
    session's heap is fragmented, docs/performance.md)."""
    flags = (64 if aad else 0) | (((tag_len - 2) // 2) << 3) | (L - 1)
    n = len(msg)
    b0 = bytes((flags,)) + bytes(nonce) + n.to_bytes(L, "big")
    c = cryptolib.aes(key, _CBC, bytes(16))
    last = c.encrypt(b0)
    if aad:
        a = len(aad)
        if a < 0xFF00:
            head = a.to_bytes(2, "big")
        elif a < 1 << 32:
            head = b"\xff\xfe" + a.to_bytes(4, "big")
        else:
            head = b"\xff\xff" + a.to_bytes(8, "big")
        last = c.encrypt(head + bytes(aad) + _pad16(len(head) + a))[-16:]
    if n:
        m = _span(n)
        buf = bytearray(m)
        bv = memoryview(buf)
        src = memoryview(msg)
        o = 0
        while o < n:
            k = n - o if n - o < m else m
            bv[:k] = src[o:o + k]
            kk = (k + 15) & ~15  # only the last chunk can be short: zero-padded
            for i in range(k, kk):
                buf[i] = 0
            c.encrypt(bv[:kk], bv[:kk])
            o += k
        last = bytes(bv[kk - 16:kk])
    return last[:tag_len]


def _ctr(key, nonce, L, src, dst):
    """dst[i] = src[i] ^ S_(1 + i // 16) (CCM's CTR mode with counters from 1); returns S0."""
    ecb = cryptolib.aes(key, _ECB)
    pre = bytes((L - 1,)) + bytes(nonce)
    s0 = ecb.encrypt(pre + bytes(L))
    n = len(src)
    m = _span(n)
    blocks = bytearray(m)
    bv = memoryview(blocks)
    ks = bytearray(m)  # the keystream of a chunk, overwritten by the next
    for b in range(0, m, 16):  # flags and nonce once; only the counter bytes change below
        blocks[b:b + 16 - L] = pre
    ctr = 1
    o = 0
    while o < n:
        k = n - o if n - o < m else m
        nb = (k + 15) // 16
        for i in range(nb):
            b = 16 * i + 16
            if ctr < 0x10000:  # the last two bytes (a message under 1 MiB); L >= 2 always
                blocks[b - 1] = ctr & 0xFF
                blocks[b - 2] = ctr >> 8
            else:
                blocks[b - L:b] = ctr.to_bytes(L, "big")
            ctr += 1
        ecb.encrypt(bv[:16 * nb], ks)  # in place of the last keystream: no new block per chunk
        if xor_into is not None:
            xor_into(memoryview(dst)[o:o + k], memoryview(src)[o:o + k], ks, k)
        else:
            dst[o:o + k] = _xor(memoryview(src)[o:o + k], ks)
        o += k
    return s0


def _xor(a, b):
    n = len(a)
    if not n:
        return b""
    return (int.from_bytes(a, "big") ^ int.from_bytes(memoryview(b)[:n], "big")).to_bytes(n, "big")


def encrypt(key, nonce, msg, aad=b"", tag_len=16, out=None):
    """ciphertext || tag; written into `out` (a writable buffer of len(msg) + tag_len, e.g. a
    memoryview into a larger message) when given, so a large message is not copied again."""
    n = len(msg)
    L = _check(key, nonce, tag_len, n)
    t = _mac(key, nonce, aad, msg, tag_len, L)
    if out is None:
        out = bytearray(n + tag_len)
        ret = out
    else:
        ret = None
    s0 = _ctr(key, nonce, L, msg, out)
    out[n:n + tag_len] = _xor(t, s0)
    return bytes(ret) if ret is not None else None


def decrypt(key, nonce, data, aad=b"", tag_len=16, copy=True):
    """The plaintext of ciphertext || tag (bytes; copy=False: the bytearray it was decrypted
    into, no second buffer of its size), or AuthError."""
    if len(data) < tag_len:
        raise AuthError("shorter than the tag")
    clen = len(data) - tag_len
    L = _check(key, nonce, tag_len, clen)
    msg = bytearray(clen)
    s0 = _ctr(key, nonce, L, memoryview(data)[:clen], msg)
    t = _mac(key, nonce, aad, msg, tag_len, L)
    if not equal(_xor(t, s0), data[clen:]):
        raise AuthError("CCM tag mismatch")
    return bytes(msg) if copy else msg
