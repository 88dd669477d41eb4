# Firmware unit tests for the gate's own key operations on the fast path (p256fast.mul_g,
# p256fast.mul_point, used by devicekey for batch signatures, ephemeral keys and ECDH): each must
# equal the big-int p256ref.mul. Runs on MicroPython (64- and 32-bit) and CPython (fast path off there).
import hashlib

from offgate.crypto import devicekey, p256, p256fast, p256ref

N = p256.N


def _scalars():
    # edge scalars and random ones (a few: each big-int reference costs ~1 s on the 32-bit build)
    ks = [1, 2, 3, 31, 32, 255, 256, (1 << 128) + 1, N - 1, N - 2, N >> 1]
    for i in range(3):  # fixed pseudo-random ones (the webassembly port has no os.urandom)
        ks.append(int.from_bytes(hashlib.sha256(b"k%d" % i).digest(), "big") % (N - 1) + 1)
    return ks


def test_mul_g_matches_bigint():
    for k in _scalars():
        got = p256fast.mul_g(k)
        if got is False:
            assert not (p256fast.OK and p256fast.ENABLED), "fast path refused k=%d" % k
            continue
        assert got == p256ref.mul(k, p256.GX, p256.GY), "k*G differs for k=%d" % k


def test_mul_point_matches_bigint():
    q = p256ref.mul(0x1234567890ABCDEF, p256.GX, p256.GY)
    for k in _scalars():
        got = p256fast.mul_point(k, q[0], q[1])
        if got is False:
            assert not (p256fast.OK and p256fast.ENABLED), "fast path refused k=%d" % k
            continue
        assert got == p256ref.mul(k, q[0], q[1]), "k*Q differs for k=%d" % k


def test_ecdh_agrees_both_ways():
    a = devicekey.DeviceKey(int.from_bytes(hashlib.sha256(b"a").digest(), "big") % N)
    b = devicekey.DeviceKey(int.from_bytes(hashlib.sha256(b"b").digest(), "big") % N)
    assert a.ecdh(b.public_bytes()) == b.ecdh(a.public_bytes())


def test_signature_verifies_on_the_big_int_path():
    from offgate import ecdsa
    k = devicekey.DeviceKey(0xC0FFEE)
    msg = b"batch summary"
    sig = k.sign(msg, hedge=False)
    pub = ecdsa.parse_public_key(k.public_bytes())
    was = p256fast.ENABLED
    p256fast.ENABLED = False  # check with the independent big-int verifier
    try:
        assert ecdsa.verify_key(pub, msg, sig)
    finally:
        p256fast.ENABLED = was
