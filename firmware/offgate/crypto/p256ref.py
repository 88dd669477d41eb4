"""P-256 point arithmetic and ECDSA verification on MicroPython big integers: the reference path.

Used for every exceptional case the fast path (offgate.crypto.p256fast) hands over, on ports without
viper, for table validation without viper and for the gate's own signatures (offgate.crypto.devicekey).
Imported where first needed (function-level imports in ecdsa, devicekey, keytables).

Built on MicroPython's arbitrary-precision ints: one C call per big-int operation, so the cost
model is "number of big-int operations", dominated by `% p` (a schoolbook division, ~2.5x a
256x256 multiply) and then by multiplications. Choices that follow from that:

* Jacobian coordinates (X, Y, Z) <-> (X/Z^2, Y/Z^3): no field inversion inside the ladder.
  Doubling uses the a = -3 formula (dbl-2001-b, 3M+5S, 7 reductions). Additions are "mixed"
  (Jacobian + affine, 9 reductions) for G and Jacobian + Jacobian with cached Z^2, Z^3 for Q
  (11 reductions). Sums and differences are never reduced on their own: only products are, and
  a value is always fully reduced when it is stored back into X, Y or Z, so the exact x/y
  equality tests in the additions (needed for P+P and P+(-P)) are plain `not h`.
* u1*G + u2*Q by interleaving (Shamir's trick): one shared chain of 256 doublings with width-5
  NAF digits for Q (Q..15Q built per verify, 1 doubling + 7 additions, unless the PublicKey
  cached them: PublicKey.precompute()); G's part comes from its comb table (p256_gtable, 8 teeth,
  spacing 32: one mixed addition in each of the last 32 steps, no table built at import).
* When the key has its own comb table (trusted issuer keys, offgate.crypto.keytables), verify_comb
  shares 31 doublings between the two combs: ~3x fewer instructions (docs/performance.md).
* The result is never made affine: x(R) == r (mod n) is checked as r*Z^2 == X (mod p), and
  also (r+n)*Z^2 == X when r + n < p (x(R) is reduced mod n in ECDSA, and n < p).
* Inverses (s^-1 mod n) use the extended Euclidean algorithm: on the
  MicroPython unix port it is ~6x faster than pow(s, n-2, n). Note pow(a, -1, m) is NOT an
  inverse on MicroPython (it returns 0), so it must never be used.
* wNAF digits are computed from the scalar's bytes with small-int arithmetic (no big-int
  allocation per bit) and stored one byte per bit position in a bytearray.

Edge cases handled: intermediate points at infinity (Z == 0), P+P (falls back to doubling),
P+(-P) (gives infinity), u1 == 0, result at infinity (verification fails).
Nothing here is constant-time: verification only handles public data.
"""

from offgate.crypto.p256 import (B, GX, GY, N, P, WQ, comb_digits, gcomb, inv, on_curve, sqrt,  # noqa: F401
                          to_affine, wnaf, y_from_x)


# ---------------------------------------------------------------- curve helpers (Jacobian)
# These are for table building, rare special cases and tests; the hot loop inlines them.

def jdouble(X, Y, Z):
    """2*(X, Y, Z); infinity is any Z == 0."""
    if not Z:
        return 0, 0, 0
    p = P
    d = Z * Z % p
    g = Y * Y % p
    b = X * g % p
    a = 3 * (X - d) * (X + d) % p
    b <<= 2
    X3 = (a * a - (b << 1)) % p
    Z3 = 2 * Y * Z % p
    Y3 = (a * (b - X3) - ((g * g) << 3)) % p
    return X3, Y3, Z3


def jadd(X1, Y1, Z1, X2, Y2, Z2):
    """(X1, Y1, Z1) + (X2, Y2, Z2), all edge cases (infinity, P+P, P+(-P)) handled."""
    if not Z1:
        return X2, Y2, Z2
    if not Z2:
        return X1, Y1, Z1
    p = P
    z1 = Z1 * Z1 % p
    z2 = Z2 * Z2 % p
    u1 = X1 * z2 % p
    u2 = X2 * z1 % p
    s1 = Y1 * Z2 * z2 % p
    s2 = Y2 * Z1 * z1 % p
    h = u2 - u1
    r = s2 - s1
    if not h:
        if not r:
            return jdouble(X1, Y1, Z1)
        return 0, 0, 0
    hh = h * h % p
    hhh = h * hh % p
    v = u1 * hh % p
    X3 = (r * r - hhh - (v << 1)) % p
    Y3 = (r * (v - X3) - s1 * hhh) % p
    Z3 = Z1 * Z2 * h % p
    return X3, Y3, Z3


def mul(k, x, y):
    """k*(x, y) as affine (x, y), or None for infinity. Plain double-and-add: tests only."""
    R = (0, 0, 0)
    for i in range(255, -1, -1):
        R = jdouble(*R)
        if (k >> i) & 1:
            R = jadd(R[0], R[1], R[2], x, y, 1)
    return to_affine(*R)


def _odd_multiples(x, y, count):
    """[(X, Y, Z)] of 1P, 3P, ..., (2*count-1)P in Jacobian coordinates."""
    out = [(x, y, 1)]
    d = jdouble(x, y, 1)
    for i in range(1, count):
        a = out[i - 1]
        out.append(jadd(a[0], a[1], a[2], d[0], d[1], d[2]))
    return out


def q_table(x, y):
    """Per-key table for the ladder: odd multiples of (x, y) as five lists
    (X, Y, Z, Z^2, Z^3) so each addition skips three reductions."""
    p = P
    pts = _odd_multiples(x, y, 1 << (WQ - 2))
    tx = []
    ty = []
    tz = []
    tz2 = []
    tz3 = []
    for X, Y, Z in pts:
        z2 = Z * Z % p
        tx.append(X)
        ty.append(Y)
        tz.append(Z)
        tz2.append(z2)
        tz3.append(z2 * Z % p)
    return tx, ty, tz, tz2, tz3


def madd(X, Y, Z, x2, y2):
    """(X, Y, Z) + affine (x2, y2), Jacobian result; all edge cases handled."""
    if not Z:
        return x2, y2, 1
    p = P
    zz = Z * Z % p
    h = x2 * zz % p - X
    rr = y2 * Z * zz % p - Y
    if not h:
        if not rr:
            return jdouble(X, Y, Z)
        return 0, 0, 0
    hh = h * h % p
    hhh = h * hh % p
    v = X * hh % p
    X3 = (rr * rr - hhh - (v << 1)) % p
    return X3, (rr * (v - X3) - Y * hhh) % p, Z * h % p


def _x_matches(X, Z, r):
    """x(X, Y, Z) == r (mod n), without an inversion."""
    if not Z:
        return False
    p = P
    zz = Z * Z % p
    if r * zz % p == X:
        return True
    # x(R) in [n, p) also reduces to r mod n
    return r + N < p and (r + N) * zz % p == X


# ---------------------------------------------------------------- ECDSA core

def verify_comb(e, r, s, qcomb):
    """ECDSA check with comb tables for both G and the key (qcomb: an object with row(c), bound
    to the key by the caller). 31 shared doublings and <= 64 mixed additions."""
    n = N
    w = inv(s, n)
    d1 = comb_digits(e * w % n)
    d2 = comb_digits(r * w % n)
    g = gcomb()
    X = Y = Z = 0
    for j in range(31, -1, -1):
        if Z:
            X, Y, Z = jdouble(X, Y, Z)
        c = d1[j]
        if c:
            x2, y2 = g.row(c)
            X, Y, Z = madd(X, Y, Z, x2, y2)
        c = d2[j]
        if c:
            x2, y2 = qcomb.row(c)
            X, Y, Z = madd(X, Y, Z, x2, y2)
    return _x_matches(X, Z, r)


def verify_core(e, r, s, qx, qy, qtab=None):
    """ECDSA check for the hash integer e and 1 <= r, s < N (the caller checks ranges and that
    (qx, qy) is a valid curve point). qtab: q_table(qx, qy) if cached. Returns bool.
    One chain of 256 doublings for the key's width-5 NAF; G's comb rows join in the last 32."""
    p = P
    n = N
    w = inv(s, n)
    n1 = comb_digits(e * w % n)
    n2, i = wnaf(r * w % n, WQ)
    if i < 31:
        i = 31
    if qtab is None:
        qtab = q_table(qx, qy)
    qtx, qty, qtz, qtz2, qtz3 = qtab
    g = gcomb()
    X = Y = Z = 0  # Z == 0: the point at infinity
    while i >= 0:
        if Z:
            # doubling, dbl-2001-b with a = -3 (same as jdouble, inlined: ~2/3 of all the work)
            d = Z * Z % p
            gg = Y * Y % p
            b = X * gg % p
            a = 3 * (X - d) * (X + d) % p
            b <<= 2
            X = (a * a - (b << 1)) % p
            Z = 2 * Y * Z % p
            Y = (a * (b - X) - ((gg * gg) << 3)) % p
        if i < 32:
            c = n1[i]
            if c:
                x2, y2 = g.row(c)
                if not Z:
                    X = x2
                    Y = y2
                    Z = 1
                else:
                    # mixed addition (Jacobian + affine), as madd()
                    zz = Z * Z % p
                    h = x2 * zz % p - X
                    rr = y2 * Z * zz % p - Y
                    if not h:
                        if not rr:
                            X, Y, Z = jdouble(X, Y, Z)
                        else:
                            X = Y = Z = 0
                    else:
                        hh = h * h % p
                        hhh = h * hh % p
                        v = X * hh % p
                        X = (rr * rr - hhh - (v << 1)) % p
                        Y = (rr * (v - X) - Y * hhh) % p
                        Z = Z * h % p
        c = n2[i]
        if c:
            j = (c & 0x7F) - 1
            y2 = qty[j]
            if c & 0x80:
                y2 = p - y2
            if not Z:
                X = qtx[j]
                Y = y2
                Z = qtz[j]
            else:
                # Jacobian + Jacobian with the entry's Z^2, Z^3 cached
                zz = Z * Z % p
                u1 = X * qtz2[j] % p
                s1 = Y * qtz3[j] % p
                h = qtx[j] * zz % p - u1
                rr = y2 * Z * zz % p - s1
                if not h:
                    if not rr:
                        X, Y, Z = jdouble(X, Y, Z)
                    else:
                        X = Y = Z = 0
                else:
                    hh = h * h % p
                    hhh = h * hh % p
                    v = u1 * hh % p
                    X = (rr * rr - hhh - (v << 1)) % p
                    Y = (rr * (v - X) - s1 * hhh) % p
                    Z = Z * qtz[j] * h % p
        i -= 1
    return _x_matches(X, Z, r)


def g_odd_multiples(count=32):
    """Affine G, 3G, ..., (2*count-1)G as two lists (xs, ys), normalised with one inversion
    (Montgomery's trick). Not used by verification any more (G's comb table replaced it);
    kept for tests and as the reference for the old import-time table."""
    p = P
    pts = _odd_multiples(GX, GY, count)
    acc = [1]
    for X, Y, Z in pts:
        acc.append(acc[-1] * Z % p)
    t = inv(acc[-1], p)
    xs = [0] * len(pts)
    ys = [0] * len(pts)
    for i in range(len(pts) - 1, -1, -1):
        X, Y, Z = pts[i]
        zi = t * acc[i] % p
        t = t * Z % p
        zi2 = zi * zi % p
        xs[i] = X * zi2 % p
        ys[i] = Y * zi2 * zi % p
    return xs, ys


def __getattr__(name):
    # _GTX/_GTY (the odd multiples of G the ladder used before the comb table) are built only
    # if something asks for them, so importing p256 costs no point arithmetic.
    if name == "_GTX" or name == "_GTY":
        xs, ys = g_odd_multiples()
        return xs if name == "_GTX" else ys
    raise AttributeError(name)
