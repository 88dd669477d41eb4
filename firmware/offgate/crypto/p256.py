"""P-256 (secp256r1) constants and the helpers every verification path shares, in plain MicroPython.

The point arithmetic lives elsewhere: offgate.crypto.p256fast (viper field arithmetic, the gate's path
where the port has viper) and offgate.crypto.p256ref (big integers: the reference, the path for every
exceptional case and for ports without viper, and the table/signing helpers). p256ref imports
this module, never the other way round: its users import it where they first need it (function
level), so on the unix port (bytecode in the heap) its ~5 KB stay out of a gate that never needs
them.

Here: the curve constants, inv (extended Euclid: on the unix port ~6x faster than
pow(s, n-2, n); note pow(a, -1, m) is NOT an inverse on MicroPython, it returns 0), sqrt,
on_curve, y_from_x, to_affine, the scalar recodings (wnaf, comb_digits) and the comb tables'
row access (Comb, gcomb).
"""

from micropython import const  # under CPython: the stand-in in offgate/__init__.py

P = const(0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF)
N = const(0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551)
B = const(0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B)
GX = const(0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296)
GY = const(0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5)
_SQRT_EXP = const(0x3FFFFFFFC0000000400000000000000000000000400000000000000000000000)  # (P+1)//4


WQ = const(5)  # Q table: 8 Jacobian points per verify; w=5 minimises doublings+additions for Q


# ---------------------------------------------------------------- field helpers

def inv(a, m):
    """a^-1 mod m (m prime, a not a multiple of m), by the extended Euclidean algorithm."""
    lm = 1
    hm = 0
    low = a % m
    high = m
    if not low:
        raise ZeroDivisionError("inverse of 0")
    while low > 1:
        q = high // low
        lm, hm = hm - lm * q, lm
        low, high = high - low * q, low
    return lm % m


def sqrt(a):
    """A square root of a mod P, or None if a is not a square (P = 3 mod 4)."""
    a %= P
    y = pow(a, _SQRT_EXP, P)
    return y if y * y % P == a else None


def on_curve(x, y):
    """True if the affine point (x, y) with 0 <= x, y < P lies on the curve."""
    p = P
    return (y * y - x * (x * x - 3) - B) % p == 0


def y_from_x(x, odd):
    """The y with y^2 = x^3 - 3x + b and y's parity `odd`, or None if x is not an abscissa."""
    p = P
    y = sqrt((x * (x * x - 3) + B) % p)
    if y is None:
        return None
    if (y & 1) != odd:
        y = p - y  # y == 0 is impossible: P-256 has no point of order 2
    return y


def to_affine(X, Y, Z):
    """(x, y) of a Jacobian point, or None for infinity."""
    if not Z:
        return None
    p = P
    zi = inv(Z, p)
    zi2 = zi * zi % p
    return X * zi2 % p, Y * zi2 * zi % p



def wnaf(k, w):
    """Width-w NAF of 0 <= k < 2^256 as (bytearray(257), top). Entry i encodes the digit of
    2^i: 0 for none, else ((|d| >> 1) + 1) | (0x80 if d < 0), i.e. table index + 1 and sign.
    top is the highest nonzero position (-1 if k == 0)."""
    kb = k.to_bytes(34, "big")  # bit i lives in kb[33 - i//8]; kb[0] pads window reads
    out = bytearray(257)
    full = 1 << w
    half = full >> 1
    mask = full - 1
    i = 0
    carry = 0
    top = -1
    while i < 257:
        j = 33 - (i >> 3)
        s = i & 7
        if ((kb[j] >> s) & 1) == carry:  # even digit: 0 here, carry unchanged
            i += 1
            continue
        v = (((kb[j - 1] << 8) | kb[j]) >> s) & mask
        v += carry
        if v > half:
            out[i] = (((full - v) >> 1) + 1) | 0x80
            carry = 1
        else:
            out[i] = (v >> 1) + 1
            carry = 0
        top = i
        i += w
    return out, top


# ---------------------------------------------------------------- comb tables (fixed points)

class Comb:
    """Rows of a comb table (see p256_gtable / host_tools/offgate_host/device/tables.py) held in memory:
    one bytes-like of 16,320 bytes, or a tuple of equal chunks of whole rows (p256_gtable: 15 x
    17 rows, so no 16 KB contiguous block is needed). RAM on the unix port, flash when frozen.
    row(c) for c in 1..255 is the affine point sum over the set bits b of c of 2^(32*b) * P."""

    def __init__(self, data):
        chunks = data if isinstance(data, tuple) else (data,)
        if sum(len(c) for c in chunks) != COMB_BYTES or COMB_BYTES % len(chunks[0]) \
                or (len(chunks[0]) & 63):
            raise ValueError("comb table must be %d bytes" % COMB_BYTES)
        self.mvs = [memoryview(c) for c in chunks]
        self.per = len(chunks[0]) >> 6

    def row(self, c):
        c -= 1
        per = self.per
        mv = self.mvs[c // per]
        o = (c % per) << 6
        return int.from_bytes(mv[o:o + 32], "big"), int.from_bytes(mv[o + 32:o + 64], "big")

    def rowbuf(self, c):
        """(buffer, offset) of row c's 64 bytes x || y, without decoding (offgate.crypto.p256fast)."""
        c -= 1
        per = self.per
        return self.mvs[c // per], (c % per) << 6

    def chunks(self):
        return self.mvs


_ROW = bytearray(64)  # one row; verification is single-threaded
_ROWMV = memoryview(_ROW)


class FileComb:
    """Rows of a comb table read from an open file when needed (seek + readinto, 64 bytes)."""

    def __init__(self, f, off):
        self.f = f
        self.off = off

    def row(self, c):
        f = self.f
        f.seek(self.off + ((c - 1) << 6))
        if f.readinto(_ROW) != 64:
            raise OSError("short read from comb table")
        mv = _ROWMV
        return int.from_bytes(mv[0:32], "big"), int.from_bytes(mv[32:64], "big")

    def rowbuf(self, c):
        """(buffer, offset) of row c's 64 bytes, read into a shared buffer (offgate.crypto.p256fast)."""
        f = self.f
        f.seek(self.off + ((c - 1) << 6))
        if f.readinto(_ROW) != 64:
            raise OSError("short read from comb table")
        return _ROW, 0


COMB_ROWS = const(255)
COMB_BYTES = const(16320)  # 255 rows of x || y

# G's comb table: set_gcomb() installs a source (keytables.attach does, from the tables file, so
# the unix port keeps 16 KB out of its heap); otherwise the first use imports p256_gtable (flash
# when frozen on the ESP32, heap when loaded from a .mpy).
GCOMB = None


def set_gcomb(src):
    global GCOMB
    GCOMB = src


def gcomb():
    global GCOMB
    if GCOMB is None:
        try:
            from offgate.crypto._gen_p256_gtable import TABLE
        except MemoryError:  # needs one free 16 KB block (more when compiled from source)
            import gc
            gc.collect()
            from offgate.crypto._gen_p256_gtable import TABLE
        GCOMB = Comb(TABLE)
    return GCOMB


def comb_digits(k):
    """Comb indices of 0 <= k < 2^256 (8 teeth, spacing 32) as bytearray(32): entry j holds
    bit (32*b + j) of k at bit b, so k*P = sum_j 2^j * T[entry j] (T[0] = infinity)."""
    kb = k.to_bytes(32, "big")  # bit i lives in kb[31 - i//8]
    out = bytearray(32)
    for b in range(8):
        bit = 1 << b
        base = 31 - 4 * b
        for c in range(4):
            v = kb[base - c]
            j = c << 3
            while v:
                if v & 1:
                    out[j] |= bit
                v >>= 1
                j += 1
    return out


