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
