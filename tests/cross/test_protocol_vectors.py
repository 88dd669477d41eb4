"""The protocol test vectors (tests/fixtures/vectors.json, quoted in docs/protocol.md) hold on
both sides: the host libraries parse and verify them, the firmware decides them as listed."""
import json
from pathlib import Path

import pytest

from offgate_host.wire import formats

V = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "vectors.json").read_text())


def test_host_libraries_verify_the_vectors():
    code = bytes.fromhex(V["code"])
    assert formats.qr_text(code) == V["qr_text"]
    a = formats.parse_auth_code(code, issuer_pub65=bytes.fromhex(V["issuer_pub"]))
    assert a["verified"] and a["ctr"] == 1
    c = a["credential"]
    assert c["verified"] and c["kid"].hex() == V["kid"] and c["rider_pub65"].hex() == V["rider_pub"]
    f = formats.parse_auth_code(bytes.fromhex(V["future"]["code"]), issuer_pub65=bytes.fromhex(V["issuer_pub"]))
    assert f["credential"]["nbf"] == 1800000000 and c["nbf"] is None
    assert formats.parse_deny_list(bytes.fromhex(V["deny_list"])) == [bytes.fromhex("a1a2a3a4a5a6a7a8")]


def test_vectors_quoted_in_protocol_doc():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
    flat = doc.replace("\n", "").replace(" ", "")
    for key in ("credential", "code", "trust_store", "deny_list"):
        assert V[key] in flat, key
    for key in ("credential", "code"):
        assert V["future"][key] in flat, "future " + key
    assert V["qr_text"] in doc


CASES = [(V["qr_text"], c) for c in V["cases"]] + [(V["future"]["qr_text"], c) for c in V["future"]["cases"]]


@pytest.mark.parametrize("text, case", CASES, ids=["%d-%s" % (i, c["expect"]) for i, (_, c) in enumerate(CASES)])
def test_firmware_decides_the_vectors(mp, tmp_path, text, case):
    g = V["gate"]
    mp.call("gate_probe.setup", str(tmp_path), bytes.fromhex(V["trust_store"]), bytes.fromhex(V["deny_list"]),
            g["gate_id"], g["zone"], g["max_age_s"], g["skew_s"], 16)
    assert mp.call("gate_probe.decide", text.encode(), case["now"]) == case["expect"]


def test_firmware_decodes_the_credential(mp):
    payload = mp.call("offgate.cose.sign1_verify", bytes.fromhex(V["credential"]), bytes.fromhex(V["issuer_pub"]))
    claims = mp.call("offgate.codec.cbor.loads", payload)  # int keys come back as strings over the bridge
    assert claims["7"] == bytes.fromhex("0102030405060708")
    assert claims["-1"]["1"] == [1, 2] and sorted(claims) == ["-1", "4", "7", "8"]  # compact: exp, cti, cnf, access
