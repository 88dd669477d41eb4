"""ECDSA P-256 verification on viper field arithmetic (offgate.crypto._gen_p256field): the gate's fast path.

Same algorithms as offgate.crypto.p256 (read its docstring first): Jacobian coordinates, a = -3
doubling, u1*G from G's comb table, u2*Q by width-5 NAF over one shared chain of doublings, or
both from comb tables (verify_comb). What changes is the arithmetic under them:

* Field elements live in one preallocated workspace (array('H'), WS_SLOTS slots of 20 limbs):
  a verification allocates no big integers in its hot loop, so it triggers no garbage
  collection (at 128 KB the big-int path ran ~24 collections per scan).
* Each point operation is one call into p256field.run with a small program of field ops
  (built once, below): one Python -> viper call per point operation instead of ~30 big-int
  operations at ~1,000+ instructions of fixed overhead each.

Exceptional cases (an addition that meets P + P or P + (-P) inside the chain) stop the program
before it writes anything (ZCHK on H) and the whole verification is redone by the big-int path,
which handles every case. They occur only for crafted inputs (Wycheproof has some); the answer
is the same, only slower. verify_* return True/False, or None for "use the big-int path".

Available only where the viper emitter is (the ESP32 and unix ports): OK is False elsewhere
(CPython, the webassembly port), and offgate.crypto.ecdsa then uses offgate.crypto.p256 alone.
"""
try:
    from offgate.crypto import _gen_p256field as F
    OK = True
except Exception:  # no viper emitter here (CPython, webassembly), or no room for native code
    F = None
    OK = False

from array import array

from offgate.crypto import p256

ENABLED = True  # bench/tests switch the fast path off to measure/compare the big-int path

if OK:
    from offgate.crypto._gen_p256field import (DBL, MADD_RAW, SET_RAW, JADD_POS, JADD_NEG, SETJ_POS, SETJ_NEG,
                                   Q_FIRST, Q_NEXT, XCHECK, X, Y, Z, ONE, R2, OX, OY, RR, QTAB, QTAB2, QSTEP,
                                   WS_SLOTS)
    # the one workspace: every field element of a verification lives here (2,480 bytes)
    _ws = array("H", bytes(WS_SLOTS * F.SLOT_BYTES))
    for _i in range(F.LIMBS):
        _ws[ONE * F.LIMBS + _i] = F.ONE_LIMBS[_i]
        _ws[R2 * F.LIMBS + _i] = F.R2_LIMBS[_i]
    _run = F.run
    _unpack = F.unpack
    JADD = (JADD_POS, JADD_NEG)
    SETJ = (SETJ_POS, SETJ_NEG)
    _N_DBL = len(DBL)
    _N_MADD = len(MADD_RAW)
    _N_SET = len(SET_RAW)
    _N_JADD = (len(JADD_POS), len(JADD_NEG))
    _N_SETJ = len(SETJ_POS)


def _load(slot, v):
    """Plain 0 <= v < 2^256 into slot (not Montgomery form)."""
    _unpack(_ws, slot, v.to_bytes(32, "big"), 0)


def _x_matches(r):
    ws = _ws
    _load(RR, r)
    if _run(ws, XCHECK, len(XCHECK), 0):
        return True
    if r + p256.N < p256.P:  # x(R) in [n, p) also reduces to r mod n
        _load(RR, r + p256.N)
        return _run(ws, XCHECK, len(XCHECK), 0) == 1
    return False


def _add_row(comb, c, inf):
    """acc += comb row c (1..255); returns False if the program met an exceptional case."""
    buf, off = comb.rowbuf(c)
    ws = _ws
    _unpack(ws, OX, buf, off)
    _unpack(ws, OY, buf, off + 32)
    if inf:
        _run(ws, SET_RAW, _N_SET, 0)
        return True
    return not _run(ws, MADD_RAW, _N_MADD, 0)


def verify_comb(e, r, s, qcomb):
    """As p256ref.verify_comb (both points from comb tables). True / False / None (exceptional:
    the caller redoes it with the big-int path)."""
    if not (OK and ENABLED):
        return None
    n = p256.N
    w = p256.inv(s, n)
    d1 = p256.comb_digits(e * w % n)
    d2 = p256.comb_digits(r * w % n)
    g = p256.gcomb()
    ws = _ws
    run = _run
    inf = True
    for j in range(31, -1, -1):
        if not inf:
            run(ws, DBL, _N_DBL, 0)
        c = d1[j]
        if c:
            if not _add_row(g, c, inf):
                return None
            inf = False
        c = d2[j]
        if c:
            if not _add_row(qcomb, c, inf):
                return None
            inf = False
    if inf:
        return False
    return _x_matches(r)


def _build_qtab(base, count):
    """Odd multiples P, 3P, .. of the point whose plain (x, y) was loaded at base, base + 1, as
    cached Jacobian entries from base on. False on an exceptional case (not for a valid key)."""
    ws = _ws
    _run(ws, Q_FIRST, len(Q_FIRST), base)
    for k in range(count - 1):
        if _run(ws, Q_NEXT, len(Q_NEXT), base + k * QSTEP):
            return False
    return True


def _add_digit(c, base, inf):
    """acc += (or, for inf, acc =) the wNAF digit c's entry of the table at base."""
    ob = base + ((c & 0x7F) - 1) * QSTEP
    neg = 1 if c & 0x80 else 0
    if inf:
        _run(_ws, SETJ[neg], _N_SETJ, ob)
        return True
    return not _run(_ws, JADD[neg], _N_JADD[neg], ob)


def verify_core(e, r, s, qx, qy):
    """As p256ref.verify_core (generic key). True / False / None (exceptional: use the big-int
    path)."""
    if not (OK and ENABLED):
        return None
    n = p256.N
    w = p256.inv(s, n)
    n1 = p256.comb_digits(e * w % n)
    n2, i = p256.wnaf(r * w % n, p256.WQ)
    if i < 31:
        i = 31
    _load(QTAB, qx)
    _load(QTAB + 1, qy)
    if not _build_qtab(QTAB, 8):
        return None
    return _chain(i, n1, n2, QTAB, None, 0, r)


def _chain(i, n1, d1, t1, d2, t2, r):
    """The shared doubling chain from position i down: G's comb digits n1 (positions < 32), the
    wNAF digits d1 over the table at t1 and, for a split scalar, d2 over the table at t2; then
    the x-coordinate check against r. True / False / None (exceptional case)."""
    g = p256.gcomb()
    ws = _ws
    run = _run
    inf = True
    while i >= 0:
        if not inf:
            run(ws, DBL, _N_DBL, 0)
        if i < 32:
            c = n1[i]
            if c:
                if not _add_row(g, c, inf):
                    return None
                inf = False
        c = d1[i]
        if c:
            if not _add_digit(c, t1, inf):
                return None
            inf = False
        if d2 is not None:
            c = d2[i]
            if c:
                if not _add_digit(c, t2, inf):
                    return None
                inf = False
        i -= 1
    if inf:
        return False
    return _x_matches(r)


# ---------------------------------------------------------------- split scalar (returning riders)
# A rider key seen before carries hi = 2^128 Q (64 bytes x || y, made in idle time by
# pow2_128). u2 = lo + hi * 2^128 then needs 128 doublings instead of 256: u2*Q = lo*Q + hi*Q'.

SPLIT = 128


def mul_pow2(qx, qy, k):
    """2^k (qx, qy) as affine (x, y) ints (None for infinity), or None without the fast path:
    k doublings here plus one inversion."""
    if not OK:
        return None
    ws = _ws
    _load(OX, qx)
    _load(OY, qy)
    _run(ws, SET_RAW, _N_SET, 0)
    for _ in range(k):
        _run(ws, DBL, _N_DBL, 0)
    return _affine()


def _affine():
    """The accumulator (X, Y, Z in Montgomery form) as affine (x, y) ints, None for infinity."""
    p = p256.P
    out = bytearray(33)
    v = []
    for slot in (X, Y, Z):
        F.pack(_ws, slot, out)
        v.append(int.from_bytes(out, "big") * F.RINV % p)  # out of Montgomery form
    return p256.to_affine(v[0], v[1], v[2])


# ---------------------------------------------------------------- scalar multiplication (signing, ECDH)
# The gate's own key operations at sync (batch signature, ephemeral key, ECDH with the back
# office's key) on the same viper programs as verification: k*G from G's comb table (32 doublings,
# <= 32 additions), k*Q by width-5 NAF. Not constant time, like offgate.crypto.p256ref.mul (see devicekey).
# Each returns affine (x, y), or False when the fast path is off or met an exceptional case:
# the caller then uses p256ref.mul (same answer, slower).

def mul_g(k):
    """k*G for 0 < k < n: (x, y), or False (use the big-int path)."""
    if not (OK and ENABLED):
        return False
    d = p256.comb_digits(k)
    g = p256.gcomb()
    ws = _ws
    inf = True
    for j in range(31, -1, -1):
        if not inf:
            _run(ws, DBL, _N_DBL, 0)
        c = d[j]
        if c:
            if not _add_row(g, c, inf):
                return False
            inf = False
    if inf:
        return False
    return _affine() or False


def mul_point(k, qx, qy):
    """k*(qx, qy) for 0 < k < n and a point on the curve: (x, y), or False (use the big-int path)."""
    if not (OK and ENABLED):
        return False
    d, i = p256.wnaf(k, p256.WQ)
    _load(QTAB, qx)
    _load(QTAB + 1, qy)
    if not _build_qtab(QTAB, 8):
        return False
    inf = True
    while i >= 0:
        if not inf:
            _run(_ws, DBL, _N_DBL, 0)
        c = d[i]
        if c:
            if not _add_digit(c, QTAB, inf):
                return False
            inf = False
        i -= 1
    if inf:
        return False
    return _affine() or False


def pow2_128(qx, qy):
    """2^128 (qx, qy) as 64 bytes x || y (plain, affine), or None without the fast path.
    128 doublings: run it when the gate is idle, not in a decision."""
    q = mul_pow2(qx, qy, SPLIT)
    if q is None:
        return None
    return q[0].to_bytes(32, "big") + q[1].to_bytes(32, "big")


def verify_split(e, r, s, qx, qy, hi):
    """As verify_core, with hi = pow2_128(qx, qy). True / False / None (use the big-int path)."""
    if not (OK and ENABLED):
        return None
    n = p256.N
    w = p256.inv(s, n)
    n1 = p256.comb_digits(e * w % n)
    u2 = r * w % n
    lo, i = p256.wnaf(u2 & ((1 << SPLIT) - 1), 4)
    hd, j = p256.wnaf(u2 >> SPLIT, 4)
    if j > i:
        i = j
    if i < 31:
        i = 31
    ws = _ws
    _load(QTAB, qx)
    _load(QTAB + 1, qy)
    _unpack(ws, QTAB2, hi, 0)
    _unpack(ws, QTAB2 + 1, hi, 32)
    if not (_build_qtab(QTAB, 4) and _build_qtab(QTAB2, 4)):
        return None
    return _chain(i, n1, lo, QTAB, hd, QTAB2, r)
