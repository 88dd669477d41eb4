# Firmware-side helpers for host differential tests (tests/cross/test_codecs_differential.py).
# The bridge cannot carry cbor.Tag or int-keyed dicts faithfully, so these return re-encodings.
from offgate.codec import cbor


def reencode(data):
    """cbor.dumps(cbor.loads(data)): a canonical byte image of what the firmware decoded."""
    return cbor.dumps(cbor.loads(data))


def reencode_limits(data, max_depth, max_len):
    return cbor.dumps(cbor.loads(data, max_depth=max_depth, max_len=max_len))


def reencode_tags(data, tag):
    """Decode with exactly one allowed tag number (or none if tag is None)."""
    return cbor.dumps(cbor.loads(data, tags=() if tag is None else (tag,)))


def cose_fields(data):
    """sign1_parse summary: [protected, payload, signature, alg, kid, sig_structure]."""
    from offgate import cose
    s = cose.sign1_parse(data)
    return [s.protected, s.payload, s.signature, s.alg, s.kid, cose.sig_structure(s)]


def cose_verify(data, pub, external_aad):
    """offgate.codec.cose.sign1_verify: the payload, or the firmware's exception."""
    from offgate.codec import cose
    return cose.sign1_verify(data, pub, external_aad)


def cwt_verify(data, pub):
    """A signed CWT (RFC 8392): verify, then decode the claims with the gate's decoder. Returns
    [re-encoded claims, the credential parser's verdict ("ok" or "CredentialError: ...")]."""
    from offgate.codec import cose
    from offgate.policy import credential
    payload = cose.sign1_verify(data, pub)
    try:
        credential.parse(payload)
        verdict = "ok"
    except credential.CredentialError as e:
        verdict = "CredentialError: %s" % e
    return [cbor.dumps(cbor.loads(payload)), verdict]


def cose_verify_kid(data, pub, kid, external_aad):
    """As the gate picks a key (docs/protocol.md §2): the key is used only for a Sign1 whose kid
    (protected first, else unprotected) is kid; the payload, or the firmware's exception."""
    from offgate.codec import cose
    s = cose.sign1_parse(data)
    cose.check_alg(s)
    if s.kid != kid:
        raise cose.BadSignature("no trusted key with that kid")
    return cose.sign1_verify(data, pub, external_aad)
