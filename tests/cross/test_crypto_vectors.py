"""Wycheproof vectors through the firmware's hand-written crypto, run ON MicroPython (the 64-bit
port and the 32-bit build):
HMAC-SHA-256, HKDF-SHA-256, AES-CCM and P-256 ECDH; plus RFC 6979 and cross-checks of the
device key against pyca/cryptography."""
import hashlib
import json
import os
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from mpbridge import MP32, MP32_MISSING, Oracle


@pytest.fixture(scope="module", params=["mp64", "mp32"])
def mp(request):
    """Every suite on both unix runtimes: the 64-bit port and the 32-bit build (the ESP32
    stand-in: 16-bit bignum digits, 32-bit viper ints), each a process of this module's own, so the
    crypto and batch modules this loads stay out of the session-wide oracle."""
    if request.param == "mp32":
        if MP32 is None:
            pytest.skip(MP32_MISSING)
        o = Oracle(mp=MP32)
    else:
        o = Oracle()
    yield o
    o.close()


WYCHE = Path(__file__).parents[3] / "shared" / "vectors" / "wycheproof"


def load(name):
    return json.loads((WYCHE / name).read_text())


def cases(name):
    for g in load(name)["testGroups"]:
        for t in g["tests"]:
            yield g, t


def h(s):
    return bytes.fromhex(s)


def test_hmac_sha256(mp):
    n = 0
    for g, t in cases("hmac_sha256_test.json"):
        tag = mp.call("crypto_probe.hmac", h(t["key"]), h(t["msg"]))[: g["tagSize"] // 8]
        assert (tag == h(t["tag"])) == (t["result"] == "valid"), t["tcId"]
        n += 1
    print("hmac cases:", n)
    assert n == 174


def test_hkdf_sha256(mp):
    n = 0
    for g, t in cases("hkdf_sha256_test.json"):
        okm = mp.call("crypto_probe.hkdf_okm", h(t["ikm"]), h(t["salt"]), h(t["info"]), t["size"])
        if t["result"] == "valid":
            want = h(t["okm"])
            assert okm == [len(want), hashlib.sha256(want).digest()], t["tcId"]
        else:
            assert isinstance(okm, str) and okm.startswith("error"), t["tcId"]
        n += 1
    print("hkdf cases:", n)
    assert n == 86


def test_aes_ccm(mp):
    """Every group whose key size the port's AES has (128, 256: cryptolib has no AES-192)
    runs in full: valid cases must encrypt to ct||tag and decrypt; invalid ones (modified tags,
    nonce sizes outside 7..13 bytes, odd tag sizes) must be refused."""
    ran = skipped = 0
    for g, t in cases("aes_ccm_test.json"):
        if g["keySize"] == 192:
            skipped += 1
            continue
        tag_len = g["tagSize"] // 8
        ct_tag = h(t["ct"]) + h(t["tag"])
        enc, dec = mp.call("crypto_probe.ccm", h(t["key"]), h(t["iv"]), h(t["aad"]), h(t["msg"]), ct_tag, tag_len)
        if t["result"] == "valid":
            assert enc == ct_tag and dec == h(t["msg"]), t["tcId"]
        else:
            assert isinstance(dec, str) and dec.startswith("error"), t["tcId"]
            assert enc != ct_tag
        ran += 1
    print("aes-ccm cases run:", ran, "skipped (AES-192):", skipped)
    assert ran == 368 and skipped == 184


def test_ecdh_ecpoint(mp):
    counts = {"valid": 0, "invalid": 0, "acceptable": 0}
    for g, t in cases("ecdh_secp256r1_ecpoint_test.json"):
        out = mp.call("crypto_probe.ecdh", h(t["private"]), h(t["public"]))
        if t["result"] == "invalid":
            assert isinstance(out, str) and out.startswith("error"), t["tcId"]
        else:  # valid, and the one acceptable case (a compressed point, which the API accepts)
            assert out == h(t["shared"]), t["tcId"]
        counts[t["result"]] += 1
    print("ecdh cases:", counts)
    assert sum(counts.values()) == 355


RFC6979_D = h("C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721")


def test_rfc6979_sample(mp):
    sig = mp.call("crypto_probe.sign", RFC6979_D, b"sample", 0)
    assert sig.hex().upper() == ("EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716"
                                 "F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8")
    sig = mp.call("crypto_probe.sign", RFC6979_D, b"test", 0)
    assert sig.hex().upper() == ("F1ABB023518351CD71D881567B1EA663ED3EFCF6C5132B354F28D3B0B7D38367"
                                 "019F4113742A2B14BD25926B49C649155F267E60D3814B4C0CC84250E46F0083")


def test_device_key_against_pyca(mp):
    for i in range(4):
        priv = ec.generate_private_key(ec.SECP256R1())
        d = priv.private_numbers().private_value.to_bytes(32, "big")
        pub = priv.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        assert mp.call("crypto_probe.public", d) == pub
        msg = os.urandom(50 + i)
        for hedge in (0, 1):
            sig = mp.call("crypto_probe.sign", d, msg, hedge)
            der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
            priv.public_key().verify(der, msg, ec.ECDSA(hashes.SHA256()))
            with pytest.raises(InvalidSignature):
                priv.public_key().verify(der, msg + b"x", ec.ECDSA(hashes.SHA256()))
        peer = ec.generate_private_key(ec.SECP256R1())
        peer_pub = peer.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        assert mp.call("crypto_probe.ecdh", d, peer_pub) == peer.exchange(ec.ECDH(), priv.public_key())


# -- The RFCs' and FIPS' own published vectors (Wycheproof above is the bulk; these are the
# -- documents the algorithms come from). Each expected value is also recomputed by the host.

FIPS180_SHA256 = [  # FIPS 180-2 Appendix B.1, B.2
    (b"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
    (b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
    (b"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
]
RFC4231 = [  # RFC 4231 test cases 1, 2, 3, 6 (HMAC-SHA-256)
    ("0b" * 20, b"Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (b"Jefe".hex(), b"what do ya want for nothing?",
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    ("aa" * 20, bytes([0xdd] * 50), "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
    ("aa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First",
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
]
RFC5869 = [  # RFC 5869 A.1 - A.3 (HKDF-SHA-256): ikm, salt, info, L, okm
    ("0b" * 22, "000102030405060708090a0b0c", "f0f1f2f3f4f5f6f7f8f9", 42,
     "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"),
    (bytes(range(0x00, 0x50)).hex(), bytes(range(0x60, 0xb0)).hex(), bytes(range(0xb0, 0x100)).hex(), 82,
     "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09"
     "da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87"),
    ("0b" * 22, "", "", 42,
     "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"),
]
# RFC 3610 packet vector #1: AES-128-CCM, M = 8, L = 2 (13-byte nonce), 8-byte header as AAD
RFC3610_1 = ("c0c1c2c3c4c5c6c7c8c9cacbcccdcecf", "00000003020100a0a1a2a3a4a5", "0001020304050607",
             "08090a0b0c0d0e0f101112131415161718191a1b1c1d1e",
             "588c979a61c663d2f066d0c2c0f989806d5f6b61dac384", "17e8d12cfdf926e0")


def test_rfc_published_vectors(mp):
    import hmac as pyhmac
    from cryptography.hazmat.primitives.ciphers.aead import AESCCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    for msg, want in FIPS180_SHA256:
        assert hashlib.sha256(msg).hexdigest() == want
        assert mp.call("crypto_probe.sha256", msg) == h(want)
    for key, msg, want in RFC4231:
        assert pyhmac.new(h(key), msg, hashlib.sha256).hexdigest() == want
        assert mp.call("crypto_probe.hmac", h(key), msg) == h(want)
    for ikm, salt, info, n, want in RFC5869:
        ref = HKDF(hashes.SHA256(), n, h(salt) or None, h(info)).derive(h(ikm))
        assert ref == h(want)
        assert mp.call("crypto_probe.hkdf_full", h(ikm), h(salt), h(info), n) == h(want)
    key, nonce, aad, msg, ct, tag = map(h, RFC3610_1)
    assert AESCCM(key, tag_length=8).encrypt(nonce, msg, aad) == ct + tag
    assert mp.call("crypto_probe.ccm", key, nonce, aad, msg, ct + tag, 8) == [ct + tag, msg]
    bad = bytearray(ct + tag)
    bad[-1] ^= 1
    assert mp.call("crypto_probe.ccm", key, nonce, aad, msg, bytes(bad), 8)[1].startswith("error")
