"""Differential tests: the firmware codecs (run on MicroPython through the `mp` bridge) against
reference host libraries: cbor2 (CBOR), base45 (RFC 9285) and cwt + cryptography (COSE_Sign1/ES256).
"""
import cbor2
import base45 as ref_b45
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cwt import COSE, COSEKey
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mpbridge import FirmwareError

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
U64 = 2 ** 64 - 1

# -- CBOR -------------------------------------------------------------------------------------

ints = st.one_of(
    st.integers(-(2 ** 64), U64),
    st.integers(-300, 300),
    st.sampled_from([0, 23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, U64,
                     -1, -24, -25, -256, -257, -65537, -(2 ** 32), -(2 ** 32) - 1, -(2 ** 64)]),
)
texts = st.text(max_size=40)  # hypothesis' default alphabet excludes surrogates: valid UTF-8
scalars = st.one_of(ints, st.binary(max_size=64), texts, st.booleans(), st.none())
keys = st.one_of(ints, texts)
cbor_objects = st.recursive(
    scalars,
    lambda kids: st.one_of(st.lists(kids, max_size=6), st.dictionaries(keys, kids, max_size=6)),
    max_leaves=25,
)


def depth(o):
    if isinstance(o, list):
        return 1 + max([depth(x) for x in o], default=0)
    if isinstance(o, dict):
        return 1 + max([depth(x) for x in o.values()], default=0)
    return 0


def det(o):
    """Reference RFC 8949 4.2.1 deterministic encoding: shortest heads (cbor2 always does that)
    and map keys in bytewise order of their encodings (cbor2's canonical=True is length-first)."""
    def sort(x):
        if isinstance(x, list):
            return [sort(v) for v in x]
        if isinstance(x, dict):
            return dict(sorted(((k, sort(v)) for k, v in x.items()), key=lambda kv: cbor2.dumps(kv[0])))
        if isinstance(x, cbor2.CBORTag):
            return cbor2.CBORTag(x.tag, sort(x.value))
        return x
    return cbor2.dumps(sort(o))


def typed(o):
    """Type-exact comparable form (True != 1 here, unlike in plain Python equality)."""
    if isinstance(o, bool) or o is None:
        return ("s", o)
    if isinstance(o, int):
        return ("i", o)
    if isinstance(o, bytes):
        return ("b", o)
    if isinstance(o, str):
        return ("t", o)
    if isinstance(o, list):
        return ("a", [typed(x) for x in o])
    if isinstance(o, dict):
        return ("m", sorted((repr(typed(k)), typed(v)) for k, v in o.items()))
    raise TypeError(type(o))


@settings(max_examples=700, **SETTINGS)
@given(cbor_objects)
def test_cbor_decode_matches_cbor2(mp, obj):
    assume(depth(obj) <= 8)
    enc = cbor2.dumps(obj)
    fw = mp.call("codec_probe.reencode", enc)
    # firmware decode -> firmware dumps gives the deterministic encoding of the same value ...
    assert fw == det(obj)
    # ... and cbor2 reads the firmware's encoding back as the original object
    assert typed(cbor2.loads(fw)) == typed(obj)


@settings(max_examples=150, **SETTINGS)
@given(cbor_objects)
def test_cbor_canonical_input_is_fixed_point(mp, obj):
    assume(depth(obj) <= 8)
    d = det(obj)
    assert mp.call("codec_probe.reencode", d) == d


@settings(max_examples=2000, **SETTINGS)
@given(st.one_of(st.binary(max_size=40),
                 # bytes that start like CBOR containers/heads explore deeper than uniform noise
                 st.tuples(st.sampled_from([b"\x82", b"\xa1", b"\xd2\x84", b"\x9b", b"\x7a", b"\x63"]),
                           st.binary(max_size=30)).map(lambda t: t[0] + t[1])))
def test_cbor_random_bytes_never_crash(mp, data):
    _fuzz_one(mp, data)


@settings(max_examples=800, **SETTINGS)
@given(cbor_objects.map(cbor2.dumps), st.data())
def test_cbor_mutated_encodings_never_crash(mp, enc, data):
    # near-valid input: a valid encoding with one byte replaced, inserted or deleted
    pos = data.draw(st.integers(0, len(enc)), label="pos")
    op = data.draw(st.sampled_from(["set", "insert", "delete"]), label="op")
    b = data.draw(st.integers(0, 255), label="byte")
    if op == "set" and pos < len(enc):
        enc = enc[:pos] + bytes([b]) + enc[pos + 1:]
    elif op == "insert":
        enc = enc[:pos] + bytes([b]) + enc[pos:]
    else:
        enc = enc[:pos] + enc[pos + 1:]
    _fuzz_one(mp, enc)


def _fuzz_one(mp, data):
    try:
        fw = mp.call("codec_probe.reencode", data)
    except FirmwareError as e:
        assert e.name == "CBORError", (data.hex(), e)
        return
    # accepted: cbor2 must agree on the value (firmware accepts a subset of valid CBOR)
    assert fw == det(cbor2.loads(data)), data.hex()


REJECTS = {
    "indefinite bstr": "5f42010243030405ff",
    "indefinite tstr": "7f657374726561646d696e67ff",
    "indefinite array": "9f01ff",
    "indefinite map": "bf6161 01ff".replace(" ", ""),
    "break": "ff",
    "duplicate int key": "a2010201 03".replace(" ", ""),
    "duplicate text key": "a2616101616102",
    "bool key": "a1f501",
    "bytes key": "a1410001",
    "trailing": "0000",
    "trailing after map": "a0a0",
    "float16": "f93c00",
    "float32": "fa47c35000",
    "float64": "fb3ff199999999999a",
    "undefined": "f7",
    "simple 16": "f0",
    "simple 255": "f8ff",
    "tag 0": "c074323031332d30332d32315432303a30343a30305a",
    "tag 1": "c11a514b67b0",
    "bignum": "c249010000000000000000",
    "tag 19": "d31a514b67b0",
    "bad utf-8 overlong": "62c080",
    "bad utf-8 surrogate": "63eda080",
    "bad utf-8 above U+10FFFF": "64f4908080",
    "bad utf-8 lone continuation": "6180",
    "bad utf-8 truncated": "62e282",
    "reserved ai": "1c",
    "array count > input": "9bffffffffffffffff",
    "map count > input": "ba00010000",
    "string longer than input": "5a00000010" + "00" * 4,
    "truncated head": "1a0000",
    "empty": "",
}


@pytest.mark.parametrize("name", sorted(REJECTS))
def test_cbor_targeted_rejects(mp, name):
    with pytest.raises(FirmwareError) as ei:
        mp.call("offgate.codec.cbor.loads", bytes.fromhex(REJECTS[name]))
    assert ei.value.name == "CBORError"


def test_cbor_depth_and_length_limits(mp):
    assert mp.call("offgate.codec.cbor.loads", b"\x81" * 8 + b"\x01") == [[[[[[[[1]]]]]]]]
    for over in (b"\x81" * 9 + b"\x01", b"\xa1\x01" * 9 + b"\x01", b"\x81" * 3000):
        with pytest.raises(FirmwareError, match="nesting") as ei:
            mp.call("offgate.codec.cbor.loads", over)
        assert ei.value.name == "CBORError"
    assert mp.call("offgate.codec.cbor.loads", cbor2.dumps(b"x" * 1024)) == b"x" * 1024
    assert mp.call("offgate.codec.cbor.loads", cbor2.dumps("é" * 512)) == "é" * 512
    for over in (cbor2.dumps(b"x" * 1025), cbor2.dumps("x" * 1025), cbor2.dumps([b"x" * 1025])):
        with pytest.raises(FirmwareError, match="longer"):
            mp.call("offgate.codec.cbor.loads", over)
    assert mp.call("codec_probe.reencode_limits", b"\x81\x81\x00", 2, 10) == b"\x81\x81\x00"
    with pytest.raises(FirmwareError):
        mp.call("codec_probe.reencode_limits", b"\x81\x81\x00", 1, 10)
    with pytest.raises(FirmwareError):
        mp.call("codec_probe.reencode_limits", b"\x43abc", 8, 2)


def test_cbor_tag_allow_set(mp):
    assert mp.call("codec_probe.reencode", b"\xd2\x80") == b"\xd2\x80"
    assert mp.call("codec_probe.reencode", b"\xd8\x12\x80") == b"\xd2\x80"  # non-shortest head
    with pytest.raises(FirmwareError):
        mp.call("codec_probe.reencode_tags", b"\xd2\x80", None)
    assert mp.call("codec_probe.reencode_tags", b"\xc1\x01", 1) == b"\xc1\x01"
    with pytest.raises(FirmwareError, match="tag 18"):
        mp.call("codec_probe.reencode_tags", b"\xd2\x80", 1)


# -- base45 -----------------------------------------------------------------------------------

B45_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"


@settings(max_examples=400, **SETTINGS)
@given(st.binary(max_size=300))
def test_base45_matches_library(mp, data):
    ref = ref_b45.b45encode(data).decode()
    assert mp.call("offgate.codec.base45.encode", data) == ref
    assert mp.call("offgate.codec.base45.decode", ref) == data
    assert mp.call("offgate.codec.base45.decode", ref.encode()) == data


@settings(max_examples=500, **SETTINGS)
@given(st.one_of(
    st.text(alphabet=B45_ALPHABET, max_size=30),
    st.text(alphabet=B45_ALPHABET + "abcz=_#\n\r\t\x00é€", max_size=30),
    st.binary(max_size=30),
))
def test_base45_junk_never_crashes(mp, text):
    try:
        fw = mp.call("offgate.codec.base45.decode", text)
    except FirmwareError as e:
        assert e.name == "ValueError", e
        fw = None
    try:
        ref = ref_b45.b45decode(text)
    except Exception:
        ref = None
    # the library is lenient in places (e.g. it may accept some lowercase); where the firmware
    # accepts, the library must agree byte for byte
    if fw is not None:
        assert ref == fw
        assert all(c in B45_ALPHABET for c in (text if isinstance(text, str) else text.decode()))
    elif ref is not None:
        # firmware rejected but the library accepted: only legitimate for chars outside the alphabet
        s = text if isinstance(text, str) else text.decode("latin-1")
        assert any(c not in B45_ALPHABET for c in s), text


def test_base45_rfc_examples(mp):
    for raw, txt in [(b"AB", "BB8"), (b"Hello!!", "%69 VD92EX0"), (b"base-45", "UJCLQE7W581"),
                     (b"ietf!", "QED8WEX0")]:
        assert mp.call("offgate.codec.base45.encode", raw) == txt
        assert mp.call("offgate.codec.base45.decode", txt) == raw
    for bad in ("GGW", "V5", "0", "bb8", "BB8:::"):
        with pytest.raises(FirmwareError) as ei:
            mp.call("offgate.codec.base45.decode", bad)
        assert ei.value.name == "ValueError"


# -- COSE_Sign1 / ES256 -----------------------------------------------------------------------

_KEY = ec.derive_private_key(0xC0FFEE * 7919 + 12345678901234567890, ec.SECP256R1())
_PN = _KEY.private_numbers()
_X = _PN.public_numbers.x.to_bytes(32, "big")
_Y = _PN.public_numbers.y.to_bytes(32, "big")
PUB = b"\x04" + _X + _Y
PUB_C = bytes([2 | (_PN.public_numbers.y & 1)]) + _X
KID = b"\x01\x02\x03\x04\x05\x06\x07\x08"
CWT_PRIV = COSEKey.new({1: 2, 2: KID, -1: 1, -2: _X, -3: _Y, -4: _PN.private_value.to_bytes(32, "big"), 3: -7})
CWT_PUB = COSEKey.new({1: 2, 2: KID, -1: 1, -2: _X, -3: _Y, 3: -7})
CTX = COSE.new()


def cwt_sign(payload, protected=None):
    return CTX.encode(payload, CWT_PRIV, protected=protected or {1: -7, 4: KID}, unprotected={})


def raw_sign(protected_bytes, payload, unprotected=None, tagged=True, sig_fn=None):
    """Build a COSE_Sign1 with cbor2 + cryptography (for shapes cwt refuses to produce)."""
    tbs = cbor2.dumps(["Signature1", protected_bytes, b"", payload])
    r, s = utils.decode_dss_signature(_KEY.sign(tbs, ec.ECDSA(hashes.SHA256())))
    sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    if sig_fn:
        sig = sig_fn(sig)
    arr = [protected_bytes, unprotected if unprotected is not None else {}, payload, sig]
    return cbor2.dumps(cbor2.CBORTag(18, arr) if tagged else arr)


def cwt_accepts(msg):
    try:
        return CTX.decode(msg, CWT_PUB)
    except Exception:
        return None


def fw_verify(mp, msg, pub=PUB):
    """Payload if the firmware verifies msg, else (exception class name, message)."""
    try:
        return mp.call("offgate.cose.sign1_verify", msg, pub)
    except FirmwareError as e:
        return (e.name, e.msg)


GOOD_PAYLOAD = cbor2.dumps({1: "operator", 4: 2_000_000_000, 7: b"\xaa" * 8})
GOOD = cwt_sign(GOOD_PAYLOAD)


def test_cose_cwt_message_verifies_on_firmware(mp):
    assert GOOD[:1] == b"\xd2"
    assert mp.call("offgate.cose.sign1_verify", GOOD, PUB) == GOOD_PAYLOAD
    assert mp.call("offgate.cose.sign1_verify", GOOD, PUB_C) == GOOD_PAYLOAD
    untagged = cbor2.dumps(cbor2.loads(GOOD).value)
    assert mp.call("offgate.cose.sign1_verify", untagged, PUB) == GOOD_PAYLOAD
    fields = mp.call("codec_probe.cose_fields", GOOD)
    assert fields[0] == cbor2.loads(GOOD).value[0]
    assert fields[1] == GOOD_PAYLOAD and fields[3] == -7 and fields[4] == KID
    assert fields[5] == cbor2.dumps(["Signature1", fields[0], b"", GOOD_PAYLOAD])


@settings(max_examples=60, **SETTINGS)
@given(st.binary(max_size=200), st.booleans())
def test_cose_firmware_and_cwt_agree_on_fresh_messages(mp, payload, via_cwt):
    msg = cwt_sign(payload) if via_cwt else raw_sign(cbor2.dumps({1: -7}), payload)
    assert fw_verify(mp, msg) == payload
    assert cwt_accepts(msg) == payload


@settings(max_examples=500, **SETTINGS)
@given(st.data())
def test_cose_every_single_byte_change_refused(mp, data):
    pos = data.draw(st.integers(0, len(GOOD) - 1), label="pos")
    val = data.draw(st.integers(0, 255).filter(lambda v: v != GOOD[pos]), label="val")
    bad = GOOD[:pos] + bytes([val]) + GOOD[pos + 1:]
    r = fw_verify(mp, bad)
    assert isinstance(r, tuple), "firmware accepted a modified message at %d" % pos
    assert r[0] in ("CBORError", "Malformed", "BadAlgorithm", "BadSignature", "ValueError"), r
    assert cwt_accepts(bad) is None  # the two agree: neither accepts it


def test_cose_truncations_refused(mp):
    for n in range(len(GOOD)):
        assert isinstance(fw_verify(mp, GOOD[:n]), tuple), n


def _cases():
    p = b"payload"
    return {
        "ES384": (raw_sign(cbor2.dumps({1: -35}), p), "BadAlgorithm"),
        "missing alg": (raw_sign(cbor2.dumps({4: KID}), p), "BadAlgorithm"),
        "empty protected": (raw_sign(b"", p), "BadAlgorithm"),
        "alg only unprotected": (raw_sign(b"", p, unprotected={1: -7}), "BadAlgorithm"),
        "alg text": (raw_sign(cbor2.dumps({1: "ES256"}), p), "BadAlgorithm"),
        "alg in both": (raw_sign(cbor2.dumps({1: -7}), p, unprotected={1: -7}), None),
        "nil payload": (raw_sign(cbor2.dumps({1: -7}), None), None),
        "truncated sig": (raw_sign(cbor2.dumps({1: -7}), p, sig_fn=lambda s: s[:63]), "BadSignature"),
        "empty sig": (raw_sign(cbor2.dumps({1: -7}), p, sig_fn=lambda s: b""), "BadSignature"),
        "long sig": (raw_sign(cbor2.dumps({1: -7}), p, sig_fn=lambda s: s + b"\x00"), "BadSignature"),
        "zero sig": (raw_sign(cbor2.dumps({1: -7}), p, sig_fn=lambda s: b"\x00" * 64), "BadSignature"),
        "sig text": (raw_sign(cbor2.dumps({1: -7}), p, sig_fn=lambda s: s.hex()), None),
        "trailing byte": (GOOD + b"\x00", None),
        "other tag": (b"\xd1" + GOOD[1:], None),
        "tag 98": (b"\xd8\x62" + GOOD[1:], None),
        "double tag": (b"\xd2" + GOOD, None),
        "3 elements": (cbor2.dumps(cbor2.CBORTag(18, cbor2.loads(GOOD).value[:3])), None),
        "not array": (cbor2.dumps(cbor2.CBORTag(18, {})), None),
        "crit": (raw_sign(cbor2.dumps({1: -7, 2: [4]}), p), None),
    }


@pytest.mark.parametrize("name", sorted(_cases()))
def test_cose_rejects(mp, name):
    msg, want = _cases()[name]
    r = fw_verify(mp, msg)
    assert isinstance(r, tuple), "firmware accepted %s" % name
    if want:
        assert r[0] == want, r
    else:
        assert r[0] not in ("BadAlgorithm", "BadSignature"), r  # structural: Malformed/CBORError


def test_cose_signature_covers_exact_protected_bytes(mp):
    # {1: -7} with a non-shortest encoding of -7: verification must hash the received bytes
    msg = raw_sign(bytes.fromhex("a1013806"), b"x")
    assert fw_verify(mp, msg) == b"x"
    assert cwt_accepts(msg) in (b"x", None)  # cwt may re-encode; the firmware must not


def test_cose_wrong_key_and_bad_key(mp):
    other = ec.derive_private_key(7, ec.SECP256R1()).public_key().public_numbers()
    other_pub = b"\x04" + other.x.to_bytes(32, "big") + other.y.to_bytes(32, "big")
    assert fw_verify(mp, GOOD, other_pub)[0] == "BadSignature"
    for key in (b"", PUB[:64], b"\x04" + b"\x00" * 64, b"\x05" + PUB[1:], PUB + b"\x00"):
        r = fw_verify(mp, GOOD, key)
        assert isinstance(r, tuple) and r[0] not in ("BadSignature",), (key.hex(), r)
