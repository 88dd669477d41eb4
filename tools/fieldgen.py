"""Generates firmware/offgate/crypto/_gen_p256field.py: P-256 field arithmetic as straight-line viper code.

Why generated: MicroPython's viper emitter turns `a0*b5 + a1*b4 + ...` on local variables into
a few machine instructions per term, but loops over arrays into ~60 (docs/performance.md). So
the multiply is written out limb by limb, and a generator is the only sane way to write (and to
check) 400 products and a Montgomery reduction by hand.

Representation (see p256field's docstring): a field element is 20 limbs of 13 bits
(little-endian, 260 bits) stored as uint16 in an array('H') "workspace", in Montgomery form x*R mod p with
R = 2^260. Every value a VM op stores is "normalised": limbs 0..18 in [0, 2^13), limb 19 >= 0,
value < 2^257 (< 2p + 2^254, not necessarily < p).

32-bit safety: the ESP32's viper ints are 32-bit, the host's 64-bit. The generator tracks an
interval for every intermediate it emits (interval arithmetic over the input bounds below) and
refuses to generate code if any could leave [-2^31, 2^31): then the ESP32 and the host compute
the same bits. Input bounds assumed for MUL/SQR: limbs 0..18 in [0, 2^13), limb 19 in [0, 2^11)
(value < 2^258); for ADD/SUB/MULK: limb 19 in [0, 2^10) (value < 2^257). Why the outputs meet
them (value bounds, not limb bounds) is argued in p256field's docstring and tested.

    python tools/fieldgen.py        rewrites firmware/offgate/crypto/_gen_p256field.py
"""
import sys
from pathlib import Path

P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
L = 20            # limbs
W = 13            # bits per limb
MASK = (1 << W) - 1
R = 1 << (L * W)  # Montgomery radix 2^260
SLOT_BYTES = 2 * L  # limbs are stored as uint16 (13 bits used; see module_source)
LIMIT = 1 << 31
MODULE = Path(__file__).resolve().parents[1] / "firmware" / "offgate" / "crypto" / "_gen_p256field.py"

# opcodes (p256field.run); p256fast builds its programs from these
OPS = {"MUL": 0, "SQR": 1, "ADD": 2, "SUB": 3, "MULK": 4, "COPY": 5, "ZCHK": 6}
MULK_MAX = 8


# ---------------------------------------------------------------- workspace layout (slots)
# (offgate.crypto.p256fast uses these through the generated constants)
X = 0
Y = 1
Z = 2
T1, T2, T3, T4, T5, T6, T7, T8 = 3, 4, 5, 6, 7, 8, 9, 10
ZERO = 11
ONE = 12           # R mod p: 1 in Montgomery form
R2 = 13            # R^2 mod p: MUL by it converts a plain value into Montgomery form
OX = 14            # affine operand (x, y): comb rows, the key
OY = 15
RR = 16            # r (or r + n) in Montgomery form, for the final x-coordinate check
DBL2 = 17          # 2Q while the odd-multiples table is built (5 slots: X Y Z ZZ ZZZ)
QTAB = 22          # Q, 3Q, ..., 15Q as cached Jacobian points (8 x 5 slots); or two tables
                   # of 4 (Q.. 7Q at QTAB, Q'.. 7Q' at QTAB2) for a split scalar, Q' = 2^128 Q
QSTEP = 5
QTAB2 = QTAB + 4 * QSTEP
WS_SLOTS = QTAB + 8 * QSTEP  # 62 slots = 2,480 bytes
REL = 128          # program slot numbers >= REL are relative to run()'s `ob`

MUL, SQR, ADD, SUB, MULK, COPY, ZCHK = (OPS[k] for k in ("MUL", "SQR", "ADD", "SUB", "MULK", "COPY", "ZCHK"))


def _prog(*ops):
    out = bytearray()
    for op in ops:
        out.extend(op)
    return bytes(out)


# ---------------------------------------------------------------- point-operation programs

def _dbl():
    """acc = 2*acc (dbl-2001-b, a = -3): 3M + 5S."""
    return (
        (SQR, T1, Z, 0),        # delta = Z^2
        (SQR, T2, Y, 0),        # gamma = Y^2
        (MUL, T3, X, T2),       # beta = X*gamma
        (SUB, T4, X, T1),
        (ADD, T5, X, T1),
        (MUL, T4, T4, T5),
        (MULK, T4, T4, 3),      # alpha = 3(X - delta)(X + delta)
        (SQR, T5, T4, 0),
        (MULK, T6, T3, 8),
        (SUB, T6, T5, T6),      # X3 = alpha^2 - 8 beta
        (ADD, T5, Y, Z),
        (SQR, T5, T5, 0),
        (SUB, T5, T5, T2),
        (SUB, Z, T5, T1),       # Z3 = (Y + Z)^2 - gamma - delta
        (MULK, T3, T3, 4),
        (SUB, T3, T3, T6),
        (MUL, T3, T4, T3),
        (SQR, T2, T2, 0),
        (MULK, T2, T2, 8),
        (SUB, Y, T3, T2),       # Y3 = alpha(4 beta - X3) - 8 gamma^2
        (COPY, X, T6, 0),
    )


def _r_from(s2, s1, neg):
    """r = S2 - S1, or (adding the negated point) -S2 - S1."""
    if neg:
        return ((ADD, s2, s2, s1), (SUB, s2, ZERO, s2))
    return ((SUB, s2, s2, s1),)


def _madd(o, neg):
    """acc += affine (x, y) at slots o, o + 1 (negated if neg): 8M + 3S. Stops with code 1,
    before writing acc, if the x coordinates match (P + P or P + (-P))."""
    return (
        (SQR, T1, Z, 0),        # Z1Z1
        (MUL, T2, o, T1),       # U2
        (MUL, T1, T1, Z),
        (MUL, T1, o + 1, T1),   # S2
        (SUB, T2, T2, X),       # H
    ) + _r_from(T1, Y, neg) + (
        (ZCHK, 0, T2, 1),
        (SQR, T3, T2, 0),       # HH
        (MUL, T4, T2, T3),      # HHH
        (MUL, T3, X, T3),       # V
        (SQR, T5, T1, 0),
        (SUB, T5, T5, T4),
        (MULK, T6, T3, 2),
        (SUB, T5, T5, T6),      # X3 = r^2 - HHH - 2V
        (SUB, T3, T3, T5),
        (MUL, T3, T1, T3),
        (MUL, T4, Y, T4),
        (SUB, Y, T3, T4),       # Y3 = r(V - X3) - Y1 HHH
        (MUL, Z, Z, T2),        # Z3 = Z1 H
        (COPY, X, T5, 0),
    )


def _jadd(o, neg):
    """acc += Jacobian point at slots o..o+4 (X, Y, Z, Z^2, Z^3; negated if neg): 12M + 2S.
    Stops with code 1, before writing acc, on P + P or P + (-P)."""
    return (
        (MUL, T1, X, o + 3),    # U1 = X1 Z2^2
        (SQR, T2, Z, 0),
        (MUL, T3, o, T2),       # U2 = X2 Z1^2
        (MUL, T2, T2, Z),
        (MUL, T2, o + 1, T2),   # S2 = Y2 Z1^3
        (MUL, T4, Y, o + 4),    # S1 = Y1 Z2^3
        (SUB, T3, T3, T1),      # H
    ) + _r_from(T2, T4, neg) + (
        (ZCHK, 0, T3, 1),
        (SQR, T5, T3, 0),       # HH
        (MUL, T6, T3, T5),      # HHH
        (MUL, T5, T1, T5),      # V = U1 HH
        (SQR, T7, T2, 0),
        (SUB, T7, T7, T6),
        (MULK, T8, T5, 2),
        (SUB, T7, T7, T8),      # X3
        (SUB, T5, T5, T7),
        (MUL, T5, T2, T5),
        (MUL, T6, T4, T6),
        (SUB, Y, T5, T6),       # Y3
        (MUL, Z, Z, o + 2),
        (MUL, Z, Z, T3),        # Z3 = Z1 Z2 H
        (COPY, X, T7, 0),
    )


def _set(o, neg, z):
    """acc = the point at o (affine when z is ONE, else Jacobian with Z at z)."""
    return ((COPY, X, o, 0), (SUB, Y, ZERO, o + 1) if neg else (COPY, Y, o + 1, 0), (COPY, Z, z, 0))


_TO_MONT_O = ((MUL, OX, OX, R2), (MUL, OY, OY, R2))

DBL = _prog(*_dbl())
MADD_RAW = _prog(*(_TO_MONT_O + _madd(OX, False)))        # comb row (plain) + add
SET_RAW = _prog(*(_TO_MONT_O + _set(OX, False, ONE)))
JADD = (_prog(*_jadd(REL, False)), _prog(*_jadd(REL, True)))  # Q table entry at ob
SETJ = (_prog(*_set(REL, False, REL + 2)), _prog(*_set(REL, True, REL + 2)))
# Q table: entry 0 = Q (affine, Z = 1); entry k = entry k-1 + 2Q, with Z^2, Z^3 cached
Q_FIRST = _prog(*(((MUL, REL, REL, R2), (MUL, REL + 1, REL + 1, R2), (COPY, REL + 2, ONE, 0),
                   (COPY, REL + 3, ONE, 0), (COPY, REL + 4, ONE, 0),
                   (COPY, X, REL, 0), (COPY, Y, REL + 1, 0), (COPY, Z, ONE, 0))
                  + _dbl()
                  + ((COPY, DBL2, X, 0), (COPY, DBL2 + 1, Y, 0), (COPY, DBL2 + 2, Z, 0),
                     (SQR, DBL2 + 3, Z, 0), (MUL, DBL2 + 4, DBL2 + 3, Z))))
Q_NEXT = _prog(*(((COPY, X, REL, 0), (COPY, Y, REL + 1, 0), (COPY, Z, REL + 2, 0))
                 + _jadd(DBL2, False)
                 + ((COPY, REL + QSTEP, X, 0), (COPY, REL + QSTEP + 1, Y, 0),
                    (COPY, REL + QSTEP + 2, Z, 0),
                    (SQR, REL + QSTEP + 3, Z, 0), (MUL, REL + QSTEP + 4, REL + QSTEP + 3, Z))))
# x(acc) == r (mod n) as X == r Z^2 (mod p): code 1 if equal
XCHECK = _prog((MUL, RR, RR, R2), (SQR, T1, Z, 0), (MUL, T2, RR, T1), (SUB, T3, X, T2), (ZCHK, 0, T3, 1))




SLOTS = ("X", "Y", "Z", "T1", "ZERO", "ONE", "R2", "OX", "OY", "RR", "DBL2", "QTAB", "QTAB2", "QSTEP", "WS_SLOTS", "REL")
PROGRAMS = (
    ("DBL", DBL, "acc = 2 acc"),
    ("MADD_RAW", MADD_RAW, "acc += affine (OX, OY) given as plain values (a comb row); 1 if x matched"),
    ("SET_RAW", SET_RAW, "acc = affine (OX, OY) given as plain values"),
    ("JADD_POS", JADD[0], "acc += Q table entry at ob; 1 if x matched"),
    ("JADD_NEG", JADD[1], "acc -= Q table entry at ob; 1 if x matched"),
    ("SETJ_POS", SETJ[0], "acc = Q table entry at ob"),
    ("SETJ_NEG", SETJ[1], "acc = -(Q table entry at ob)"),
    ("Q_FIRST", Q_FIRST, "table entry 0 at ob from plain (x, y) at ob, ob+1; 2Q into DBL2"),
    ("Q_NEXT", Q_NEXT, "entry at ob + QSTEP = entry at ob + 2Q; 1 if x matched"),
    ("XCHECK", XCHECK, "1 if x(acc) == RR (plain r) mod p, as X == r Z^2"),
)


def limbs(x, n=L):
    out = []
    for _ in range(n):
        out.append(x & MASK)
        x >>= W
    assert x == 0, "does not fit"
    return out


class Bounds:
    """Interval of every local the generated code assigns; check() enforces the 32-bit rule."""

    def __init__(self):
        self.iv = {}

    def set(self, name, lo, hi):
        if lo < -LIMIT or hi >= LIMIT:
            raise AssertionError("%s may reach [%d, %d]: not 32-bit safe" % (name, lo, hi))
        self.iv[name] = (lo, hi)

    def get(self, name):
        return self.iv[name]

    @staticmethod
    def mul(a, b):
        c = (a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1])
        return min(c), max(c)

    @staticmethod
    def add(a, b):
        return a[0] + b[0], a[1] + b[1]

    @staticmethod
    def shr(a, s):
        return a[0] >> s, a[1] >> s

    @staticmethod
    def shl(a, s):
        return a[0] << s, a[1] << s

    def check_sum(self, name, terms):
        """name = sum(terms): every partial sum must stay 32-bit safe too (the emitter adds
        left to right)."""
        lo = hi = 0
        for t in terms:
            lo, hi = lo + t[0], hi + t[1]
            if lo < -LIMIT or hi >= LIMIT:
                raise AssertionError("partial sum of %s may reach [%d, %d]" % (name, lo, hi))
        self.set(name, lo, hi)


def _input_bounds(bd, prefix, top_bits):
    for i in range(L):
        bd.set("%s%d" % (prefix, i), 0, MASK if i < L - 1 else (1 << top_bits) - 1)


def _redc_and_store(o, bd, ind):
    """Montgomery reduction of columns c0..c38 (c39 = 0), result normalised into r[0..19].
    p = 2^256 - 2^224 + 2^192 + 2^96 - 1 is -1 mod 2^13, so each round's multiplier m is just the
    low 13 bits of the current column, and m*p is four shifted adds (no multiplications):
    the -m cancels the column's low bits (what remains carries on), +m*2^96, +m*2^192,
    -m*2^224, +m*2^256 land at limb offsets 7 (bit 5), 14 (bit 10), 17 (bit 3), 19 (bit 9)."""
    o.append(ind + "c39 = 0")
    bd.set("c39", 0, 0)
    for i in range(L):
        ci = "c%d" % i
        o.append(ind + "m = %s & %d" % (ci, MASK))
        mb = (0, MASK)
        o.append(ind + "c%d += %s >> %d" % (i + 1, ci, W))
        bd.set("c%d" % (i + 1), *bd.add(bd.get("c%d" % (i + 1)), bd.shr(bd.get(ci), W)))
        for off, sh, sign in ((7, 5, "+"), (14, 10, "+"), (17, 3, "-"), (19, 9, "+")):
            t = "c%d" % (i + off)
            o.append(ind + "%s %s= m << %d" % (t, sign, sh))
            s = bd.shl(mb, sh)
            if sign == "-":
                s = (-s[1], -s[0])
            bd.set(t, *bd.add(bd.get(t), s))
    for k in range(L, 2 * L - 1):
        ck = "c%d" % k
        o.append(ind + "c%d += %s >> %d" % (k + 1, ck, W))
        bd.set("c%d" % (k + 1), *bd.add(bd.get("c%d" % (k + 1)), bd.shr(bd.get(ck), W)))
        o.append(ind + "r[%d] = %s & %d" % (k - L, ck, MASK))
    o.append(ind + "r[%d] = c%d" % (L - 1, 2 * L - 1))


def gen_mul(ind):
    bd = Bounds()
    o = []
    _input_bounds(bd, "a", 11)
    _input_bounds(bd, "b", 11)
    for i in range(L):
        o.append(ind + "a%d = a[%d]" % (i, i))
    for i in range(L):
        o.append(ind + "b%d = b[%d]" % (i, i))
    for k in range(2 * L - 1):
        terms, tb = [], []
        for i in range(L):
            j = k - i
            if 0 <= j < L:
                terms.append("a%d * b%d" % (i, j))
                tb.append(bd.mul(bd.get("a%d" % i), bd.get("b%d" % j)))
        o.append(ind + "c%d = %s" % (k, " + ".join(terms)))
        bd.check_sum("c%d" % k, tb)
    _redc_and_store(o, bd, ind)
    return o


def gen_sqr(ind):
    bd = Bounds()
    o = []
    _input_bounds(bd, "a", 11)
    for i in range(L):
        o.append(ind + "a%d = a[%d]" % (i, i))
    for i in range(1, L):  # doubled limbs for the cross products
        o.append(ind + "e%d = a%d << 1" % (i, i))
        bd.set("e%d" % i, *bd.shl(bd.get("a%d" % i), 1))
    for k in range(2 * L - 1):
        terms, tb = [], []
        for i in range(L):
            j = k - i
            if i < j < L:
                terms.append("a%d * e%d" % (i, j))
                tb.append(bd.mul(bd.get("a%d" % i), bd.get("e%d" % j)))
        if k % 2 == 0:
            h = k // 2
            terms.append("a%d * a%d" % (h, h))
            tb.append(bd.mul(bd.get("a%d" % h), bd.get("a%d" % h)))
        o.append(ind + "c%d = %s" % (k, " + ".join(terms)))
        bd.check_sum("c%d" % k, tb)
    _redc_and_store(o, bd, ind)
    return o


def _normalise_fold(o, bd, ind):
    """c0..c19 (any signs, value v with 0 <= v < 2^260) -> r normalised, value < 2^257 and
    congruent mod p: carry once, split q = v >> 256 off the top limb and add
    q * (2^256 mod p) = q * (2^224 - 2^192 - 2^96 + 1) back in, carry again."""
    for k in range(L - 1):
        ck = "c%d" % k
        o.append(ind + "c%d += %s >> %d" % (k + 1, ck, W))
        bd.set("c%d" % (k + 1), *bd.add(bd.get("c%d" % (k + 1)), bd.shr(bd.get(ck), W)))
        o.append(ind + "%s &= %d" % (ck, MASK))
        bd.set(ck, 0, MASK)
    o.append(ind + "m = c19 >> 9")  # bits 256.. of the value (limb 19 starts at bit 247)
    lo, hi = bd.shr(bd.get("c19"), 9)
    if lo < 0:
        raise AssertionError("fold input may be negative")
    bd.set("m", lo, hi)
    o.append(ind + "c19 &= 511")
    bd.set("c19", 0, 511)
    mb = bd.get("m")
    for t, sh, sign in (("c0", 0, "+"), ("c7", 5, "-"), ("c14", 10, "-"), ("c17", 3, "+")):
        o.append(ind + "%s %s= m << %d" % (t, sign, sh) if sh else ind + "%s %s= m" % (t, sign))
        s = bd.shl(mb, sh)
        if sign == "-":
            s = (-s[1], -s[0])
        bd.set(t, *bd.add(bd.get(t), s))
    for k in range(L - 1):
        ck = "c%d" % k
        o.append(ind + "c%d += %s >> %d" % (k + 1, ck, W))
        bd.set("c%d" % (k + 1), *bd.add(bd.get("c%d" % (k + 1)), bd.shr(bd.get(ck), W)))
        o.append(ind + "r[%d] = %s & %d" % (k, ck, MASK))
    o.append(ind + "r[19] = c19")


def gen_add(ind):
    bd = Bounds()
    _input_bounds(bd, "a", 10)
    _input_bounds(bd, "b", 10)
    o = []
    for i in range(L):
        o.append(ind + "c%d = a[%d] + b[%d]" % (i, i, i))
        bd.set("c%d" % i, *bd.add(bd.get("a%d" % i), bd.get("b%d" % i)))
    _normalise_fold(o, bd, ind)
    return o


FOURP = limbs(4 * P)


def gen_sub(ind):
    """a - b + 4p: positive for any normalised b (< 2^257 < 4p), below 2^259."""
    bd = Bounds()
    _input_bounds(bd, "a", 10)
    _input_bounds(bd, "b", 10)
    o = []
    for i in range(L):
        o.append(ind + "c%d = a[%d] - b[%d] + %d" % (i, i, i, FOURP[i]))
        a, b = bd.get("a%d" % i), bd.get("b%d" % i)
        bd.set("c%d" % i, a[0] - b[1] + FOURP[i], a[1] - b[0] + FOURP[i])
    _normalise_fold(o, bd, ind)
    return o


def gen_mulk(ind):
    bd = Bounds()
    _input_bounds(bd, "a", 10)
    o = []
    for i in range(L):
        o.append(ind + "c%d = a[%d] * k" % (i, i))
        bd.set("c%d" % i, *bd.mul(bd.get("a%d" % i), (0, MULK_MAX)))
    _normalise_fold(o, bd, ind)
    return o


def gen_zchk(ind):
    """Return `code` if a == 0 (mod p). A normalised value is < 2^257 < 3p, so it is one of
    0, p, 2p, each with a single limb pattern."""
    o = []
    for i in range(L):
        o.append(ind + "a%d = a[%d]" % (i, i))
    o.append(ind + "z = " + " | ".join("a%d" % i for i in range(L)))
    o.append(ind + "if z == 0:")
    o.append(ind + "    return code")
    for mult in (P, 2 * P):
        lm = limbs(mult)
        o.append(ind + "z = " + " | ".join("(a%d ^ %d)" % (i, lm[i]) for i in range(L)))
        o.append(ind + "if z == 0:")
        o.append(ind + "    return code")
    return o


def gen_unpack():
    """unpack(ws, slot, src, off): the 32-byte big-endian integer at src[off:off+32] into slot's
    limbs (plain, not Montgomery form: the caller multiplies by R^2)."""
    o = ["@micropython.viper",
         "def unpack(ws: ptr16, slot: int, src: ptr8, off: int):",
         "    r = ptr16(int(ws) + slot * %d)" % SLOT_BYTES,
         "    s = ptr8(int(src) + off)"]
    for k in range(L):
        lo = W * k
        hi = min(W * k + W, 256) - 1
        if lo > 255:
            o.append("    r[%d] = 0" % k)
            continue
        parts = []
        for byte in range(lo // 8, hi // 8 + 1):
            parts.append("(s[%d] << %d)" % (31 - byte, 8 * byte - 8 * (lo // 8)))
        o.append("    r[%d] = ((%s) >> %d) & %d" % (k, " | ".join(parts), lo % 8, MASK))
    return o


def gen_pack():
    """pack(ws, slot, dst): slot's limbs (normalised) as a 33-byte big-endian integer."""
    o = ["@micropython.viper",
         "def pack(ws: ptr16, slot: int, dst: ptr8):",
         "    a = ptr16(int(ws) + slot * %d)" % SLOT_BYTES,
         "    acc = 0",
         "    bits = 0",
         "    j = 32",
         "    i = 0",
         "    while i < %d:" % L,
         "        acc |= a[i] << bits",
         "        bits += %d" % W,
         "        while bits >= 8:",
         "            dst[j] = acc & 255",
         "            acc >>= 8",
         "            bits -= 8",
         "            j -= 1",
         "        i += 1",
         "    while j >= 0:",
         "        dst[j] = acc & 255",
         "        acc >>= 8",
         "        j -= 1"]
    return o


def gen_run():
    ind = " " * 12
    o = ["@micropython.viper",
         "def run(ws: ptr16, prog: ptr8, n: int, ob: int) -> int:",
         '    """Execute the field-op program prog[0:n] (4 bytes per op: opcode, d, a, b) on ws.',
         "    Slot numbers >= 128 are relative to slot ob. Returns 0, or the code of the first",
         '    ZCHK that found a zero (the program stops there)."""',
         "    base = int(ws)",
         "    obu = ob - 128",
         "    pc = 0",
         "    while pc < n:",
         "        op = int(prog[pc])",
         "        d = int(prog[pc + 1])",
         "        ia = int(prog[pc + 2])",
         "        ib = int(prog[pc + 3])",
         "        pc += 4",
         "        if d >= 128:",
         "            d += obu",
         "        if ia >= 128:",
         "            ia += obu",
         "        a = ptr16(base + ia * %d)" % SLOT_BYTES,
         "        r = ptr16(base + d * %d)" % SLOT_BYTES]
    first = True

    def branch(opname, body, needs_b=False):
        nonlocal first
        o.append("        %s op == %d:  # %s" % ("if" if first else "elif", OPS[opname], opname))
        first = False
        if needs_b:
            o.append(ind + "if ib >= 128:")
            o.append(ind + "    ib += obu")
            o.append(ind + "b = ptr16(base + ib * %d)" % SLOT_BYTES)
        o.extend(body)

    branch("MUL", gen_mul(ind), True)
    branch("SQR", gen_sqr(ind))
    branch("ADD", gen_add(ind), True)
    branch("SUB", gen_sub(ind), True)
    branch("MULK", [ind + "k = ib"] + gen_mulk(ind))
    branch("COPY", [ind + "r[%d] = a[%d]" % (i, i) for i in range(L)])
    branch("ZCHK", [ind + "code = ib"] + gen_zchk(ind))
    o.append("    return 0")
    return o


def module_source():
    head = [
        '"""P-256 field arithmetic in viper: GENERATED by tools/fieldgen.py (`python tools/fieldgen.py`);',
        "do not edit. offgate.crypto.p256fast is the user.",
        "",
        "A field element is a slot of 20 limbs of 13 bits (little-endian), stored as uint16 in an",
        "array('H') workspace, in Montgomery form x*R mod p, R = 2^260. Stored values are",
        "normalised: limbs 0..18 in [0, 2^13), limb 19 < 2^10 (value < 2^257, not fully reduced),",
        "so every stored limb fits 16 bits; arithmetic on loaded limbs is on 32-bit-safe ints.",
        "",
        "Why every op's output stays below 2^257 (the value bound the generator's 32-bit limb",
        "bounds rely on; tests check it on random and extreme inputs):",
        "* MUL/SQR (Montgomery REDC): out = (a*b + m*p) / R with m < R, so out < a*b/R + p; with",
        "  a, b < 2^257 that is < 2^254 + p < 2^257 (inputs up to 2^258 still give < 2^257).",
        "* ADD/SUB/MULK: the value v (a + b, a - b + 4p, or k*a, k <= 8) is in [0, 2^260);",
        "  v = lo + q*2^256 with lo < 2^256 becomes lo + q*(2^224 - 2^192 - 2^96 + 1), which is",
        "  congruent mod p, non-negative, and < 2^256 + 2^228.",
        "Every intermediate was bounded by interval arithmetic when this file was generated: all",
        "stay in [-2^31, 2^31), so a 32-bit ESP32 and the 64-bit host compute the same bits.",
        '"""',
        "import micropython",
        "from micropython import const",
        "",
        "LIMBS = const(%d)" % L,
        "LIMB_BITS = const(%d)" % W,
        "SLOT_BYTES = const(%d)" % SLOT_BYTES,
    ]
    for k, v in OPS.items():
        head.append("%s = const(%d)" % (k, v))
    head.append("R2_LIMBS = %r  # R^2 mod p, plain limbs (MUL by it converts into Montgomery form)"
                % (tuple(limbs(R * R % P)),))
    head.append("ONE_LIMBS = %r  # R mod p: 1 in Montgomery form" % (tuple(limbs(R % P)),))
    head.append("RINV = const(0x%064X)  # R^-1 mod p: out of Montgomery form" % pow(R, P - 2, P))
    head.append("")
    head.append("# workspace layout (slots of %d limbs) and point-operation programs (fieldgen.py has them" % L)
    head.append("# written out op by op); program slot numbers >= REL are relative to run()'s `ob`")
    for name in SLOTS:
        head.append("%s = const(%d)" % (name, globals()[name]))
    for name, prog, what in PROGRAMS:
        head.append("%s = %r  # %s" % (name, prog, what))
    body = gen_run() + [""] + gen_unpack() + [""] + gen_pack()
    return "\n".join(head) + "\n\n\n" + "\n".join(body) + "\n"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv:
        print("usage: python tools/fieldgen.py", file=sys.stderr)
        return 2
    MODULE.write_text(module_source())
    print("wrote", MODULE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
