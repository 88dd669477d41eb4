"""The trust store file's checks (offgate.policy.trust.TrustStore.from_bytes loads this module for
the call and drops it: boot and trust pushes only, not resident between scans; issue 12,
docs/performance.md "The gate's heap after boot"). Format: docs/protocol.md (trust list)."""
from offgate.codec import cbor


def _entry(e, i):
    if not isinstance(e, dict):
        raise ValueError("trust key %d: not a map" % i)
    kid, iss, pub, nbf, exp = e.get("kid"), e.get("iss", ""), e.get("pub"), e.get("nbf"), e.get("exp")
    if not isinstance(kid, bytes) or not 1 <= len(kid) <= 16:
        raise ValueError("trust key %d: kid must be 1-16 bytes" % i)
    if not isinstance(pub, bytes) or len(pub) != 65:
        raise ValueError("trust key %d: pub must be a 65-byte uncompressed point" % i)
    if not isinstance(iss, str):
        raise ValueError("trust key %d: iss must be text" % i)
    for name, v in (("nbf", nbf), ("exp", exp)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise ValueError("trust key %d: %s must be a non-negative integer" % (i, name))
    if exp <= nbf:
        raise ValueError("trust key %d: exp must be after nbf" % i)
    return kid, iss, pub, nbf, exp


def parse(data, max_keys):
    """Check a trust store file (bytes): CBOR {"v": 1, "keys": [...], "serial", "issued"} with an
    optional CRC-32 of the bytes before it ("crc", last). Returns ([(kid, iss, pub, nbf, exp)],
    serial, issued); raises ValueError naming the first problem (more than max_keys keys too).
    The keys' points are checked by the caller (offgate.crypto.ecdsa.parse_public_key)."""
    try:
        doc = cbor.loads(data)
    except ValueError as e:
        raise ValueError("trust store is not valid CBOR: %s" % e)
    if not isinstance(doc, dict) or doc.get("v") != 1 or not isinstance(doc.get("keys"), list):
        raise ValueError("trust store: expected {'v': 1, 'keys': [...]}")
    if len(doc["keys"]) > max_keys:
        raise ValueError("trust store: %d keys, more than %d" % (len(doc["keys"]), max_keys))
    if "crc" in doc:
        from offgate.checksum import crc32
        n = len(data)
        if n < 9 or data[n - 9:n - 4] != b"\x63crc\x1a" or doc["crc"] != crc32(data[:n - 9]) & 0xFFFFFFFF:
            raise ValueError("trust store damaged: CRC mismatch")
    serial, issued = doc.get("serial", 0), doc.get("issued", 0)
    for name, v in (("serial", serial), ("issued", issued)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise ValueError("trust store: %s must be a non-negative integer" % name)
    return [_entry(e, i) for i, e in enumerate(doc["keys"])], serial, issued
