# Firmware unit tests for the viper fast path (offgate.crypto._gen_p256field, offgate.crypto.p256fast): run on
# MicroPython (unix port: viper present) and on CPython / the 32-bit webassembly port (no viper:
# the fast path must report itself absent and verification must still work). probe_* functions
# are called from tests/firmware/crypto/test_p256_field.py through the MicroPython oracle.
import sys

from offgate import ecdsa
from offgate.crypto import p256, p256fast, p256ref

P = p256.P
R = 1 << 260
MASK = 8191


def _has_viper():
    if sys.implementation.name != "micropython":
        return False
    try:
        exec("import micropython\n@micropython.viper\ndef _f(x: int) -> int:\n    return x\n")
        return True
    except Exception:
        return False


if p256fast.OK:
    F = p256fast.F
    WS = p256fast._ws
    S_A, S_B, S_OUT = 3, 4, 5  # scratch slots (temporaries of the point programs)


def _put(slot, v):
    """Raw limbs of 0 <= v < 2^260 (no reduction, no Montgomery conversion)."""
    for i in range(20):
        WS[20 * slot + i] = v & MASK
        v >>= 13


def _get(slot):
    v = 0
    for i in range(19, -1, -1):
        v = (v << 13) + WS[20 * slot + i]
    return v


def _normalised(slot):
    for i in range(19):
        if not 0 <= WS[20 * slot + i] <= MASK:
            return False
    return 0 <= WS[20 * slot + 19] and _get(slot) < (1 << 257)


def _op(op, a, b=0):
    _put(S_A, a)
    _put(S_B, b)
    prog = bytes((op, S_OUT, S_A, b if op in (F.MULK, F.ZCHK) else S_B))
    code = F.run(WS, prog, 4, 0)
    return code, _get(S_OUT), _normalised(S_OUT)


def probe_ops(a, b):
    """[(value, normalised)] of MUL, SQR, ADD, SUB, MULK 8 on raw values a, b, and ZCHK(a)."""
    out = []
    for op, x in ((F.MUL, b), (F.SQR, 0), (F.ADD, b), (F.SUB, b),
                  (F.MULK, 8)):
        code, v, ok = _op(op, a, x)
        out.append([v, ok])
    out.append(_op(F.ZCHK, a, 7)[0])
    return out


_SPLIT = {}  # pub -> 2^128 * key (computed once per key)


def probe_verify(pub, msg, sig):
    """[big-int result, fast generic result, fast split result] (fast: True/False/None)."""
    import hashlib
    try:
        key = ecdsa.parse_public_key(pub)
    except ValueError:
        return [False, False, False]
    e = int.from_bytes(hashlib.sha256(msg).digest(), "big")
    if len(sig) != 64:
        return [False, False, False]
    r = int.from_bytes(sig[:32], "big")
    s = int.from_bytes(sig[32:], "big")
    if not (0 < r < p256.N and 0 < s < p256.N):
        return [False, False, False]
    hi = _SPLIT.get(pub)
    if hi is None:
        if len(_SPLIT) > 8:
            _SPLIT.clear()
        hi = _SPLIT[pub] = p256fast.pow2_128(key.x, key.y)
    return [p256ref.verify_core(e, r, s, key.x, key.y), p256fast.verify_core(e, r, s, key.x, key.y),
            p256fast.verify_split(e, r, s, key.x, key.y, hi)]


# ---------------------------------------------------------------- tests

def test_fast_path_present_exactly_where_viper_is():
    assert p256fast.OK == _has_viper()


def test_ops_small_values():
    if not p256fast.OK:
        return
    rinv = pow(R, P - 2, P)
    for a, b in ((0, 0), (1, 1), (P - 1, P - 1), (P, 5), (2 * P, 3), ((1 << 257) - 1, (1 << 257) - 1)):
        res = probe_ops(a, b)
        assert res[0][0] % P == a * b * rinv % P and res[0][1]
        assert res[1][0] % P == a * a * rinv % P and res[1][1]
        assert res[2][0] % P == (a + b) % P and res[2][1]
        assert res[3][0] % P == (a - b) % P and res[3][1]
        assert res[4][0] % P == 8 * a % P and res[4][1]
        assert (res[5] == 7) == (a % P == 0)


def test_verify_agrees_with_big_int_path():
    # d = 1: the key is G; signature made on the host (pyca/cryptography)
    from p256vectors import G_MSG, G_PUB, G_SIG
    assert ecdsa.verify(G_PUB, G_MSG, G_SIG)
    bad = bytearray(G_SIG)
    bad[5] ^= 1
    assert not ecdsa.verify(G_PUB, G_MSG, bytes(bad))
    if p256fast.OK:
        assert probe_verify(G_PUB, G_MSG, G_SIG) == [True, True, True]
        assert probe_verify(G_PUB, G_MSG, bytes(bad)) == [False, False, False]


def test_disabled_fast_path_gives_same_answers():
    from p256vectors import G_MSG, G_PUB, G_SIG
    p256fast.ENABLED = False
    try:
        assert ecdsa.verify(G_PUB, G_MSG, G_SIG)
        assert not ecdsa.verify(G_PUB, G_MSG + b"x", G_SIG)
    finally:
        p256fast.ENABLED = True
