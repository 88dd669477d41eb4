"""RFC 9285 base45: the QR-alphanumeric text form of the authorization code.

decode() is strict: only the 45 alphabet characters (no lowercase), a 3-character group must be
<= 65535, a trailing 2-character group <= 255, and a dangling single character is an error.
"""

from micropython import const  # under CPython: the stand-in in offgate/__init__.py

ALPHABET = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_BAD = const(0xFF)


def _make_table():
    # 256-entry lookup: byte -> digit value, 0xFF for anything outside the alphabet.
    t = bytearray(b"\xff" * 256)
    for i, c in enumerate(ALPHABET):
        t[c] = i
    return bytes(t)


_TABLE = _make_table()


def decode(text):
    """base45 text (str or bytes) -> bytes. Raises ValueError on any invalid input."""
    if isinstance(text, str):
        # Non-ASCII characters become bytes >= 0x80, which the table rejects.
        text = text.encode()
    t = _TABLE
    n = len(text)
    rem = n % 3
    if rem == 1:
        raise ValueError("base45: dangling character")
    out = bytearray((n // 3) * 2 + (1 if rem else 0))
    o = 0
    i = 0
    full = n - rem
    while i < full:
        a = t[text[i]]
        b = t[text[i + 1]]
        c = t[text[i + 2]]
        if a == _BAD or b == _BAD or c == _BAD:
            raise ValueError("base45: invalid character")
        v = a + b * 45 + c * 2025
        if v > 0xFFFF:
            raise ValueError("base45: group value out of range")
        out[o] = v >> 8
        out[o + 1] = v & 0xFF
        o += 2
        i += 3
    if rem:
        a = t[text[i]]
        b = t[text[i + 1]]
        if a == _BAD or b == _BAD:
            raise ValueError("base45: invalid character")
        v = a + b * 45
        if v > 0xFF:
            raise ValueError("base45: group value out of range")
        out[o] = v
    return bytes(out)


def encode(data):
    """bytes -> base45 text (str)."""
    a = ALPHABET
    n = len(data)
    out = bytearray(((n + 1) // 2) * 3 - (n & 1))
    o = 0
    i = 0
    while i + 1 < n:
        v = (data[i] << 8) | data[i + 1]
        out[o] = a[v % 45]
        v //= 45
        out[o + 1] = a[v % 45]
        out[o + 2] = a[v // 45]
        o += 3
        i += 2
    if i < n:
        v = data[i]
        out[o] = a[v % 45]
        out[o + 1] = a[v // 45]
    return bytes(out).decode()
