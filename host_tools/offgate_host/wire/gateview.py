"""What the gate would decide: the host's own implementation of the gate's decoding rules
(docs/protocol.md §5) and decision order (§7), for `offgate inspect` and for host-side checks of
codes and credentials.

Why a second implementation: the host's everyday decoding (cbor2, cwt) is lenient where the gate
is strict (cbor2 keeps the last of two duplicate keys, lets `true` collide with `1`, ignores nothing
but accepts floats, indefinite lengths and any tag), so a support tool using it can show a counter
or a credential the gate never judged. This module decodes with the gate's rules, written again
from the specification rather than imported from the firmware, so the two check each other
(tests/cross/test_sync_attacks.py::test_host_and_gate_agree_on_mutated_codes feeds both the same inputs).
Signatures are checked with pyca/cryptography.

    decide(qr_text, trust, now, gate_id, zone, max_age_s=60, skew_s=30, deny=()) -> (reason name, info)
    strict_loads(data, tags=()) -> object        (StrictError for anything outside §5)
"""
import base45
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

MAX_DEPTH = 8
MAX_LEN = 1024
PREFIX = "OG1:"
CTR_MAX = 0xFFFFFFFF
ES256 = -7


class StrictError(ValueError):
    """Outside the gate's strict CBOR/COSE subset."""


class _Bool:
    """A CBOR true/false that never equals or hashes like 1/0 (Python's bool does)."""
    __slots__ = ("v",)

    def __init__(self, v):
        self.v = v


def strict_loads(data, tags=()):
    """Decode one CBOR item with the gate's rules: definite lengths, no floats, simple values only
    false/true/null, tags only from `tags`, map keys int or text and unique, nesting <= 8, strings
    <= 1024 bytes and never longer than the input, valid UTF-8, no trailing bytes."""
    data = bytes(data)
    obj, pos = _item(data, 0, 0, tags)
    if pos != len(data):
        raise StrictError("trailing bytes after the top-level item")
    return _plain(obj)


def _plain(o):
    if isinstance(o, _Bool):
        return o.v
    if isinstance(o, list):
        return [_plain(x) for x in o]
    if isinstance(o, dict):
        return {k: _plain(v) for k, v in o.items()}
    if isinstance(o, tuple) and len(o) == 3 and o[0] == "tag":
        return ("tag", o[1], _plain(o[2]))
    return o


def _arg(data, pos, ai):
    if ai < 24:
        return ai, pos
    if ai == 31:
        raise StrictError("indefinite length")
    if ai > 27:
        raise StrictError("reserved additional info")
    n = 1 << (ai - 24)
    if pos + n > len(data):
        raise StrictError("truncated head")
    return int.from_bytes(data[pos:pos + n], "big"), pos + n


def _item(data, pos, depth, tags):
    if pos >= len(data):
        raise StrictError("truncated input")
    ib = data[pos]
    pos += 1
    mt, ai = ib >> 5, ib & 31
    if mt == 7:
        if ai in (20, 21):
            return _Bool(ai == 21), pos
        if ai == 22:
            return None, pos
        raise StrictError("simple value, float or break not allowed")
    val, pos = _arg(data, pos, ai)
    if mt == 0:
        return val, pos
    if mt == 1:
        return -1 - val, pos
    if mt in (2, 3):
        if val > MAX_LEN or pos + val > len(data):
            raise StrictError("string too long")
        b = data[pos:pos + val]
        if mt == 3:
            try:
                return b.decode("utf-8"), pos + val
            except UnicodeDecodeError:
                raise StrictError("invalid UTF-8") from None
        return b, pos + val
    if depth >= MAX_DEPTH:
        raise StrictError("nested too deep")
    if mt == 4:
        if val > len(data) - pos:
            raise StrictError("array count exceeds input")
        out = []
        for _ in range(val):
            x, pos = _item(data, pos, depth + 1, tags)
            out.append(x)
        return out, pos
    if mt == 5:
        if 2 * val > len(data) - pos:
            raise StrictError("map count exceeds input")
        out = {}
        for _ in range(val):
            if pos >= len(data):
                raise StrictError("truncated input")
            if data[pos] >> 5 not in (0, 1, 3):
                raise StrictError("map key must be int or text")
            k, pos = _item(data, pos, depth + 1, tags)
            if k in out:
                raise StrictError("duplicate map key")
            out[k], pos = _item(data, pos, depth + 1, tags)
        return out, pos
    if val not in tags:
        raise StrictError("tag %d not allowed" % val)
    x, pos = _item(data, pos, depth + 1, tags)
    return ("tag", val, x), pos


# ------------------------------------------------------------------------------ COSE_Sign1
class Sign1:
    def __init__(self, protected, phdr, uhdr, payload, signature):
        self.protected, self.phdr, self.uhdr, self.payload, self.signature = protected, phdr, uhdr, payload, signature

    @property
    def alg(self):
        return self.phdr.get(1)

    @property
    def kid(self):
        k = self.phdr.get(4)
        return self.uhdr.get(4) if k is None else k


def sign1_parse(data):
    """COSE_Sign1 (tag 18 as D2 or D8 12, or untagged), nothing tagged inside. StrictError."""
    data = bytes(data)
    start = 0
    if data and data[0] >> 5 == 6:
        if data[0] == 0xD2:
            start = 1
        elif len(data) > 1 and data[0] == 0xD8 and data[1] == 18:
            start = 2
        else:
            raise StrictError("tag other than 18")
    obj = strict_loads(data[start:])
    if not isinstance(obj, list) or len(obj) != 4:
        raise StrictError("COSE_Sign1 must be an array of 4")
    prot, uhdr, payload, sig = obj
    if not isinstance(prot, bytes) or not isinstance(uhdr, dict) or not isinstance(payload, bytes) \
            or not isinstance(sig, bytes):
        raise StrictError("COSE_Sign1 element types")
    phdr = strict_loads(prot) if prot else {}
    if not isinstance(phdr, dict):
        raise StrictError("protected header must be a map")
    if 1 in phdr and 1 in uhdr:
        raise StrictError("alg in both headers")
    if 2 in phdr or 2 in uhdr:
        raise StrictError("crit header")
    for h in (phdr, uhdr):
        if h.get(4) is not None and not isinstance(h.get(4), bytes):
            raise StrictError("kid must be a bstr")
    return Sign1(prot, phdr, uhdr, payload, sig)


def _alg_ok(s):
    a = s.phdr.get(1)
    return 1 not in s.uhdr and a is not None and a is not True and a is not False and a == ES256


def _to_be_signed(s):
    import cbor2
    return cbor2.dumps(["Signature1", s.protected, b"", s.payload])


def verify(s, pub):
    """The ES256 signature of a parsed Sign1 with a cryptography public key."""
    if not _alg_ok(s) or len(s.signature) != 64:
        return False
    try:
        pub.verify(encode_dss_signature(int.from_bytes(s.signature[:32], "big"), int.from_bytes(s.signature[32:], "big")),
                   _to_be_signed(s), ec.ECDSA(hashes.SHA256()))
        return True
    except (InvalidSignature, ValueError):
        return False


def _uint(m, k, required=True):
    v = m.get(k)
    if v is None and not required:
        return None
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise StrictError("claim %s must be an unsigned integer" % k)
    return v


def _uints(v):
    if not isinstance(v, list) or not v:
        raise StrictError("must be a non-empty array")
    for x in v:
        if not isinstance(x, int) or isinstance(x, bool) or x < 0:
            raise StrictError("must hold unsigned integers")
    return v


def _rider_key(cnf):
    if not isinstance(cnf, dict) or not isinstance(cnf.get(1), dict):
        raise StrictError("cnf")
    k = cnf[1]
    if k.get(1) != 2 or k.get(-1) != 1:
        raise StrictError("cnf key must be EC2 on P-256")
    x, y = k.get(-2), k.get(-3)
    if not isinstance(x, bytes) or len(x) != 32:
        raise StrictError("cnf x")
    if y is True or y is False:
        pub = (b"\x03" if y else b"\x02") + x
    elif isinstance(y, bytes) and len(y) == 32:
        pub = b"\x04" + x + y
    else:
        raise StrictError("cnf y")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), pub)
    except ValueError:
        raise StrictError("cnf key is not a P-256 point") from None


def parse_claims(payload):
    """The credential claims the gate uses, with its rules (credential.parse). StrictError."""
    c = strict_loads(payload)
    if not isinstance(c, dict):
        raise StrictError("claims must be a map")
    cti = c.get(7)
    if not isinstance(cti, bytes) or len(cti) != 8:
        raise StrictError("cti must be 8 bytes")
    iss, sub = c.get(1, ""), c.get(2, "")
    if not isinstance(iss, str) or not isinstance(sub, str):
        raise StrictError("iss and sub must be text")
    nbf, exp = _uint(c, 5, False) or 0, _uint(c, 4)  # nbf absent: valid from issuance
    if exp <= nbf:
        raise StrictError("exp must be after nbf")
    acc = c.get(-1)
    if -65537 in c:  # the claim's first label, still read (credential.ACCESS_V1)
        if acc is not None:
            raise StrictError("access claim given under both labels")
        acc = c[-65537]
    if not isinstance(acc, dict):
        raise StrictError("access claim must be a map")
    zones = _uints(acc.get(1))
    g = acc.get(2)
    gates = None if g is None else _uints(g)
    product = _uint(acc, 3, False) or 0
    cap = _uint(acc, 4, False)
    return {"cti": cti, "iss": iss, "sub": sub, "nbf": nbf, "exp": exp, "zones": zones, "gates": gates,
            "product": product, "cap": cap, "rider": _rider_key(c.get(8))}


def trust_keys(trust_bytes):
    """[(kid, public key, nbf, exp)] from a trust.cbor, with the gate's rules (TrustStore)."""
    trust_bytes = bytes(trust_bytes)
    doc = strict_loads(trust_bytes)
    if not isinstance(doc, dict) or doc.get("v") != 1 or not isinstance(doc.get("keys"), list):
        raise StrictError("not a trust store")
    if "crc" in doc:
        import zlib
        n = len(trust_bytes)
        if trust_bytes[n - 9:n - 4] != b"\x63crc\x1a" or doc["crc"] != zlib.crc32(trust_bytes[:n - 9]) & 0xFFFFFFFF:
            raise StrictError("trust store damaged: CRC mismatch")
    for name in ("serial", "issued"):
        v = doc.get(name, 0)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise StrictError("trust store %s" % name)
    out = []
    for e in doc["keys"]:
        if not isinstance(e, dict):
            raise StrictError("trust key not a map")
        kid, pub, nbf, exp = e.get("kid"), e.get("pub"), e.get("nbf"), e.get("exp")
        if not isinstance(kid, bytes) or not 1 <= len(kid) <= 16 or not isinstance(pub, bytes) or len(pub) != 65:
            raise StrictError("trust key kid/pub")
        for v in (nbf, exp):
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise StrictError("trust key nbf/exp")
        if exp <= nbf:
            raise StrictError("trust key exp before nbf")
        try:
            key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), pub)
        except ValueError:
            raise StrictError("trust key pub not on P-256") from None
        out.append((kid, key, nbf, exp))
    return out


# ------------------------------------------------------------------------------ the decision
STRUCTURAL = ("EMPTY", "NOT_TEXT", "BAD_PREFIX", "BAD_BASE45", "MALFORMED_CODE", "BAD_ALG", "MALFORMED_CREDENTIAL")


def _b45(text):
    for ch in text:
        if ch not in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:":
            raise StrictError("not base45")
    try:
        return bytes(base45.b45decode(text))
    except Exception:
        raise StrictError("bad base45") from None


def decide(line, trust, now, gate_id, zone, max_age_s=60, skew_s=30, deny=()):
    """(reason name, info dict) for one scanner line, in the gate's order (docs/protocol.md §7):
    decode → issuer signature → validity → rider signature → freshness → zone/gate → deny list.
    `trust`: trust_keys() output; `deny`: credential ids (or the 4- to 7-byte prefixes a deny list
    stores: formats.deny_list_info(...)["ids"]); zone or gate_id None: not checked.
    Replay is per gate and not judged here.
    info holds what the gate would have judged (credential, counter), only as far as it got."""
    info = {}
    if isinstance(line, str):
        line = line.encode("latin-1", "replace")
    if not line:
        return "EMPTY", {"why": "an empty line"}
    if any(b < 0x20 or b > 0x7E for b in line):
        return "NOT_TEXT", {"why": "bytes outside printable ASCII"}
    if line[:4] != PREFIX.encode():
        return "BAD_PREFIX", {"why": "not an offgate code (it does not start with %s)" % PREFIX}
    try:
        code = _b45(line[4:].decode())
    except StrictError as e:
        return "BAD_BASE45", {"why": "base45: %s" % e}
    try:
        s = sign1_parse(code)
    except StrictError as e:
        info["why"] = str(e)
        return "MALFORMED_CODE", info
    if s.alg != ES256 or s.alg is True:
        return "BAD_ALG", info
    try:
        auth = strict_loads(s.payload)
    except StrictError as e:
        info["why"] = str(e)
        return "MALFORMED_CODE", info
    if not isinstance(auth, dict) or 1 not in auth or 2 not in auth or 3 not in auth:
        return "MALFORMED_CODE", info
    cred, iat, ctr = auth[1], auth[2], auth[3]
    if (not isinstance(cred, bytes) or not isinstance(iat, int) or isinstance(iat, bool)
            or not isinstance(ctr, int) or isinstance(ctr, bool) or not 1 <= ctr <= CTR_MAX or iat < 0):
        return "MALFORMED_CODE", info
    info.update(iat=iat, ctr=ctr, cred=cred)
    try:
        cs = sign1_parse(cred)
    except StrictError as e:
        info["why"] = str(e)
        return "MALFORMED_CREDENTIAL", info
    if cs.alg != ES256 or cs.alg is True:
        return "BAD_ALG", info
    kid = cs.kid
    if not isinstance(kid, bytes):
        return "UNKNOWN_ISSUER", info
    same = [k for k in trust if k[0] == kid]
    if not same:
        return "UNKNOWN_ISSUER", info
    active = [k for k in same if k[2] <= now < k[3]]
    if not active:
        return "ISSUER_KEY_INACTIVE", info
    signer = next((k for k in active if verify(cs, k[1])), None)
    if signer is None:
        return "BAD_ISSUER_SIG", info
    try:
        c = parse_claims(cs.payload)
    except StrictError as e:
        info["why"] = str(e)
        return "MALFORMED_CREDENTIAL", info
    info["credential"] = c
    if now < c["nbf"]:
        return "CRED_NOT_YET_VALID", info
    if now >= c["exp"]:
        return "CRED_EXPIRED", info
    if not verify(s, c["rider"]):
        return "BAD_RIDER_SIG", info
    if iat > now + skew_s:
        return "CODE_FUTURE", info
    if iat < now - max_age_s - skew_s:
        return "CODE_STALE", info
    if zone is not None and zone not in c["zones"]:
        return "WRONG_ZONE", info
    if gate_id is not None and c["gates"] is not None and gate_id not in c["gates"]:
        return "WRONG_GATE", info
    # a deny list may store a prefix of each id (docs/protocol.md §6): a listed prefix revokes
    if any(c["cti"][:len(d)] == bytes(d) for d in deny):
        return "REVOKED", info
    return "OK", info
