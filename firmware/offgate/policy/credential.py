"""The credential's claims (CWT, docs/protocol.md §2), checked for shape and turned into an object.

Called only after the issuer signature has verified, so this is about the issuer's own format
rules; anything off is MALFORMED_CREDENTIAL, never a guess.
"""
from offgate.codec import cbor
from offgate.crypto import ecdsa

ISS = 1
SUB = 2
EXP = 4
NBF = 5
IAT = 6
CTI = 7
CNF = 8
ACCESS = -1       # offgate's access claim, 1-byte label (QR size): {1: zones, 2: gates, 3: product, 4: cap}
ACCESS_V1 = -65537  # the same claim under its first, private-use label: credentials issued before
                    # the compaction stay valid until they expire (gates see both during a rollout)
ACC_ZONES = 1
ACC_GATES = 2
ACC_PRODUCT = 3
ACC_CAP = 4
CTI_LEN = 8


class CredentialError(ValueError):
    pass


class Credential:
    __slots__ = ("cti", "iss", "sub", "nbf", "exp", "zones", "gates", "product", "cap", "rider",
                 "key_nbf", "key_exp")


def _uint(claims, key, name, required=True):
    v = claims.get(key)
    if v is None and not required:
        return None
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise CredentialError("claim %s must be an unsigned integer" % name)
    return v


def _uints(v, name):
    if not isinstance(v, list) or not v:
        raise CredentialError("claim %s must be a non-empty array" % name)
    for z in v:
        if not isinstance(z, int) or isinstance(z, bool) or z < 0:
            raise CredentialError("claim %s must hold unsigned integers" % name)
    return v


def rider_key(cnf):
    """The proof-of-possession key (RFC 8747 cnf / COSE_Key EC2 P-256), compressed or not."""
    if not isinstance(cnf, dict) or not isinstance(cnf.get(1), dict):
        raise CredentialError("cnf must hold a COSE_Key under key 1")
    k = cnf[1]
    if k.get(1) != 2 or k.get(-1) != 1:
        raise CredentialError("cnf key must be EC2 on P-256")
    x, y = k.get(-2), k.get(-3)
    if not isinstance(x, bytes) or len(x) != 32:
        raise CredentialError("cnf x must be 32 bytes")
    if y is True or y is False:
        pub = (b"\x03" if y else b"\x02") + x
    elif isinstance(y, bytes) and len(y) == 32:
        pub = b"\x04" + x + y
    else:
        raise CredentialError("cnf y must be 32 bytes or a sign bool")
    try:
        return ecdsa.parse_public_key(pub)
    except ValueError:
        raise CredentialError("cnf key is not a valid P-256 point")


def parse(payload):
    """Parse the CWT claims of a credential whose signature has been verified."""
    try:
        claims = cbor.loads(payload)
    except ValueError as e:
        raise CredentialError("claims are not valid CBOR: %s" % e)
    if not isinstance(claims, dict):
        raise CredentialError("claims must be a map")
    c = Credential()
    cti = claims.get(CTI)
    if not isinstance(cti, bytes) or len(cti) != CTI_LEN:
        raise CredentialError("cti must be 8 bytes")
    c.cti = cti
    c.iss = claims.get(ISS, "")
    c.sub = claims.get(SUB, "")
    if not isinstance(c.iss, str) or not isinstance(c.sub, str):
        raise CredentialError("iss and sub must be text")
    # nbf is optional (RFC 8392 §3.1.5): the issuer leaves it out when validity starts at issuance
    c.nbf = _uint(claims, NBF, "nbf", False) or 0
    c.exp = _uint(claims, EXP, "exp")
    if c.exp <= c.nbf:
        raise CredentialError("exp must be after nbf")
    acc = claims.get(ACCESS)
    old = claims.get(ACCESS_V1)
    if old is not None:
        if acc is not None:
            raise CredentialError("access claim given under both labels")
        acc = old
    if not isinstance(acc, dict):
        raise CredentialError("access claim must be a map")
    c.zones = _uints(acc.get(ACC_ZONES), "zones")
    g = acc.get(ACC_GATES)
    c.gates = None if g is None else _uints(g, "gates")
    c.product = _uint(acc, ACC_PRODUCT, "product", False) or 0
    c.cap = _uint(acc, ACC_CAP, "cap", False)
    c.rider = rider_key(claims.get(CNF))
    return c
