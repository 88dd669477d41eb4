"""Shared helpers for the host-tool tests."""
import os

import cbor2

from offgate_host.wire import formats, keys

T0 = 1_800_000_000  # a fixed Unix time for deterministic claims


def typical_credential(issuer=None, rider=None, *, compressed=True, **over):
    """A credential like the back office makes: compact (no iss, sub, nbf or iat unless passed in `over`)."""
    issuer = issuer or keys.generate()
    rider = rider or keys.generate()
    kw = dict(cti=os.urandom(8), exp=T0 + 86400,
              rider_pub65=keys.pub_bytes(rider), zones=[1, 2], product=1, compressed=compressed)
    kw.update(over)
    kid = keys.kid_of(keys.pub_bytes(issuer))
    return issuer, rider, kid, formats.make_credential(issuer, kid, **kw)


def sign1_parts(msg):
    """[protected, unprotected, payload, signature] of a COSE_Sign1, tagged (18) or untagged."""
    obj = cbor2.loads(msg)
    if isinstance(obj, cbor2.CBORTag):
        assert obj.tag == 18
        obj = obj.value
    assert isinstance(obj, list) and len(obj) == 4
    return obj


def credential_claims(cred):
    return cbor2.loads(sign1_parts(cred)[2])
