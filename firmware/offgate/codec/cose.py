"""COSE_Sign1 (RFC 9052) parsing and ES256 verification for the gate.

Errors are ValueError subclasses the gate can tell apart:
  * CBORError / Malformed - the bytes are not a well-formed COSE_Sign1 (decode failure);
  * BadAlgorithm          - alg missing from the protected header, not ES256 (-7), or present in
                            the unprotected header;
  * BadSignature          - the signature does not verify (including a signature not 64 bytes).
An invalid public key raises the ValueError of offgate.crypto.ecdsa.parse_public_key.
"""

from offgate.codec import cbor

from micropython import const  # under CPython: the stand-in in offgate/__init__.py

ALG_ES256 = const(-7)
_H_ALG = const(1)
_H_CRIT = const(2)
_H_KID = const(4)
_TAG_SIGN1 = const(18)
_NO_TAGS = ()


class Malformed(ValueError):
    """Structurally invalid COSE_Sign1."""


class BadAlgorithm(ValueError):
    """Algorithm missing, not ES256, or not in the protected header."""


class BadSignature(ValueError):
    """Signature does not verify."""


class Sign1:
    """A parsed COSE_Sign1. .protected is the exact received protected bstr."""

    def __init__(self, protected, phdr, uhdr, payload, signature):
        self.protected = protected
        self.phdr = phdr
        self.uhdr = uhdr
        self.payload = payload
        self.signature = signature

    @property
    def alg(self):
        # Only the protected header counts: an unprotected alg could be swapped by anyone.
        return self.phdr.get(_H_ALG)

    @property
    def kid(self):
        k = self.phdr.get(_H_KID)
        if k is None:
            k = self.uhdr.get(_H_KID)
        return k


def sign1_parse(data):
    """Parse COSE_Sign1 bytes (tag 18 or untagged). Raises CBORError/Malformed (ValueError)."""
    try:
        mv = memoryview(data)
    except TypeError:
        raise Malformed("COSE_Sign1 must be bytes")
    n = len(mv)
    start = 0
    if n and mv[0] >> 5 == 6:
        # Unwrap the one permitted tag here and decode the rest with no tags allowed, so a tag
        # cannot hide anywhere inside the structure (or be doubled: 18(18([...]))).
        if mv[0] == 0xD2:
            start = 1
        elif n > 1 and mv[0] == 0xD8 and mv[1] == _TAG_SIGN1:
            start = 2  # non-shortest head for tag 18; the bytes are still unambiguous
        else:
            raise Malformed("COSE: tag other than 18 (COSE_Sign1)")
    obj = cbor.loads(mv[start:] if start else mv, tags=_NO_TAGS)
    if not isinstance(obj, list) or len(obj) != 4:
        raise Malformed("COSE_Sign1 must be an array of 4 elements")
    protected, uhdr, payload, signature = obj
    if not isinstance(protected, bytes):
        raise Malformed("COSE protected header must be a bstr")
    if not isinstance(uhdr, dict):
        raise Malformed("COSE unprotected header must be a map")
    if payload is None:
        raise Malformed("COSE detached payload not supported")
    if not isinstance(payload, bytes):
        raise Malformed("COSE payload must be a bstr")
    if not isinstance(signature, bytes):
        raise Malformed("COSE signature must be a bstr")
    if protected:
        phdr = cbor.loads(protected, tags=_NO_TAGS)
        if not isinstance(phdr, dict):
            raise Malformed("COSE protected header must encode a map")
    else:
        phdr = {}
    if _H_ALG in phdr and _H_ALG in uhdr:
        # RFC 9052 3: a label must not be in both buckets. (kid in both is tolerated: the
        # protocol says the protected one wins.) alg only in uhdr is left to check_alg: BAD_ALG.
        raise Malformed("COSE alg in both protected and unprotected headers")
    if _H_CRIT in phdr or _H_CRIT in uhdr:
        # RFC 9052 3.1: unknown critical headers must be rejected; the gate understands none.
        raise Malformed("COSE crit header not supported")
    for h in (phdr, uhdr):
        k = h.get(_H_KID)
        if k is not None and not isinstance(k, bytes):
            raise Malformed("COSE kid must be a bstr")
    return Sign1(protected, phdr, uhdr, payload, signature)


def check_alg(sign1):
    """Raise BadAlgorithm unless the protected header says ES256 and the unprotected has no alg."""
    if _H_ALG in sign1.uhdr:
        raise BadAlgorithm("COSE alg in unprotected header")
    alg = sign1.phdr.get(_H_ALG)
    if alg is None:
        raise BadAlgorithm("COSE alg missing from protected header")
    # `is True/False` guard: on CPython True == 1, never let a bool pass as an alg number.
    if alg is True or alg is False or alg != ALG_ES256:
        raise BadAlgorithm("COSE alg %r is not ES256" % (alg,))


def sig_structure(sign1, external_aad=b""):
    """The ToBeSigned bytes (RFC 9052 4.4): ["Signature1", protected, external_aad, payload]
    over the exact received protected bstr (never a re-encoding of phdr). offgate's codes and
    credentials use an empty external_aad; a caller that binds other data passes it as bytes."""
    return cbor.dumps(["Signature1", sign1.protected, external_aad, sign1.payload])


def verify_parsed(sign1, key, external_aad=b""):
    """True if sign1's ES256 signature verifies with parsed key (offgate.crypto.ecdsa PublicKey)
    over the Sig_structure with external_aad (bytes, default empty).
    False for a bad signature and also for an unacceptable alg: callers that want BAD_ALG
    check sign1.alg (or check_alg) first; this function never raises for bad input."""
    from offgate.crypto import ecdsa  # imported on first use: parsing alone needs no EC code
    try:
        check_alg(sign1)
    except BadAlgorithm:
        return False
    sig = sign1.signature
    if len(sig) != 64:
        return False
    return bool(ecdsa.verify_key(key, sig_structure(sign1, external_aad), sig))


def sign1_verify(data, pub, external_aad=b""):
    """Verify COSE_Sign1 bytes with pub (SEC1 bytes, 65 or 33 long, or a parsed ecdsa key) and
    external_aad (bytes, RFC 9052 4.3; default empty). Returns the payload; raises a ValueError
    (subclass) on any failure: Malformed/CBORError, BadAlgorithm, BadSignature."""
    from offgate.crypto import ecdsa
    s = sign1_parse(data)
    check_alg(s)
    if isinstance(pub, (bytes, bytearray, memoryview)):
        pub = ecdsa.parse_public_key(bytes(pub))
    if not verify_parsed(s, pub, external_aad):
        raise BadSignature("COSE signature does not verify")
    return s.payload
