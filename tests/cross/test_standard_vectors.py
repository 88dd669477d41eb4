"""Published test vectors through the firmware's decoders and verifiers, on real MicroPython: the
64-bit unix port and the 32-bit build (the ESP32 stand-in; skipped with a reason where absent).

* CBOR: RFC 8949 Appendix A (cbor/test-vectors `appendix_a.json`): every item in the gate's subset
  decodes to the right value, every other item is refused with a CBORError naming why; RFC 8949
  Appendix F.1 (not-well-formed items): every one refused.
* COSE_Sign1: cose-wg/Examples `sign1-tests/` and `ecdsa-examples/*-sig-*` (ES256/ES384/ES512).
* CWT: RFC 8392 Appendix A.3 (signed with the A.2.3 ES256 key).
* base45: RFC 9285 examples and invalid inputs.

The vector files live beside the Wycheproof ones in ../shared/vectors/ (each directory has SOURCE
and LICENSE notes): fetched public data is kept only there, never committed, so a test whose
vector directory is absent is skipped with the reason; a directory with a file missing fails. Every suite asserts how many cases it ran.
docs/protocol.md §5 says what the decoders accept and refuse.
"""
import base64
import json
from pathlib import Path

import cbor2
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from mpbridge import MP32, MP32_MISSING, FirmwareError

VECTORS = Path(__file__).resolve().parents[3] / "shared" / "vectors"
if not VECTORS.is_dir():  # a worktree elsewhere: the machine's shared folder
    VECTORS = Path("/work/shared/vectors")
APPENDIX_A = VECTORS / "cbor-test-vectors" / "appendix_a.json"
COSE_EXAMPLES = VECTORS / "cose-wg-examples"


@pytest.fixture(scope="module", params=["mp64", "mp32"])
def fw(request):
    """The firmware on one MicroPython runtime (a process of this module's own)."""
    if request.param == "mp32":
        if MP32 is None:
            pytest.skip(MP32_MISSING)
        return request.getfixturevalue("mp32")
    return request.getfixturevalue("mp_isolated")


def H(s):
    return bytes.fromhex(s.replace(" ", ""))


def fw_result(fw, func, *args):
    """("ok", value) or ("err", exception class name, message): never lets a crash through."""
    try:
        return ("ok", fw.call(func, *args))
    except FirmwareError as e:
        return ("err", e.name, e.msg)


# -- CBOR: RFC 8949 Appendix A ----------------------------------------------------------------

def refusal(hexs):
    """Why the gate's decoder refuses an Appendix A item (a substring of its CBORError message),
    or None for an item in its subset (docs/protocol.md §5)."""
    b = H(hexs)
    ib = b[0]
    mt, ai = ib >> 5, ib & 31
    if ib in (0xF9, 0xFA, 0xFB):
        return "floats not allowed"
    if ib == 0xF7:
        return "undefined not allowed"
    if mt == 7 and ib not in (0xF4, 0xF5, 0xF6):
        return "simple value not allowed"
    if mt == 6:
        return "tag %d not allowed" % (ai if ai < 24 else b[1])  # bignums (2, 3) included
    if ai == 31 or b"\x9f" in b or b"\xbf" in b:  # (no Appendix A string holds these bytes)
        return "indefinite length not allowed"  # also one nested in a definite container
    return None


def present(d):
    if not d.is_dir():
        pytest.skip("published vectors not in %s (kept in ../shared/vectors/, see docs/security.md)" % d)


def appendix_a():
    present(APPENDIX_A.parent)
    assert APPENDIX_A.exists(), "vector file missing: %s (see its SOURCE)" % APPENDIX_A
    items = json.loads(APPENDIX_A.read_text())
    for it in items:
        assert base64.b64decode(it["cbor"]).hex() == it["hex"]
    return items


def expected_value(it):
    """The value an accepted item must decode to: JSON `decoded`, or the three diagnostic-only items
    of the subset, written out here."""
    if "decoded" in it:
        return it["decoded"]
    return {"40": b"", "4401020304": b"\x01\x02\x03\x04", "a201020304": {1: 2, 3: 4}}[it["hex"]]


def test_cbor_appendix_a(fw):
    items = appendix_a()
    accepted = refused = 0
    for it in items:
        why = refusal(it["hex"])
        got = fw_result(fw, "codec_probe.reencode", H(it["hex"]))
        if why is None:
            # the firmware's re-encoding of what it decoded is exactly the host's encoding of the
            # RFC's value: same type (bytes vs text, bool vs int) and value
            assert got == ("ok", cbor2.dumps(expected_value(it))), it
            assert it["roundtrip"] and got[1] == H(it["hex"]), it
            accepted += 1
        else:
            assert got[0] == "err" and got[1] == "CBORError" and why in got[2], (it, got)
            refused += 1
    assert (accepted, refused, len(items)) == (37, 45, 82)


def test_cbor_appendix_a_tag_allowed(fw):
    """With a tag allowed (how the COSE decoder admits 18), a tagged Appendix A item decodes to
    that tag around its value: tags are refused by choice, not by a decoder that cannot read them."""
    for hexs, tag in (("c11a514b67b0", 1), ("d74401020304", 23),
                      ("c074323031332d30332d32315432303a30343a30305a", 0)):
        assert fw.call("codec_probe.reencode_tags", H(hexs), tag) == H(hexs)
    # tags 2/3 (bignums), if a caller allowed them, stay a tag around a byte string: never an int
    assert fw.call("codec_probe.reencode_tags", H("c249010000000000000000"), 2) == H("c249010000000000000000")


# RFC 8949 Appendix F.1: examples of CBOR data items that are not well-formed, by its subsections.
NOT_WELL_FORMED = {
    "end of input in a head": "18 19 1a 1b 1901 1a0102 1b01020304050607 38 58 78 98 9a01ff00 b8 d8 f8 f900 fa0000 fb000000",
    "definite-length strings with short data": "41 61 5affffffff00 5bffffffffffffffff010203 7affffffff00 7b7fffffffffffffff010203",
    "definite-length maps and arrays not closed with enough items": "81 818181818181818181 8200 a1 a20102 a100 a2000000",
    "tag number not followed by tag content": "c0",
    "indefinite-length strings not closed by a break": "5f4100 7f6100",
    "indefinite-length maps and arrays not closed by a break": "9f 9f0102 bf bf01020102 819f 9f8000 9f9f9f9f9fffffffff 9f819f819f9fffffff",
    "reserved additional information values": "1c 1d 1e 3c 3d 3e 5c 5d 5e 7c 7d 7e 9c 9d 9e bc bd be dc dd de fc fd fe",
    "reserved two-byte encodings of simple values": "f800 f801 f818 f81f",
    "indefinite-length string chunks not of the correct type": "5f00ff 5f21ff 5f6100ff 5f80ff 5fa0ff 5fc000ff 5fe0ff 7f4100ff",
    "indefinite-length string chunks not definite length": "5f5f4100ffff 7f7f6100ffff",
    "break occurring on its own outside of an indefinite-length item": "ff",
    "break occurring in a definite-length array or map or a tag": "81ff 8200ff a1ff a1ff00 a100ff a20000ff 9f81ff 9f829f819f9fffffffff",
    "break in an indefinite-length map in a value position": "bf00ff bf000000ff",
    "major type 0, 1, 6 with additional information 31": "1f 3f df",
}


def test_cbor_appendix_f_not_well_formed(fw):
    n = 0
    for section, items in NOT_WELL_FORMED.items():
        for hexs in items.split():
            for tags in (None, 18):  # with the COSE tag allowed too: a tag head must not get further
                got = fw_result(fw, "codec_probe.reencode_tags", H(hexs), tags)
                assert got[0] == "err" and got[1] == "CBORError", (section, hexs, got)
            # (no host cross-check: cbor2 5.9 accepts f800..f81f and stray breaks such as 81ff)
            n += 1
    assert n == 94


# -- COSE_Sign1: cose-wg/Examples --------------------------------------------------------------

def b64u(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def example(rel):
    present(COSE_EXAMPLES)
    p = COSE_EXAMPLES / rel
    assert p.exists(), "vector file missing: %s (see %s/SOURCE)" % (p, COSE_EXAMPLES)
    return json.loads(p.read_text())


def example_key(d):
    k = d["input"]["sign0"]["key"]
    if "x_hex" in k:
        x, y = H(k["x_hex"]), H(k["y_hex"])
    else:
        x, y = b64u(k["x"]), b64u(k["y"])
    return k["crv"], b"\x04" + x + y


def host_verifies(pub65, tbs, sig):
    """pyca/cryptography on the ToBeSigned bytes the example states: the reference verdict."""
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), pub65)
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    try:
        key.verify(der, tbs, ec.ECDSA(hashes.SHA256()))
        return True
    except Exception:
        return False


# file -> (expected firmware outcome, why). "ok" = verifies and returns the payload.
COSE_CASES = {
    "sign1-tests/sign-pass-01.json": ("BadAlgorithm", "alg only in the unprotected header: offgate's rule "
                                      "(protocol §2), though the signature is good"),
    "sign1-tests/sign-pass-02.json": ("ok", "external_aad given"),
    "sign1-tests/sign-pass-03.json": ("ok", "untagged"),
    "sign1-tests/sign-fail-01.json": ("Malformed", "tag 998 instead of 18"),
    "sign1-tests/sign-fail-02.json": ("BadSignature", "signature changed"),
    "sign1-tests/sign-fail-03.json": ("BadAlgorithm", "alg -999"),
    "sign1-tests/sign-fail-04.json": ("BadAlgorithm", "alg 'unknown' (text)"),
    "sign1-tests/sign-fail-06.json": ("BadSignature", "protected attribute added after signing"),
    "sign1-tests/sign-fail-07.json": ("BadSignature", "protected attribute removed after signing"),
    "ecdsa-examples/ecdsa-sig-01.json": ("ok", "ES256 on P-256, ctyp in the protected header"),
    "ecdsa-examples/ecdsa-sig-02.json": ("BadAlgorithm", "ES384 on P-384: not accepted"),
    "ecdsa-examples/ecdsa-sig-03.json": ("BadAlgorithm", "ES512 on P-521: not accepted"),
    "ecdsa-examples/ecdsa-sig-04.json": ("BadAlgorithm", "ES512 with a P-256 key: not accepted"),
}


def test_cose_examples(fw):
    n_ok = 0
    for rel, (want, why) in COSE_CASES.items():
        d = example(rel)
        data = H(d["output"]["cbor"])
        crv, pub = example_key(d)
        if crv != "P-256":  # a key the gate cannot hold: the example's own P-256 key stands in
            crv, pub = example_key(example("ecdsa-examples/ecdsa-sig-01.json"))
        aad = H(d["input"]["sign0"].get("external", ""))
        got = fw_result(fw, "codec_probe.cose_verify", data, pub, aad)
        if want == "ok":
            assert got == ("ok", d["input"]["plaintext"].encode()), (rel, why, got)
            # the firmware's Sig_structure is the example's ToBeSign
            fields = fw.call("codec_probe.cose_fields", data)
            if not aad:
                assert fields[5] == H(d["intermediates"]["ToBeSign_hex"]), rel
            n_ok += 1
            # a one-byte change anywhere fails, with a clear error, never a crash. The key is
            # picked by kid as the gate does (the unprotected kid is not signed: a changed one
            # must find no key, not the example's)
            kid = d["input"]["sign0"]["key"]["kid"].encode()
            assert fw.call("codec_probe.cose_verify_kid", data, pub, kid, aad) == got[1]
            for i in range(len(data)):
                bad = bytearray(data)
                bad[i] ^= 0x01
                r = fw_result(fw, "codec_probe.cose_verify_kid", bytes(bad), pub, kid, aad)
                assert r[0] == "err" and r[1] in ("CBORError", "Malformed", "BadAlgorithm", "BadSignature"), \
                    (rel, i, r)
            # and a changed external_aad fails
            r = fw_result(fw, "codec_probe.cose_verify", data, pub, aad + b"\x00")
            assert r[:2] == ("err", "BadSignature"), rel
        else:
            assert got[0] == "err" and got[1] == want, (rel, why, got)
        if rel == "sign1-tests/sign-pass-01.json":  # refused by rule, yet cryptographically good
            sig = cbor2.loads(data).value[3]
            assert host_verifies(pub, H(d["intermediates"]["ToBeSign_hex"]), sig)
    assert n_ok == 3 and len(COSE_CASES) == 13


# -- CWT: RFC 8392 Appendix A.3 ---------------------------------------------------------------

# RFC 8392 A.3, byte for byte (the cose-wg/Examples CWT/A_3.json copy leaves the unprotected kid
# out; the signature is the same, as the kid is not signed). Key: A.2.3.
RFC8392_A3 = H(
    "d28443a10126a104524173796d6d657472696345434453413235365850a70175"
    "636f61703a2f2f61732e6578616d706c652e636f6d02656572696b77037818"
    "636f61703a2f2f6c696768742e6578616d706c652e636f6d041a5612aeb0051a"
    "5610d9f0061a5610d9f007420b7158405427c1ff28d23fbad1f29c4c7c6a555e"
    "601d6fa29f9179bc3d7438bacaca5acd08c8d4d4f96131680c429a01f85951ec"
    "ee743a52b9b63632c57209120e1c9e30")
RFC8392_A23_PUB = H("04 143329cce7868e416927599cf65a34f3ce2ffda55a7eca69ed8919a394d42f0f"
                    "60f7f1a780d8a783bfb7a2dd6b2796e8128dbbcef9d3d168db9529971a36e7b9")
# RFC 8392 A.1: the claims set, by its claim keys (3.1.1 - 3.1.7)
RFC8392_A1_CLAIMS = {1: "coap://as.example.com", 2: "erikw", 3: "coap://light.example.com",
                     4: 1444064944, 5: 1443944944, 6: 1443944944, 7: b"\x0b\x71"}


def test_cwt_rfc8392_a3(fw):
    d = example("CWT/A_3.json")
    assert example_key(d)[1] == RFC8392_A23_PUB
    for data in (RFC8392_A3, H(d["output"]["cbor"])):
        claims, verdict = fw.call("codec_probe.cwt_verify", data, RFC8392_A23_PUB)
        assert cbor2.loads(claims) == RFC8392_A1_CLAIMS
        # the gate's credential profile (protocol §2) wants an 8-byte cti, cnf and the access claim:
        # a generic CWT decodes and verifies, and is then refused as a credential, with why
        assert verdict == "CredentialError: cti must be 8 bytes"
    # the host library agrees
    from cwt import COSE, COSEKey
    key = COSEKey.from_jwk({"kty": "EC", "crv": "P-256", "kid": "AsymmetricECDSA256", "x": base64.urlsafe_b64encode(RFC8392_A23_PUB[1:33]).decode(),
                            "y": base64.urlsafe_b64encode(RFC8392_A23_PUB[33:]).decode()})
    assert cbor2.loads(COSE.new().decode(RFC8392_A3, key)) == RFC8392_A1_CLAIMS
    for i in (0, 5, 30, 100, len(RFC8392_A3) - 1):
        bad = bytearray(RFC8392_A3)
        bad[i] ^= 0x80
        r = fw_result(fw, "codec_probe.cwt_verify", bytes(bad), RFC8392_A23_PUB)
        assert r[0] == "err" and r[1] in ("CBORError", "Malformed", "BadAlgorithm", "BadSignature"), (i, r)


# -- base45: RFC 9285 -------------------------------------------------------------------------

RFC9285_EXAMPLES = [(b"AB", "BB8"), (b"Hello!!", "%69 VD92EX0"), (b"base-45", "UJCLQE7W581"),
                    (b"ietf!", "QED8WEX0")]
# RFC 9285 §4 / §6: a character outside the alphabet, a leftover single character, a triple over
# 65535 ("GGW" = 65536) or a pair over 255; lowercase is not in the alphabet.
RFC9285_INVALID = ["GGW", "A", "BB8A", "ZZZ", ":::", "V5", "::", "bb8", "QED8WEX0 ", "QED8WEX", "%69 VD92EX0=",
                   "\u00e9\u00e9\u00e9"]


def test_base45_rfc9285(fw):
    import base45 as ref
    for raw, text in RFC9285_EXAMPLES:
        assert fw.call("offgate.codec.base45.encode", raw) == text == ref.b45encode(raw).decode()
        assert fw.call("offgate.codec.base45.decode", text) == raw
    n = 0
    for text in RFC9285_INVALID:
        got = fw_result(fw, "offgate.codec.base45.decode", text)
        assert got[0] == "err" and got[1] == "ValueError" and got[2].startswith("base45:"), (text, got)
        n += 1
    assert n == len(RFC9285_INVALID) == 12
