# Firmware unit tests for the verified-credential cache (offgate.policy.credcache): records round-trip
# every field the gate decides on, LRU eviction, what does not fit is not cached, and the
# idle-time 2^128 multiple is stored with the record; run on MicroPython (128k heap) and CPython.
from offgate.policy import credential
from offgate import ecdsa
from offgate.crypto import p256, p256fast, p256ref
from offgate.policy.credcache import CredCache

G_PUB = b"\x04" + p256.GX.to_bytes(32, "big") + p256.GY.to_bytes(32, "big")


def _cred(i, zones=(1, 2), gates=None, cap=None):
    c = credential.Credential()
    c.cti = bytes([i]) * 8
    c.iss, c.sub = "issuer", "rider"
    c.nbf, c.exp, c.key_nbf, c.key_exp = 1000 + i, 2000 + i, 10, 4000000000
    c.product = 3
    c.cap = cap
    c.zones = list(zones)
    c.gates = None if gates is None else list(gates)
    c.rider = ecdsa.parse_public_key(G_PUB)
    return c


def _dig(i):
    return bytes([i]) * 32


def test_round_trip():
    cc = CredCache(4)
    assert cc.put(_dig(1), _cred(1, zones=(7,), gates=(1, 2, 3), cap=500))
    assert cc.put(_dig(2), _cred(2))
    got = cc.get(_dig(1))
    assert got.cti == b"\x01" * 8 and (got.nbf, got.exp, got.key_nbf, got.key_exp) == (1001, 2001, 10, 4000000000)
    assert got.zones == [7] and got.gates == [1, 2, 3] and got.cap == 500 and got.product == 3
    assert got.rider == ecdsa.parse_public_key(G_PUB) and got.rider.hi is None
    two = cc.get(_dig(2))
    assert two.gates is None and two.cap is None and two.zones == [1, 2]
    assert cc.get(_dig(9)) is None and (cc.hits, cc.misses) == (2, 1) and len(cc) == 2
    assert not cc.put(_dig(1), _cred(1))  # already there


def test_lru_eviction():
    cc = CredCache(2)
    cc.put(_dig(1), _cred(1))
    cc.put(_dig(2), _cred(2))
    assert cc.get(_dig(1)) is not None  # 1 is now the most recent
    cc.put(_dig(3), _cred(3))
    assert cc.get(_dig(2)) is None and cc.get(_dig(1)) is not None and cc.get(_dig(3)) is not None
    assert len(cc) == 2
    cc.clear()
    assert len(cc) == 0 and cc.get(_dig(1)) is None


def test_what_does_not_fit_is_not_cached():
    cc = CredCache(4)
    assert not cc.put(_dig(1), _cred(1, zones=range(9)))
    assert not cc.put(_dig(2), _cred(2, cap=1 << 40))
    big = _cred(3)
    big.exp = 1 << 33
    assert not cc.put(_dig(3), big)
    assert len(cc) == 0 and not CredCache(0).put(_dig(4), _cred(4))


def test_precompute_stored_with_the_record():
    cc = CredCache(2)
    cc.put(_dig(1), _cred(1))
    did = cc.precompute(_dig(1))
    assert did == p256fast.OK  # only where the fast path is
    key = cc.get(_dig(1)).rider
    if did:
        x = int.from_bytes(key.hi[:32], "big")
        assert x == p256ref.mul(1 << 128, p256.GX, p256.GY)[0]
        assert not cc.precompute(_dig(1))  # done once
    else:
        assert key.hi is None
    assert not cc.precompute(_dig(9))
