import struct

import cbor2
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cwt import COSE, COSEKey
from hypothesis import given, settings
from hypothesis import strategies as st

from hostutil import T0, credential_claims, sign1_parts, typical_credential
from offgate_host.wire import formats, keys

QR_ALNUM = set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")


def cwt_pub(pub65, kid=None):
    p = {1: 2, 3: -7, -1: 1, -2: pub65[1:33], -3: pub65[33:]}
    if kid:
        p[2] = kid
    return COSEKey.new(p)


def crypto_verify_sign1(msg, pub65):
    """Independent check: rebuild Sig_structure from the received bytes, verify with pyca only.
    Works for tagged and untagged COSE_Sign1 (the tag is not part of the Sig_structure)."""
    prot, _unprot, payload, sig = sign1_parts(msg)
    to_be_signed = cbor2.dumps(["Signature1", prot, b"", payload])
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    keys.pub_from_bytes(pub65).verify(der, to_be_signed, ec.ECDSA(hashes.SHA256()))


def pyca_sign1(priv, protected: dict, payload, tagged, unprotected=None):
    """Independent COSE_Sign1 producer (pyca + cbor2 only, no cwt, no offgate code)."""
    prot = cbor2.dumps(protected)
    if not isinstance(payload, bytes):
        payload = cbor2.dumps(payload)
    der = priv.sign(cbor2.dumps(["Signature1", prot, b"", payload]), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    arr = [prot, unprotected or {}, payload, r.to_bytes(32, "big") + s.to_bytes(32, "big")]
    return cbor2.dumps(cbor2.CBORTag(18, arr) if tagged else arr)


def hand_claims(rider, *, iat=None, access=None):
    """Claims map written straight from protocol.md (not through formats)."""
    pub = keys.pub_bytes(rider)
    c = {4: T0 + 86400}  # compact, as the back office issues (no iss, sub, nbf)
    if iat is not None:
        c[6] = iat
    c[7] = bytes(range(8))
    c[8] = {1: {1: 2, -1: 1, -2: pub[1:33], -3: bool(pub[-1] & 1)}}
    c[-1] = {1: [1, 2], 3: 1} if access is None else access
    return c


# ------------------------------------------------------------------------ keys

def test_keys_pub_kid_pem(tmp_path):
    k = keys.generate()
    pub = keys.pub_bytes(k)
    assert len(pub) == 65 and pub[0] == 4
    assert keys.pub_bytes(k.public_key()) == pub
    import hashlib
    assert keys.kid_of(pub) == hashlib.sha256(pub).digest()[:4]
    p = tmp_path / "k.pem"
    keys.save_private_pem(p, k)
    assert (p.stat().st_mode & 0o777) == 0o600
    assert keys.pub_bytes(keys.load_private_pem(p)) == pub


# ------------------------------------------------------------------------ credential

ACCESS_LABEL = bytes.fromhex("20")  # CBOR nint -1: the one access claim label (1 byte)


def test_credential_layout_and_claims():
    issuer, rider, kid, cred = typical_credential(gates=[7, 9], cap=2500, iat=T0 - 5, iss="offgate-demo",
                                                  sub="acct-0001", nbf=T0)
    assert cred[0] == 0x84  # untagged: a bare 4-element array, no 0xd2 (tag 18)
    arr = cbor2.loads(cred)
    assert isinstance(arr, list) and len(arr) == 4
    prot, unprot, payload, sig = arr
    assert prot == bytes.fromhex("a201260444") + kid  # {1: -7, 4: kid (4 bytes)}, nothing else
    assert cbor2.loads(prot) == {1: -7, 4: kid}
    assert unprot == {}
    assert len(sig) == 64
    claims = cbor2.loads(payload)
    assert list(claims) == [1, 2, 4, 5, 6, 7, 8, -1]
    assert claims[1] == "offgate-demo" and claims[2] == "acct-0001"
    assert (claims[4], claims[5], claims[6]) == (T0 + 86400, T0, T0 - 5)
    assert isinstance(claims[7], bytes) and len(claims[7]) == 8
    ck = claims[8][1]
    assert set(claims[8]) == {1}
    assert ck[1] == 2 and ck[-1] == 1 and ck[-2] == keys.pub_bytes(rider)[1:33] and isinstance(ck[-3], bool)
    # zones / gates / product / cap live in ONE map under -1, in key order 1, 2, 3, 4
    access = claims[-1]
    assert list(access) == [1, 2, 3, 4]
    assert access == {1: [1, 2], 2: [7, 9], 3: 1, 4: 2500}
    assert not {-65537, -65538, -65539, -65540, -65541, -65542} & set(claims)
    assert payload.endswith(ACCESS_LABEL + cbor2.dumps(access))
    # the payload is exactly the canonical encoding of that map (no extras, definite lengths)
    assert payload == cbor2.dumps(claims)


def test_credential_optional_claims_absent():
    _, _, _, cred = typical_credential()
    claims = credential_claims(cred)
    assert list(claims) == [4, 7, 8, -1]  # compact: no iss, sub, nbf, iat by default
    assert claims[-1] == {1: [1, 2], 3: 1} and list(claims[-1]) == [1, 3]
    c = formats.parse_credential(cred)
    assert "iat" not in c and "gates" not in c and "cap" not in c
    assert "access" not in c and "unknown_claims" not in c  # flattened, not passed through
    assert c["zones"] == [1, 2] and c["product"] == 1


def test_credential_iat_optional():
    issuer, rider = keys.generate(), keys.generate()
    cti = bytes(range(8))
    _, _, _, without = typical_credential(issuer, rider, cti=cti)
    _, _, _, with_iat = typical_credential(issuer, rider, cti=cti, iat=T0)
    _, _, _, explicit_none = typical_credential(issuer, rider, cti=cti, iat=None)
    assert len(with_iat) - len(without) == 6  # key 0x06 + 0x1a + 4-byte uint
    assert credential_claims(without) == credential_claims(explicit_none)
    cw = credential_claims(with_iat)
    assert cw[6] == T0 and list(cw) == [4, 6, 7, 8, -1]
    ipub = keys.pub_bytes(issuer)
    assert formats.parse_credential(with_iat, ipub)["iat"] == T0
    assert "iat" not in formats.parse_credential(without, ipub)
    # 0 is a value, not "absent"
    _, _, _, zero = typical_credential(issuer, rider, iat=0)
    assert credential_claims(zero)[6] == 0 and formats.parse_credential(zero, ipub)["iat"] == 0
    for bad in (-1, True, "x"):
        with pytest.raises(ValueError):
            typical_credential(issuer, rider, iat=bad)


def test_credential_round_trip_and_cross_checks():
    issuer, rider, kid, cred = typical_credential(gates=[3], cap=0)
    ipub = keys.pub_bytes(issuer)
    c = formats.parse_credential(cred, ipub)
    assert c["verified"] and c["kid"] == kid and c["alg"] == -7 and c["issuer_pub65"] == ipub
    assert "iss" not in c and "sub" not in c
    assert (c["nbf"], c["exp"]) == (None, T0 + 86400)
    assert c["zones"] == [1, 2] and c["gates"] == [3] and c["product"] == 1 and c["cap"] == 0
    assert c["rider_pub65"] == keys.pub_bytes(rider) and c["cnf_compressed"]
    assert c["signature"] == sign1_parts(cred)[3]
    # cwt, directly (it needs the tag to know the message type; the tag is not signed)
    assert COSE.new().decode(b"\xd2" + cred, cwt_pub(ipub, kid)) == sign1_parts(cred)[2]
    # pyca/cryptography over the Sig_structure
    crypto_verify_sign1(cred, ipub)
    # a list of trust keys works too (first has another kid)
    other = keys.pub_bytes(keys.generate())
    assert formats.parse_credential(cred, [other, ipub])["issuer_pub65"] == ipub
    with pytest.raises(ValueError):
        formats.parse_credential(cred, [])


def test_credential_tagged_and_untagged_accepted():
    issuer, rider, kid, cred = typical_credential()
    ipub = keys.pub_bytes(issuer)
    tagged = b"\xd2" + cred
    t = cbor2.loads(tagged)
    assert isinstance(t, cbor2.CBORTag) and t.tag == 18 and cbor2.dumps(t.value) == cred
    a, b = formats.parse_credential(cred, ipub), formats.parse_credential(tagged, ipub)
    assert a["verified"] and b["verified"] and a == b
    crypto_verify_sign1(tagged, ipub)
    # tampering is caught in both forms
    for msg in (cred, tagged):
        bad = bytearray(msg)
        bad[-1] ^= 0x80
        with pytest.raises(ValueError, match="signature"):
            formats.parse_credential(bytes(bad), ipub)
    # any other tag is not a COSE_Sign1 (17 = COSE_Mac0, 98 = COSE_Sign, 61 = CWT)
    for tag in (17, 98, 61):
        with pytest.raises(ValueError, match="tag"):
            formats.parse_credential(cbor2.dumps(cbor2.CBORTag(tag, cbor2.loads(cred))))
    # a code may carry the tagged form; the gate-side parser still accepts and verifies it
    code = formats.make_auth_code(rider, tagged, iat=T0, ctr=1)
    got = formats.parse_auth_code(code, issuer_pub65=ipub)
    assert got["verified"] and got["credential"]["verified"] and got["cred"] == tagged


def test_credential_made_independently_from_spec():
    """A credential written by hand from protocol.md (cbor2 + pyca, no formats/cwt) parses and verifies."""
    issuer, rider = keys.generate(), keys.generate()
    ipub = keys.pub_bytes(issuer)
    kid = keys.kid_of(ipub)
    for iat, access in ((None, {1: [1, 2], 3: 1}), (T0 - 60, {1: [5], 2: [10, 11], 3: 7, 4: 1234})):
        claims = hand_claims(rider, iat=iat, access=access)
        for tagged in (False, True):
            cred = pyca_sign1(issuer, {1: -7, 4: kid}, claims, tagged)
            c = formats.parse_credential(cred, ipub)
            assert c["verified"] and c["kid"] == kid
            assert c["zones"] == access[1] and c["product"] == access[3]
            assert c.get("gates") == access.get(2) and c.get("cap") == access.get(4)
            assert c.get("iat") == iat and ("iat" in c) == (iat is not None)
            assert c["rider_pub65"] == keys.pub_bytes(rider) and c["cti"] == bytes(range(8))
    # and formats produces byte-identical payloads for the same claims
    _, _, _, ours = typical_credential(issuer, rider, cti=bytes(range(8)), gates=[10, 11], zones=[5],
                                       product=7, cap=1234, iat=T0 - 60)
    assert sign1_parts(ours)[2] == cbor2.dumps(hand_claims(rider, iat=T0 - 60,
                                                           access={1: [5], 2: [10, 11], 3: 7, 4: 1234}))
    assert sign1_parts(ours)[0] == cbor2.dumps({1: -7, 4: kid})


def test_credential_kid_in_unprotected_header():
    issuer, rider = keys.generate(), keys.generate()
    ipub = keys.pub_bytes(issuer)
    kid = keys.kid_of(ipub)
    cred = pyca_sign1(issuer, {1: -7}, hand_claims(rider), False, unprotected={4: kid})
    c = formats.parse_credential(cred, [keys.pub_bytes(keys.generate()), ipub])
    assert c["verified"] and c["kid"] == kid and c["issuer_pub65"] == ipub


@pytest.mark.parametrize("access, needle", [
    (None, "access"),                                   # claim missing entirely
    ([1, 2], "access"),                                 # an array is not the access map
    (7, "access"),
    ({3: 1}, "zones"),                                  # zones missing
    ({1: [1, 2]}, "product"),                           # product missing
    ({1: [], 3: 1}, "zones"),
    ({1: [1, -2], 3: 1}, "zones"),
    ({1: "12", 3: 1}, "zones"),
    ({1: [1], 3: -1}, "product"),
    ({1: [1], 3: True}, "product"),
    ({1: [1], 2: [], 3: 1}, "gates"),
    ({1: [1], 2: ["a"], 3: 1}, "gates"),
    ({1: [1], 3: 1, 4: -5}, "cap"),
    ({1: [1], 3: 1, 4: "100"}, "cap"),
])
def test_credential_access_claim_rejections(access, needle):
    issuer, rider = keys.generate(), keys.generate()
    ipub = keys.pub_bytes(issuer)
    claims = hand_claims(rider)
    if access is None:
        del claims[-1]
    else:
        claims[-1] = access
    cred = pyca_sign1(issuer, {1: -7, 4: keys.kid_of(ipub)}, claims, False)  # validly signed
    for trust in (None, ipub):
        with pytest.raises(ValueError, match=needle):
            formats.parse_credential(cred, trust)


def test_credential_old_four_claim_layout_rejected():
    """Older layouts (-65537..-65540 as separate claims, or the access map under -65537) are refused."""
    issuer, rider = keys.generate(), keys.generate()
    ipub = keys.pub_bytes(issuer)
    claims = hand_claims(rider, iat=T0)
    del claims[-1]
    claims[-65537] = [1, 2]
    claims[-65538], claims[-65539], claims[-65540] = [7], 1, 2500
    cred = pyca_sign1(issuer, {1: -7, 4: keys.kid_of(ipub)}, claims, True)
    with pytest.raises(ValueError, match="access"):
        formats.parse_credential(cred, ipub)


def test_credential_unknown_claims_reported():
    issuer, rider = keys.generate(), keys.generate()
    ipub = keys.pub_bytes(issuer)
    claims = hand_claims(rider)
    claims.update({-65538: [7], 3: "aud"})
    cred = pyca_sign1(issuer, {1: -7, 4: keys.kid_of(ipub)}, claims, False)
    c = formats.parse_credential(cred, ipub)
    assert c["verified"] and c["unknown_claims"] == {-65538: [7], 3: "aud"}
    assert "gates" not in c and c["zones"] == [1, 2]  # a stray old label does not leak into access


def test_credential_rejections():
    issuer, rider, kid, cred = typical_credential()
    ipub = keys.pub_bytes(issuer)
    bad = bytearray(cred)
    bad[-1] ^= 1
    with pytest.raises(ValueError):
        formats.parse_credential(bytes(bad), ipub)
    with pytest.raises(InvalidSignature):
        crypto_verify_sign1(bytes(bad), ipub)
    # a flipped bit in the access map (zones [1, 2] -> [1, 3]) breaks the issuer signature
    i = cred.index(ACCESS_LABEL + bytes.fromhex("a201820102"))
    bad = bytearray(cred)
    bad[i + 5] = 0x03
    assert formats.parse_credential(bytes(bad))["zones"] == [1, 3]
    with pytest.raises(ValueError, match="signature"):
        formats.parse_credential(bytes(bad), ipub)
    with pytest.raises(ValueError):
        formats.parse_credential(cred, keys.pub_bytes(keys.generate()))
    # another key with the same kid (forged header) must still fail
    forger = keys.generate()
    forged = formats.make_credential(forger, kid, iss="x", sub="y", cti=b"\0" * 8, nbf=1, exp=2,
                                     rider_pub65=keys.pub_bytes(rider), zones=[1])
    with pytest.raises(ValueError):
        formats.parse_credential(forged, ipub)
    # wrong alg in protected header
    parts = sign1_parts(cred)
    parts[0] = cbor2.dumps({1: -35, 4: kid})
    with pytest.raises(ValueError, match="alg"):
        formats.parse_credential(cbor2.dumps(parts))
    # alg only in the unprotected header is a rejection too
    parts = sign1_parts(cred)
    parts[0], parts[1] = cbor2.dumps({4: kid}), {1: -7}
    with pytest.raises(ValueError, match="alg"):
        formats.parse_credential(cbor2.dumps(parts))
    # detached payload, wrong arity, not CBOR
    parts = sign1_parts(cred)
    parts[2] = None
    with pytest.raises(ValueError, match="payload"):
        formats.parse_credential(cbor2.dumps(parts))
    with pytest.raises(ValueError, match="4 elements"):
        formats.parse_credential(cbor2.dumps(sign1_parts(cred)[:3]))
    with pytest.raises(ValueError):
        formats.parse_credential(b"\x00")
    with pytest.raises(ValueError):
        formats.parse_credential(b"\xff")


def test_make_credential_input_checks():
    k = keys.generate()
    base = dict(iss="i", sub="s", cti=b"\1" * 8, nbf=1, exp=2, rider_pub65=keys.pub_bytes(k), zones=[1])
    kid = keys.kid_of(keys.pub_bytes(k))
    formats.make_credential(k, kid, **base)  # the base is fine without iat
    for bad in ({"zones": []}, {"zones": [-1]}, {"cti": b"\1" * 7}, {"nbf": -1}, {"exp": 1},
                {"product": True}, {"product": -1}, {"iat": -1}, {"gates": []}, {"gates": [1.5]},
                {"cap": -1}, {"iss": 5}):
        with pytest.raises(ValueError):
            formats.make_credential(k, kid, **{**base, **bad})
    with pytest.raises(ValueError):
        formats.make_credential(k, b"short", **base)


def _keys_with_both_y_parities():
    seen = {}
    while len(seen) < 2:
        k = keys.generate()
        seen.setdefault(keys.pub_bytes(k)[-1] & 1, k)
    return seen[0], seen[1]


@pytest.mark.parametrize("compressed", [True, False])
def test_cnf_compressed_and_uncompressed(compressed):
    for rider in _keys_with_both_y_parities():
        issuer, _, kid, cred = typical_credential(rider=rider, compressed=compressed)
        ck = credential_claims(cred)[8][1]
        pub = keys.pub_bytes(rider)
        if compressed:
            assert ck[-3] is bool(pub[-1] & 1)  # sign bit of y: True = odd (SEC1 0x03)
        else:
            assert ck[-3] == pub[33:]
        c = formats.parse_credential(cred, keys.pub_bytes(issuer))
        assert c["rider_pub65"] == pub and c["cnf_compressed"] is compressed
        code = formats.make_auth_code(rider, cred, iat=T0 + 5, ctr=3)
        a = formats.parse_auth_code(code, issuer_pub65=keys.pub_bytes(issuer))
        assert a["verified"] and a["credential"]["verified"]


def test_compressed_is_smaller():
    issuer, rider, _, c1 = typical_credential(compressed=True)
    _, _, _, c2 = typical_credential(issuer, rider, compressed=False)
    assert len(c2) - len(c1) == 32 + 1  # bstr(32) vs a one-byte bool


# ------------------------------------------------------------------------ authorization code

def test_auth_code_layout_round_trip_and_cross_check():
    issuer, rider, kid, cred = typical_credential()
    code = formats.make_auth_code(rider, cred, iat=T0 + 60, ctr=42)
    assert code[0] == 0x84  # untagged by default: the OG1: prefix says what it is (protocol.md §3)
    assert formats.make_auth_code(rider, cred, iat=T0 + 60, ctr=42, tagged=True)[0] == 0xD2
    prot, unprot, payload, sig = cbor2.loads(code)
    assert prot == bytes.fromhex("a10126") and unprot == {} and len(sig) == 64
    auth = cbor2.loads(payload)
    assert list(auth) == [1, 2, 3]  # {1: cred, 2: iat, 3: ctr}, one-byte keys
    assert auth[1] == cred and auth[2] == T0 + 60 and auth[3] == 42
    assert auth[1][0] == 0x84  # the embedded credential is the untagged one, byte for byte
    assert payload == cbor2.dumps({1: cred, 2: T0 + 60, 3: 42})
    assert payload[:4] == bytes([0xA3, 0x01, 0x58, len(cred)])
    assert payload.endswith(bytes.fromhex("021a") + (T0 + 60).to_bytes(4, "big") + bytes.fromhex("03182a"))
    assert not {-65541, 6, -65542} & set(auth)
    a = formats.parse_auth_code(code)
    assert a["verified"] and a["iat"] == T0 + 60 and a["ctr"] == 42 and a["cred"] == cred
    assert a["alg"] == -7 and a["signature"] == sig
    assert "sub" not in a["credential"] and a["credential"]["zones"] == [1, 2]
    assert a["credential"]["verified"] is False  # no issuer key given
    assert formats.parse_auth_code(code, issuer_pub65=keys.pub_bytes(issuer))["credential"]["verified"]
    rpub = keys.pub_bytes(rider)
    COSE.new().decode(b"\xd2" + code, cwt_pub(rpub))  # cwt needs the tag (unsigned) to know the type
    crypto_verify_sign1(code, rpub)


def test_auth_code_made_independently_from_spec():
    issuer, rider, kid, cred = typical_credential()
    for tagged in (True, False):  # the host parser takes either form
        code = pyca_sign1(rider, {1: -7}, {1: cred, 2: T0 + 1, 3: 9}, tagged)
        a = formats.parse_auth_code(code, issuer_pub65=keys.pub_bytes(issuer))
        assert a["verified"] and a["credential"]["verified"] and (a["iat"], a["ctr"]) == (T0 + 1, 9)
    ours = formats.make_auth_code(rider, cred, iat=T0, ctr=1, tagged=True)
    assert formats.parse_auth_code(ours[1:])["verified"]  # untagged form of our own code


CRED = object()  # placeholder for the real credential bytes


@pytest.mark.parametrize("payload, needle", [
    ({-65541: CRED, 6: T0, -65542: 1}, "missing"),  # the pre-trim layout
    ({2: T0, 3: 1}, "missing cred"),
    ({1: CRED, 3: 1}, "missing iat"),
    ({1: CRED, 2: T0}, "missing ctr"),
    ({1: CRED, 2: T0, 3: 0}, "ctr"),
    ({1: CRED, 2: T0, 3: 2 ** 32}, "ctr"),
    ({1: CRED, 2: -1, 3: 1}, "iat"),
    ({1: "text", 2: T0, 3: 1}, "cred"),
    ([1, 2, 3], "map"),
])
def test_auth_code_payload_rejections(payload, needle):
    issuer, rider, kid, cred = typical_credential()
    if isinstance(payload, dict):
        payload = {k: cred if v is CRED else v for k, v in payload.items()}
    code = pyca_sign1(rider, {1: -7}, payload, True)  # validly signed by the cnf key
    with pytest.raises(ValueError, match=needle):
        formats.parse_auth_code(code)


def test_auth_code_rejections():
    issuer, rider, kid, cred = typical_credential()
    # signed by someone other than the cnf key
    code = formats.make_auth_code(keys.generate(), cred, iat=T0, ctr=1)
    with pytest.raises(ValueError):
        formats.parse_auth_code(code)
    with pytest.raises(ValueError):
        formats.parse_auth_code(code[1:])
    assert formats.parse_auth_code(code, verify=False)["verified"] is False
    # tampered payload: each of iat and ctr (they sit just before the 66-byte signature)
    good = formats.make_auth_code(rider, cred, iat=T0, ctr=1)
    assert formats.parse_auth_code(good)["verified"]
    for off, flip in ((-67, 0x02), (-70, 0x01)):  # ctr value 1 -> 3, a byte of iat
        bad = bytearray(good)
        bad[off] ^= flip
        with pytest.raises(ValueError, match="signature"):
            formats.parse_auth_code(bytes(bad))
    # the credential inside was tampered with: the rider signature breaks first
    i = good.index(ACCESS_LABEL)
    bad = bytearray(good)
    bad[i + 9] ^= 0x01
    with pytest.raises(ValueError):
        formats.parse_auth_code(bytes(bad))
    # a wrong issuer key for the embedded credential
    with pytest.raises(ValueError):
        formats.parse_auth_code(good, issuer_pub65=keys.pub_bytes(keys.generate()))
    for ctr in (0, 2 ** 32, -1, True):
        with pytest.raises(ValueError):
            formats.make_auth_code(rider, cred, iat=T0, ctr=ctr)
    for iat in (-1, None):
        with pytest.raises(ValueError):
            formats.make_auth_code(rider, cred, iat=iat, ctr=1)
    assert formats.parse_auth_code(formats.make_auth_code(rider, cred, iat=T0, ctr=2 ** 32 - 1))["ctr"] == 2 ** 32 - 1

# ------------------------------------------------------------------------ QR text

def test_qr_text_round_trip():
    issuer, rider, kid, cred = typical_credential()
    code = formats.make_auth_code(rider, cred, iat=T0, ctr=1)
    text = formats.qr_text(code)
    assert text.startswith("OG1:") and set(text) <= QR_ALNUM
    assert formats.code_from_qr_text(text) == code
    for end in ("\r", "\n", "\r\n"):
        assert formats.code_from_qr_text(text + end) == code
    with pytest.raises(ValueError):
        formats.code_from_qr_text("XX1:" + text[4:])
    with pytest.raises(ValueError):
        formats.code_from_qr_text("OG1:" + "A")  # dangling single character


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300))
def test_qr_text_base45_property(data):
    t = formats.qr_text(data)
    assert set(t) <= QR_ALNUM and formats.code_from_qr_text(t) == data


# ------------------------------------------------------------------------ gate files

def test_trust_store_layout():
    k1, k2 = keys.generate(), keys.generate()
    entries = [{"kid": keys.kid_of(keys.pub_bytes(k)), "iss": "offgate-demo", "pub": keys.pub_bytes(k),
                "nbf": T0 + i, "exp": T0 + 1000 + i, "extra": "ignored"} for i, k in enumerate((k1, k2))]
    data = formats.trust_store_bytes(entries)
    m = cbor2.loads(data)
    assert list(m) == ["v", "keys"] and m["v"] == 1 and len(m["keys"]) == 2
    for e, got in zip(entries, m["keys"]):
        assert list(got) == ["kid", "iss", "pub", "nbf", "exp"]
        assert got == {k: e[k] for k in ("kid", "iss", "pub", "nbf", "exp")}
    assert data == cbor2.dumps({"v": 1, "keys": [{k: e[k] for k in ("kid", "iss", "pub", "nbf", "exp")}
                                                 for e in entries]})
    assert formats.parse_trust_store(data) == m["keys"]
    bad = dict(entries[0], kid=b"\0" * 4)
    with pytest.raises(ValueError):
        formats.trust_store_bytes([bad])


def test_deny_list_layout():
    ids = [bytes([9] * 8), bytes([1] * 8), bytes([5] * 8), bytes([1] * 8)]
    data = formats.deny_list_bytes(ids)
    assert data[:12] == b"OGDL\x01\x00\x00\x00" + struct.pack(">I", 3)
    assert data[12:] == bytes([1] * 8) + bytes([5] * 8) + bytes([9] * 8)
    assert formats.deny_list_bytes([]) == b"OGDL\x01\x00\x00\x00\x00\x00\x00\x00"
    assert formats.parse_deny_list(data) == sorted(set(ids))
    with pytest.raises(ValueError):
        formats.deny_list_bytes([b"short"])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.binary(min_size=8, max_size=8), max_size=40))
def test_deny_list_sorted_unique_property(ids):
    data = formats.deny_list_bytes(ids)
    n = struct.unpack(">I", data[8:12])[0]
    body = [data[12 + 8 * i: 20 + 8 * i] for i in range(n)]
    assert len(data) == 12 + 8 * n
    assert body == sorted(set(ids))
