"""Test vectors and small signing helpers shared by the ECDSA tests (host side, CPython): the
Wycheproof ECDSA P-256 SHA-256 P1363 file from the shared vector store, and P1363 signatures and
uncompressed public keys made with pyca/cryptography."""
import json
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

WYCHEPROOF = Path(__file__).resolve().parents[3] / "shared" / "vectors" / "wycheproof"
WYCHEPROOF_FILE = WYCHEPROOF / "ecdsa_secp256r1_sha256_p1363_test.json"


def wycheproof_cases():
    data = json.loads(WYCHEPROOF_FILE.read_text())
    cases = []
    for g in data["testGroups"]:
        pub = bytes.fromhex(g["publicKey"]["uncompressed"])
        assert g["sha"] == "SHA-256" and g["publicKey"]["curve"] == "secp256r1"
        for t in g["tests"]:
            cases.append((t["tcId"], pub, bytes.fromhex(t["msg"]), bytes.fromhex(t["sig"]),
                          t["result"], t["comment"]))
    assert len(cases) == data["numberOfTests"]
    return cases


def _sign(priv, msg):
    r, s = decode_dss_signature(priv.sign(msg, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _pub65(priv):
    n = priv.public_key().public_numbers()
    return b"\x04" + n.x.to_bytes(32, "big") + n.y.to_bytes(32, "big")
