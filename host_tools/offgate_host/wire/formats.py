"""offgate wire formats (docs/protocol.md): credential CWT, authorization code, QR text,
trust store and deny list.

COSE_Sign1 signing and verification go through the `cwt` library (ES256); claim maps are
built and read with cbor2. This is deliberately an independent implementation from the
firmware's hand-written decoders, so the two can cross-check each other.
"""
import hashlib
import struct
import zlib

import base45
import cbor2
from cryptography.hazmat.primitives.asymmetric import ec
from cwt import COSE, COSEKey

from . import keys as _keys

# COSE / CWT labels
ALG_ES256 = -7
H_ALG, H_KID = 1, 4
COSE_SIGN1_TAG = 18

C_ISS, C_SUB, C_EXP, C_NBF, C_IAT, C_CTI, C_CNF = 1, 2, 4, 5, 6, 7, 8
# One claim holds the access rights as a small map, under a 1-byte label: every byte counts
# toward the QR version (docs/protocol.md §4). -1 is unregistered in the IANA CWT registry; the
# credential is read only by offgate gates (a closed system), which is why it may take it.
C_ACCESS = -1
C_ACCESS_V1 = -65537  # the first label of the same claim: still read, so credentials issued before
                      # the compaction stay valid until they expire (never written any more)
ACC_ZONES, ACC_GATES, ACC_PRODUCT, ACC_CAP = 1, 2, 3, 4
# The authorization code payload is offgate's own map, not a claims set: one-byte keys.
A_CRED, A_IAT, A_CTR = 1, 2, 3

CLAIM_NAMES = {C_ISS: "iss", C_SUB: "sub", C_EXP: "exp", C_NBF: "nbf", C_IAT: "iat", C_CTI: "cti",
               C_CNF: "cnf", C_ACCESS: "access"}
ACCESS_NAMES = {ACC_ZONES: "zones", ACC_GATES: "gates", ACC_PRODUCT: "product", ACC_CAP: "cap"}
AUTH_NAMES = {A_CRED: "cred", A_IAT: "iat", A_CTR: "ctr"}

QR_PREFIX = "OG1:"
DENY_MAGIC = b"OGDL"
DENY_VERSION = 1
DENY_HEADER_LEN = 12
TRUST_VERSION = 1
# Gate ids, zones and products: kept to a MicroPython small int on the 32-bit ESP32 (no heap
# allocation when the gate compares them).
MAX_ID = 2 ** 30 - 1
CTR_MAX = 2 ** 32 - 1
UINT64_MAX = 2 ** 64 - 1


# --------------------------------------------------------------------------- helpers

def is_uint(v, maximum=UINT64_MAX):
    """True for an int (not a bool) in 0..maximum."""
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= maximum


def _need_uint(name, v, maximum=UINT64_MAX):
    if not is_uint(v, maximum):
        raise ValueError("%s must be an unsigned integer <= %d, got %r" % (name, maximum, v))
    return v


def need_bytes(name, v, length=None):
    """`v` as bytes; ValueError naming `name` if it is not bytes (or not `length` bytes long)."""
    if not isinstance(v, (bytes, bytearray)):
        raise ValueError("%s must be bytes, got %s" % (name, type(v).__name__))
    v = bytes(v)
    if length is not None and len(v) != length:
        raise ValueError("%s must be %d bytes, got %d" % (name, length, len(v)))
    return v


def _need_uint_list(name, v, allow_empty=False):
    try:
        v = list(v)
    except TypeError:
        raise ValueError("%s must be a list of unsigned integers" % name) from None
    if not v and not allow_empty:
        raise ValueError("%s must not be empty" % name)
    for i in v:
        _need_uint(name + " entry", i)
    return v


def _signing_cose_key(priv: ec.EllipticCurvePrivateKey):
    if not isinstance(priv, ec.EllipticCurvePrivateKey) or priv.curve.name != "secp256r1":
        raise ValueError("signing key must be a P-256 private key")
    nums = priv.private_numbers()
    pub = nums.public_numbers
    return COSEKey.new({1: 2, 3: ALG_ES256, -1: 1,
                        -2: pub.x.to_bytes(32, "big"), -3: pub.y.to_bytes(32, "big"),
                        -4: nums.private_value.to_bytes(32, "big")})


def _verify_cose_key(pub: ec.EllipticCurvePublicKey, kid=None):
    pn = pub.public_numbers()
    params = {1: 2, 3: ALG_ES256, -1: 1, -2: pn.x.to_bytes(32, "big"), -3: pn.y.to_bytes(32, "big")}
    if kid:
        params[2] = kid
    return COSEKey.new(params)


def sign1(priv, protected: dict, payload: bytes, tagged=True) -> bytes:
    """COSE_Sign1 (RFC 9052 §4.2) of `payload` with ES256 by P-256 key `priv`, exactly the
    `protected` headers given; tag 18 unless tagged=False."""
    # COSE.new() defaults: no alg/kid auto-inclusion, so the headers are exactly what we pass.
    ctx = COSE.new()
    msg = ctx.encode_and_sign(payload, _signing_cose_key(priv), protected=protected, unprotected={})
    if tagged:
        return msg
    # The credential travels inside the code, where its place says what it is: drop the tag
    # (0xd2, one byte) rather than re-encode anything the signature covers.
    if msg[:1] != b"\xd2":
        raise AssertionError("cwt returned an unexpected COSE_Sign1 encoding")
    return msg[1:]


def split_sign1(data: bytes, what: str):
    """Structural decode of a COSE_Sign1, tagged (18) or not -> (array, protected dict, unprotected, payload)."""
    if not isinstance(data, (bytes, bytearray)):
        raise ValueError("%s must be bytes" % what)
    try:
        obj = cbor2.loads(bytes(data))
    except Exception as e:
        raise ValueError("%s is not valid CBOR: %s" % (what, e)) from None
    if isinstance(obj, cbor2.CBORTag):
        if obj.tag != COSE_SIGN1_TAG:
            raise ValueError("%s: tag %d is not COSE_Sign1 (18)" % (what, obj.tag))
        obj = obj.value
    v = obj
    if not isinstance(v, list) or len(v) != 4:
        raise ValueError("%s: COSE_Sign1 must have exactly 4 elements" % what)
    prot_b, unprot, payload, sig = v
    if not isinstance(prot_b, bytes) or not isinstance(unprot, dict):
        raise ValueError("%s: bad COSE_Sign1 headers" % what)
    if not isinstance(payload, bytes):
        raise ValueError("%s: payload must be a bstr (detached payloads are not accepted)" % what)
    if not isinstance(sig, bytes):
        raise ValueError("%s: signature must be a bstr" % what)
    try:
        prot = cbor2.loads(prot_b) if prot_b else {}
    except Exception as e:
        raise ValueError("%s: protected header is not valid CBOR: %s" % (what, e)) from None
    if not isinstance(prot, dict):
        raise ValueError("%s: protected header must be a map" % what)
    if prot.get(H_ALG) != ALG_ES256:
        raise ValueError("%s: protected alg must be ES256 (-7), got %r" % (what, prot.get(H_ALG)))
    return v, prot, unprot, payload


def cwt_verify(data: bytes, pub, kid, what: str):
    """The payload of tagged COSE_Sign1 `data` once its ES256 signature verifies with `pub`
    (kid `kid`); ValueError naming `what` otherwise."""
    data = bytes(data)
    if data[:1] != b"\xd2":
        # cwt needs the tag to know the message type; the tag is not signed, so adding it back
        # verifies exactly the same Sig_structure
        data = b"\xd2" + data
    try:
        COSE.new().decode(data, _verify_cose_key(pub, kid))
    except Exception as e:
        raise ValueError("%s: signature verification failed (%s)" % (what, type(e).__name__)) from None


def verify_sign1(data: bytes, pub65: bytes, what="message") -> bytes:
    """Verify an ES256 COSE_Sign1 (tagged or not) with the 65-byte key; returns its payload."""
    _, prot, _, payload = split_sign1(data, what)
    cwt_verify(data, _keys.pub_from_bytes(bytes(pub65)), prot.get(H_KID), what)
    return payload


def decode_map(payload: bytes, what: str) -> dict:
    """CBOR `payload` that must be a map; ValueError naming `what` otherwise."""
    try:
        m = cbor2.loads(payload)
    except Exception as e:
        raise ValueError("%s payload is not valid CBOR: %s" % (what, e)) from None
    if not isinstance(m, dict):
        raise ValueError("%s payload must be a CBOR map" % what)
    return m


# --------------------------------------------------------------------------- credential

def cnf_key(rider_pub65, compressed=True) -> dict:
    """COSE_Key {1: 2, -1: 1, -2: x, -3: y} with y a 32-byte bstr or (compressed) the sign bit."""
    pub65 = _keys.pub_bytes(rider_pub65)
    x, y = pub65[1:33], pub65[33:65]
    return {1: 2, -1: 1, -2: x, -3: bool(y[-1] & 1) if compressed else y}


def make_credential(issuer_key, kid, *, cti, exp, rider_pub65, zones, nbf=None, iss=None, sub=None,
                    iat=None, gates=None, product=0, cap=None, compressed=True) -> bytes:
    """Issuer-signed credential: untagged COSE_Sign1, protected {1: -7, 4: kid}, unprotected {}.

    The compact form (docs/protocol.md §2) leaves out iss (the kid names the issuer), sub (the back
    office finds the account by cti; the QR does not show it to anyone nearby) and nbf (a credential
    valid from issuance needs none): pass them only for a future start (nbf) or for tests."""
    kid = need_bytes("kid", kid, _keys.KID_LEN)
    if iss is not None and not isinstance(iss, str) or sub is not None and not isinstance(sub, str):
        raise ValueError("iss and sub must be text")
    claims = {}
    if iss is not None:
        claims[C_ISS] = iss
    if sub is not None:
        claims[C_SUB] = sub
    claims[C_EXP] = _need_uint("exp", exp)
    if nbf is not None:
        claims[C_NBF] = _need_uint("nbf", nbf)
    if iat is not None:  # optional: nbf already says when it starts, and it costs QR bytes
        claims[C_IAT] = _need_uint("iat", iat)
    claims[C_CTI] = need_bytes("cti", cti, 8)
    claims[C_CNF] = {1: cnf_key(rider_pub65, compressed)}
    if nbf is not None and exp <= nbf:
        raise ValueError("exp must be after nbf")
    access = {ACC_ZONES: _need_uint_list("zones", zones)}
    if gates is not None:
        access[ACC_GATES] = _need_uint_list("gates", gates)
    access[ACC_PRODUCT] = _need_uint("product", product)
    if cap is not None:
        access[ACC_CAP] = _need_uint("cap", cap)
    claims[C_ACCESS] = access
    return sign1(issuer_key, {H_ALG: ALG_ES256, H_KID: kid}, cbor2.dumps(claims), tagged=False)


def _cnf_pub(cnf) -> ec.EllipticCurvePublicKey:
    if not isinstance(cnf, dict) or not isinstance(cnf.get(1), dict):
        raise ValueError("cnf must be {1: COSE_Key}")
    ck = cnf[1]
    if ck.get(1) != 2 or ck.get(-1) != 1:
        raise ValueError("cnf key must be EC2 (kty 2) on P-256 (crv 1)")
    x, y = ck.get(-2), ck.get(-3)
    if not isinstance(x, bytes):
        raise ValueError("cnf key x must be a bstr")
    return _keys.pub_from_xy(x, y)


def parse_credential(cred_bytes, issuer_pub65=None) -> dict:
    """Decode a credential; claims get readable names. If issuer_pub65 is given (one 65-byte key or
    a list of them), the issuer signature is verified with cwt and ValueError raised on failure."""
    v, prot, unprot, payload = split_sign1(cred_bytes, "credential")
    kid = prot.get(H_KID, unprot.get(H_KID))
    if kid is not None and not isinstance(kid, bytes):
        raise ValueError("credential: kid must be a bstr")
    raw = decode_map(payload, "credential")
    if C_ACCESS_V1 in raw:
        if C_ACCESS in raw:
            raise ValueError("credential: access claim given under both labels")
        raw[C_ACCESS] = raw.pop(C_ACCESS_V1)
    unknown = [k for k in raw if k not in CLAIM_NAMES]
    out = {CLAIM_NAMES[k]: val for k, val in raw.items() if k in CLAIM_NAMES}
    access = out.pop("access", None)
    if not isinstance(access, dict):
        raise ValueError("credential: missing access claim %d" % C_ACCESS)
    out.update({ACCESS_NAMES[k]: val for k, val in access.items() if k in ACCESS_NAMES})
    for name in ("exp", "cti", "cnf", "zones", "product"):
        if name not in out:
            raise ValueError("credential: missing claim %s" % name)
    for name in ("iss", "sub"):
        if name in out and not isinstance(out[name], str):
            raise ValueError("credential: %s must be text" % name)
    out.setdefault("nbf", None)  # absent: valid from issuance
    for name in ("exp", "nbf", "iat", "product"):
        if out.get(name) is not None:
            _need_uint("credential " + name, out[name])
    need_bytes("credential cti", out["cti"], 8)
    _need_uint_list("credential zones", out["zones"])
    if "gates" in out:
        _need_uint_list("credential gates", out["gates"])
    if "cap" in out:
        _need_uint("credential cap", out["cap"])
    rider_pub = _cnf_pub(out["cnf"])
    out["rider_pub65"] = _keys.pub_bytes(rider_pub)
    out["cnf_compressed"] = isinstance(out["cnf"][1][-3], bool)
    out["kid"] = kid
    out["alg"] = prot.get(H_ALG)
    out["signature"] = v[3]
    if unknown:
        out["unknown_claims"] = {k: raw[k] for k in unknown}
    if issuer_pub65 is not None:
        cands = [issuer_pub65] if isinstance(issuer_pub65, (bytes, bytearray)) else list(issuer_pub65)
        if not cands:
            raise ValueError("credential: no issuer key to verify with")
        matching = [p for p in cands if kid is None or _keys.kid_of(bytes(p)) == kid]
        if not matching:
            raise ValueError("credential: no issuer key with kid %s" % (kid.hex() if kid else "-"))
        last = None
        for p in matching:
            try:
                cwt_verify(cred_bytes, _keys.pub_from_bytes(bytes(p)), kid, "credential")
                out["verified"] = True
                out["issuer_pub65"] = bytes(p)
                break
            except ValueError as e:
                last = e
        else:
            raise last
    else:
        out["verified"] = False
    return out


# --------------------------------------------------------------------------- authorization code

def make_auth_code(rider_key, cred_bytes, *, iat, ctr, tagged=False) -> bytes:
    """Rider-signed authorization code: COSE_Sign1 {1: -7}, payload {1: cred, 2: iat, 3: ctr};
    untagged by default (the `OG1:` prefix says what it is; the tag would cost a QR byte)."""
    cred_bytes = need_bytes("cred", cred_bytes)
    _need_uint("iat", iat)
    if not is_uint(ctr, CTR_MAX) or ctr < 1:
        raise ValueError("ctr must be in 1 .. 2^32-1, got %r" % (ctr,))
    auth = {A_CRED: cred_bytes, A_IAT: iat, A_CTR: ctr}
    return sign1(rider_key, {H_ALG: ALG_ES256}, cbor2.dumps(auth), tagged=tagged)


def parse_auth_code(code_bytes, verify=True, issuer_pub65=None) -> dict:
    """Decode an authorization code. With verify=True the rider signature is checked with the cnf
    key of the embedded credential (ValueError on failure). If issuer_pub65 is given, the embedded
    credential's issuer signature is verified too."""
    v, prot, unprot, payload = split_sign1(code_bytes, "auth code")
    raw = decode_map(payload, "auth code")
    out = {AUTH_NAMES[k]: val for k, val in raw.items() if k in AUTH_NAMES}
    for name in ("cred", "iat", "ctr"):
        if name not in out:
            raise ValueError("auth code: missing %s" % name)
    need_bytes("auth code cred", out["cred"])
    _need_uint("auth code iat", out["iat"])
    if not is_uint(out["ctr"], CTR_MAX) or out["ctr"] < 1:
        raise ValueError("auth code: ctr out of range")
    cred = parse_credential(out["cred"], issuer_pub65)
    out["credential"] = cred
    out["alg"] = prot.get(H_ALG)
    out["signature"] = v[3]
    if verify:
        cwt_verify(code_bytes, _keys.pub_from_bytes(cred["rider_pub65"]), None, "auth code")
    out["verified"] = bool(verify)
    return out


# --------------------------------------------------------------------------- QR text

def qr_text(code_bytes) -> str:
    return QR_PREFIX + base45.b45encode(bytes(code_bytes)).decode("ascii")


def code_from_qr_text(text) -> bytes:
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("ascii", "replace")
    text = text.rstrip("\r\n")
    if not text.startswith(QR_PREFIX):
        raise ValueError("QR text must start with %r" % QR_PREFIX)
    try:
        return base45.b45decode(text[len(QR_PREFIX):])
    except Exception as e:
        raise ValueError("bad base45 in QR text: %s" % e) from None


# --------------------------------------------------------------------------- gate files

def trust_store_bytes(keys, serial=None, issued=None) -> bytes:
    """{"v": 1, "serial": n, "issued": t, "keys": [{"kid", "iss", "pub", "nbf", "exp"}, ...]} (extra
    dict fields ignored; serial and issued, Unix seconds, left out when None)."""
    out = []
    for k in keys:
        pub = need_bytes("pub", k["pub"], 65)
        if pub[0] != 4:
            raise ValueError("pub must be an uncompressed SEC1 point")
        kid = need_bytes("kid", k["kid"], _keys.KID_LEN)
        if kid != _keys.kid_of(pub):
            raise ValueError("kid %s does not match its public key" % kid.hex())
        if not isinstance(k["iss"], str):
            raise ValueError("iss must be text")
        out.append({"kid": kid, "iss": k["iss"], "pub": pub,
                    "nbf": _need_uint("nbf", k["nbf"]), "exp": _need_uint("exp", k["exp"])})
    doc = {"v": TRUST_VERSION}
    if serial is None:
        doc["keys"] = out
        return cbor2.dumps(doc)
    doc["serial"] = _need_uint("serial", serial)
    doc["issued"] = _need_uint("issued", issued or 0)
    doc["keys"] = out
    # integrity at rest: a last entry "crc" = CRC-32 (4-byte uint) of every byte before that entry,
    # the map header counting it (docs/protocol.md §6)
    body = cbor2.dumps(doc)
    body = bytes([body[0] + 1]) + body[1:]
    return body + b"\x63crc\x1a" + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def parse_trust_store(data: bytes) -> list:
    m = cbor2.loads(data)
    if not isinstance(m, dict) or m.get("v") != TRUST_VERSION or not isinstance(m.get("keys"), list):
        raise ValueError("not an offgate trust store (v1)")
    return m["keys"]


def deny_list_bytes(ctis) -> bytes:
    """b"OGDL", version 1, three zero bytes, uint32 BE count, sorted unique 8-byte ids."""
    ids = sorted({need_bytes("cti", c, 8) for c in ctis})
    return DENY_MAGIC + bytes([DENY_VERSION, 0, 0, 0]) + struct.pack(">I", len(ids)) + b"".join(ids)


DENY_V2 = 2
DENY_HEADER2_LEN = 24


def signed_deny_list_bytes(ctis, serial, issued, root_sign, id_bytes=8) -> bytes:
    """A version-2 deny list (docs/protocol.md §6): header (magic, 2, kind 0, id length, count,
    serial, issued, base 0), sorted unique ids (their first `id_bytes` bytes: 8, or 4 .. 7), the
    root signature over SHA-256 of header and ids, CRC-32. `root_sign(payload) -> COSE_Sign1`
    (BackOffice.root_sign)."""
    if id_bytes not in (4, 5, 6, 7, 8):
        raise ValueError("deny list ids are 4 to 8 bytes, not %r" % (id_bytes,))
    ids = sorted({need_bytes("cti", c, 8)[:id_bytes] for c in ctis})
    body = DENY_MAGIC + bytes([DENY_V2, 0, id_bytes % 8, 0]) + struct.pack(">IIII", len(ids), _need_uint("serial", serial),
                                                                _need_uint("issued", issued), 0) + b"".join(ids)
    sig = root_sign(cbor2.dumps({0: "deny", 1: serial, 2: issued, 3: len(ids), 4: hashlib.sha256(body).digest()}))
    out = body + struct.pack(">H", len(sig)) + sig
    return out + struct.pack(">I", zlib.crc32(out) & 0xFFFFFFFF)


def deny_list_info(data: bytes, root_pub65: bytes = None) -> dict:
    """Decode and check a deny list the way the gate does (denylist.check_bytes + the installer's
    signature check): {"version", "serial", "issued", "ids", "signed": True/False/None (no key
    given), "id_bytes" (8, or the prefix length)}. Raises ValueError naming the first fault (bad
    header, length, CRC, order, signature)."""
    data = bytes(data)
    if len(data) < DENY_HEADER_LEN or data[:4] != DENY_MAGIC:
        raise ValueError("not an offgate deny list")
    v = data[4]
    if v == DENY_VERSION:
        ids = parse_deny_list(data)
        return {"version": 1, "serial": 0, "issued": 0, "ids": ids, "signed": False, "id_bytes": 8}
    if v != DENY_V2 or len(data) < DENY_HEADER2_LEN + 6:
        raise ValueError("deny list: unknown version %d or too short" % v)
    if data[5] != 0 or data[7] != 0 or data[6] not in (0, 4, 5, 6, 7):
        raise ValueError("deny list: only full lists (kind 0) of 4- to 8-byte ids are known")
    L = data[6] or 8
    n, serial, issued, base = struct.unpack(">IIII", data[8:24])
    if base != 0:
        raise ValueError("deny list: a full list must have base 0")
    end = DENY_HEADER2_LEN + L * n
    if len(data) < end + 6:
        raise ValueError("deny list: length does not match count %d" % n)
    (slen,) = struct.unpack(">H", data[end:end + 2])
    if len(data) != end + 2 + slen + 4:
        raise ValueError("deny list: length does not match count %d" % n)
    if struct.unpack(">I", data[-4:])[0] != zlib.crc32(data[:-4]) & 0xFFFFFFFF:
        raise ValueError("deny list: CRC mismatch (damaged)")
    ids = [data[DENY_HEADER2_LEN + L * i:DENY_HEADER2_LEN + L * i + L] for i in range(n)]
    for i in range(1, n):
        if ids[i] <= ids[i - 1]:
            raise ValueError("deny list: ids not strictly ascending at %d (damaged or tampered)" % i)
    signed = None
    if root_pub65 is not None:
        try:
            payload = verify_sign1(data[end + 2:end + 2 + slen], root_pub65)
            m = cbor2.loads(payload)
        except Exception as e:
            raise ValueError("deny list: not signed by the root key (%s)" % e) from None
        if not isinstance(m, dict) or m.get(0) != "deny" or m.get(1) != serial or m.get(2) != issued \
                or m.get(3) != n or m.get(4) != hashlib.sha256(data[:end]).digest():
            raise ValueError("deny list: the signature does not cover this header and these ids")
        signed = True
    return {"version": 2, "serial": serial, "issued": issued, "ids": ids, "signed": signed, "id_bytes": L}


DENY_DELTA_HEADER_LEN = 32


def deny_delta_bytes(adds, removes, base: int, new_list: bytes) -> bytes:
    """A deny delta (kind 1, docs/protocol.md §6, firmware/offgate/denydelta.py) from the list
    with serial `base` to the signed full list `new_list` (bytes, version 2): `adds` are the ids
    `new_list` holds and the base does not, `removes` the reverse (stored ids: the list's id
    length). Layout: header (b"OGDL", 2, kind 1, id length as in the list, 0, count a+r, serial,
    issued, base, a, n), the a added ids ascending,
    the r removed ids ascending, then the new list's own signature tail (sig_len, sig) and a CRC-32
    of everything before. Raises ValueError (base not older, an add missing from the new list)."""
    info = deny_list_info(new_list)
    if info["version"] != 2 or not 0 < base < info["serial"]:
        raise ValueError("deny delta: base %d must be a signed list older than %d" % (base, info["serial"]))
    L = info["id_bytes"]
    adds = sorted({need_bytes("id", c, L) for c in adds})
    removes = sorted({need_bytes("id", c, L) for c in removes})
    new = set(info["ids"])
    if any(x not in new for x in adds) or any(x in new for x in removes):
        raise ValueError("deny delta: adds and removes do not agree with the new list")
    n = len(info["ids"])
    end = DENY_HEADER2_LEN + L * n
    (slen,) = struct.unpack(">H", new_list[end:end + 2])
    body = DENY_MAGIC + bytes([DENY_V2, 1, L % 8, 0]) + struct.pack(
        ">IIIIII", len(adds) + len(removes), info["serial"], info["issued"], base, len(adds), n)
    out = body + b"".join(adds) + b"".join(removes) + bytes(new_list[end:end + 2 + slen])
    return out + struct.pack(">I", zlib.crc32(out) & 0xFFFFFFFF)


def deny_delta_between(old_ids, base: int, new_list: bytes) -> bytes:
    """deny_delta_bytes from the base list's ids `old_ids` (the adds and removes worked out)."""
    info = deny_list_info(new_list)
    old = {bytes(c)[:info["id_bytes"]] for c in old_ids}
    new = set(info["ids"])
    return deny_delta_bytes(new - old, old - new, base, new_list)


def apply_deny_delta(old_list: bytes, delta: bytes, root_pub65: bytes = None) -> bytes:
    """The host's own reading of a delta (independent of the firmware's streaming merge, which
    tests compare with it): checks the delta (header, length, CRC, order), that its base is the
    old list's serial, that every add is new and every remove present, rebuilds the full list
    and checks it like any list (deny_list_info, with the signature if root_pub65 is given).
    Returns the new full list's bytes; raises ValueError naming the fault."""
    old_info = deny_list_info(old_list)
    d = bytes(delta)
    if len(d) < DENY_DELTA_HEADER_LEN + 6 or d[:4] != DENY_MAGIC or d[4] != DENY_V2 or d[5] != 1 or d[7] != 0 \
            or d[6] not in (0, 4, 5, 6, 7):
        raise ValueError("deny delta: bad header")
    L = d[6] or 8
    c, serial, issued, base, a, n = struct.unpack(">IIIIII", d[8:32])
    end = DENY_DELTA_HEADER_LEN + L * c
    if a > c or len(d) < end + 6:
        raise ValueError("deny delta: length does not match count %d" % c)
    (slen,) = struct.unpack(">H", d[end:end + 2])
    if len(d) != end + 2 + slen + 4 or struct.unpack(">I", d[-4:])[0] != zlib.crc32(d[:-4]) & 0xFFFFFFFF:
        raise ValueError("deny delta: length or CRC wrong")
    ids = [d[DENY_DELTA_HEADER_LEN + L * i:DENY_DELTA_HEADER_LEN + L * i + L] for i in range(c)]
    adds, removes = ids[:a], ids[a:]
    for run in (adds, removes):
        if any(run[i] <= run[i - 1] for i in range(1, len(run))):
            raise ValueError("deny delta: ids not strictly ascending")
    if base != old_info["serial"] or L != old_info["id_bytes"]:
        raise ValueError("deny delta is for list %d (%d-byte ids), not %d (%d-byte ids)"
                         % (base, L, old_info["serial"], old_info["id_bytes"]))
    old = set(old_info["ids"])
    if any(x in old for x in adds) or any(x not in old for x in removes):
        raise ValueError("deny delta does not fit list %d (wrong base)" % base)
    ids = sorted((old | set(adds)) - set(removes))
    body = DENY_MAGIC + bytes([DENY_V2, 0, L % 8, 0]) + struct.pack(">IIII", len(ids), serial, issued, 0) + b"".join(ids)
    out = body + d[end:end + 2 + slen]
    out += struct.pack(">I", zlib.crc32(out) & 0xFFFFFFFF)
    info = deny_list_info(out, root_pub65)
    if len(info["ids"]) != n:
        raise ValueError("deny delta: makes %d ids, says %d" % (len(info["ids"]), n))
    return out


def parse_deny_list(data: bytes) -> list:
    """The ids of a deny list (version 1, or version 2 checked as the gate does, signature unchecked)."""
    data = bytes(data)
    if len(data) > 4 and data[:4] == DENY_MAGIC and data[4] == DENY_V2:
        return deny_list_info(data)["ids"]
    if len(data) < DENY_HEADER_LEN or data[:4] != DENY_MAGIC or data[4] != DENY_VERSION or data[5:8] != b"\0\0\0":
        raise ValueError("not an offgate deny list (v1)")
    (n,) = struct.unpack(">I", data[8:12])
    if len(data) != DENY_HEADER_LEN + 8 * n:
        raise ValueError("deny list length does not match its count")
    return [data[DENY_HEADER_LEN + 8 * i: DENY_HEADER_LEN + 8 * i + 8] for i in range(n)]
