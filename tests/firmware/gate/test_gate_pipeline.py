"""The firmware's decision path on MicroPython, fed by codes the host libraries produce.

Differential: the host's independent implementation (cryptography + cbor2 + cwt + base45) makes
the codes; the hand-written firmware must accept the good ones and refuse every alteration.
"""
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offgate_host.wire import formats
from offgate_host.backoffice.backoffice import BackOffice
from offgate_host.wallet import Wallet

NOW = int(time.time())
GATE, ZONE = 101, 1
# Reasons a code that fails to decode may get; never INTERNAL_ERROR (that would be an uncaught bug).
DECODE_REASONS = {"EMPTY", "NOT_TEXT", "BAD_PREFIX", "BAD_BASE45", "MALFORMED_CODE", "BAD_ALG",
                  "MALFORMED_CREDENTIAL", "UNKNOWN_ISSUER", "BAD_ISSUER_SIG", "BAD_RIDER_SIG"}


@pytest.fixture(scope="module")
def world(tmp_path_factory, mp):
    work = tmp_path_factory.mktemp("pipeline")
    bo = BackOffice(work / "bo")
    bo.init_issuer("test-issuer", valid_from=NOW - 86400)
    bo.create_account("acct-1", balance=10000)  # seven credentials, each holding the default cap
    w = {}
    for name, kw in {
        "rider": dict(zones=[ZONE, 2]),
        "expired": dict(zones=[ZONE], valid_from=NOW - 3 * 86400, valid_seconds=86400),
        "future": dict(zones=[ZONE], valid_from=NOW + 3600),
        "zone7": dict(zones=[7]),
        "gate5": dict(zones=[ZONE], gates=[5]),
        "mygate": dict(zones=[ZONE], gates=[GATE, 102]),
        "revoked": dict(zones=[ZONE]),
    }.items():
        wal = Wallet.create(work / (name + ".json"))
        wal.set_credential(bo.issue_credential("acct-1", wal.pub65, now=NOW, **kw))
        w[name] = wal
    bo.deny(formats.parse_credential(w["revoked"].credential)["cti"])
    state = work / "gate"
    state.mkdir()

    def setup(trust=None, deny=None, cache=16):
        mp.call("gate_probe.setup", str(state), trust if trust is not None else bo.trust_bytes(),
                deny if deny is not None else bo.deny_bytes(), GATE, ZONE, 60, 30, cache)

    setup()
    return {"bo": bo, "w": w, "setup": setup, "work": work}


def decide(mp, text, now=NOW):
    return mp.call("gate_probe.decide", text.encode() if isinstance(text, str) else text, now)


def code(wallet, iat=NOW, ctr=None):
    wallet.ctr = (ctr if ctr is not None else wallet.ctr + 1)
    return formats.make_auth_code(wallet.key, wallet.credential, iat=iat, ctr=wallet.ctr)


def text(code_bytes):
    return formats.qr_text(code_bytes)


def test_valid_code_opens(world, mp):
    assert decide(mp, text(code(world["w"]["rider"]))) == "OK"


@pytest.mark.parametrize("who,iat_delta,now_delta,expected", [
    ("expired", 0, 0, "CRED_EXPIRED"),
    ("future", 0, 0, "CRED_NOT_YET_VALID"),
    ("zone7", 0, 0, "WRONG_ZONE"),
    ("gate5", 0, 0, "WRONG_GATE"),
    ("mygate", 0, 0, "OK"),
    ("revoked", 0, 0, "REVOKED"),
    ("rider", -91, 0, "CODE_STALE"),      # older than max_age 60 + skew 30
    ("rider", -90, 0, "OK"),              # the edge of the window is inside
    ("rider", 31, 0, "CODE_FUTURE"),
    ("rider", 30, 0, "OK"),
])
def test_each_check(world, mp, who, iat_delta, now_delta, expected):
    world["setup"]()
    assert decide(mp, text(code(world["w"][who], iat=NOW + iat_delta)), NOW + now_delta) == expected


def test_replay_and_counter_order(world, mp):
    world["setup"]()
    r = world["w"]["rider"]
    c5 = text(code(r, ctr=500))
    c4 = text(code(r, ctr=400))
    assert mp.call("gate_probe.decide_and_commit", c5.encode(), NOW) == "OK"
    assert decide(mp, c5) == "REPLAY"
    assert decide(mp, c4) == "REPLAY"   # an older code after a newer one
    assert decide(mp, text(code(r, ctr=501))) == "OK"


def test_unknown_and_inactive_issuer_keys(world, mp, tmp_path):
    other = BackOffice(tmp_path / "other")
    other.init_issuer("other", valid_from=NOW - 86400)
    world["setup"](trust=other.trust_bytes())
    assert decide(mp, text(code(world["w"]["rider"]))) == "UNKNOWN_ISSUER"
    keys = formats.parse_trust_store(world["bo"].trust_bytes())
    for k in keys:
        k["nbf"], k["exp"] = NOW + 10, NOW + 20
    world["setup"](trust=formats.trust_store_bytes(keys))
    assert decide(mp, text(code(world["w"]["rider"]))) == "ISSUER_KEY_INACTIVE"
    world["setup"]()


def test_rotation_both_keys_trusted(world, mp, tmp_path):
    bo = BackOffice(tmp_path / "rot")
    bo.init_issuer("rot", valid_from=NOW - 86400)
    bo.create_account("a", balance=50000)  # many credentials, each holding the default cap
    old = Wallet.create(tmp_path / "old.json")
    old.set_credential(bo.issue_credential("a", old.pub65, zones=[ZONE], now=NOW))
    bo.rotate_issuer(valid_from=NOW - 10, lead_days=0)
    new = Wallet.create(tmp_path / "new.json")
    new.set_credential(bo.issue_credential("a", new.pub65, zones=[ZONE], now=NOW))
    assert formats.parse_credential(old.credential)["kid"] != formats.parse_credential(new.credential)["kid"]
    world["setup"](trust=bo.trust_bytes())
    assert decide(mp, text(code(old))) == "OK"
    assert decide(mp, text(code(new))) == "OK"
    world["setup"]()


def test_returning_rider_hits_cache(world, mp):
    world["setup"]()
    r = world["w"]["rider"]
    decide(mp, text(code(r)))
    before = mp.call("gate_probe.cache_stats")
    assert decide(mp, text(code(r))) == "OK"
    after = mp.call("gate_probe.cache_stats")
    assert after[1] == before[1] + 1


def test_every_single_byte_change_is_refused(world, mp):
    """Exhaustive over positions: each byte of a valid code, flipped two ways."""
    world["setup"]()
    good = code(world["w"]["rider"])
    assert decide(mp, text(good)) == "OK"
    for i in range(len(good)):
        for mask in (0x01, 0xFF):
            bad = bytearray(good)
            bad[i] ^= mask
            got = decide(mp, text(bytes(bad)))
            assert got != "OK" and got != "INTERNAL_ERROR", (i, mask, got)


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_random_mutations_refused(world, mp, data):
    good = world.setdefault("good_code", code(world["w"]["rider"]))
    bad = bytearray(good)
    n = data.draw(st.integers(1, 4))
    for _ in range(n):
        i = data.draw(st.integers(0, len(bad) - 1))
        bad[i] = data.draw(st.integers(0, 255))
    if bytes(bad) == good:
        return
    got = decide(mp, text(bytes(bad)))
    assert got != "OK" and got != "INTERNAL_ERROR", got


@settings(max_examples=700, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=400))
def test_random_bytes_never_crash(world, mp, blob):
    assert decide(mp, blob) in DECODE_REASONS


@settings(max_examples=700, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:", max_size=500))
def test_random_base45_never_crashes(world, mp, b45):
    assert decide(mp, "OG1:" + b45) in DECODE_REASONS


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=300))
def test_random_cbor_payload_never_crashes(world, mp, blob):
    assert decide(mp, text(blob)) in DECODE_REASONS


def test_truncated_and_extended_codes_refused(world, mp):
    world["setup"]()
    good = code(world["w"]["rider"])
    for cut in (1, 2, 10, 64, len(good) // 2, len(good) - 1):
        assert decide(mp, text(good[:cut])) in DECODE_REASONS
    assert decide(mp, text(good + b"\x00")) == "MALFORMED_CODE"   # trailing bytes are never ignored


@pytest.mark.parametrize("payload", [b"\x63abc", b"\x43abc", b"\x83\x01\x02\x03", b"\xa2\x01\x40\x02\x01", b"\x01",
                                     b"\xa3\x01\x40\x02\x01\x03\x00", b"\xa3\x01\x40\x02\xf5\x03\x01"])
def test_wrong_payload_shapes_are_malformed(world, mp, payload):
    """Validly signed codes whose payload is not {1: bstr, 2: uint, 3: uint >= 1}."""
    rider = world["w"]["rider"]
    signed = formats.sign1(rider.key, {formats.H_ALG: formats.ALG_ES256}, payload)
    assert decide(mp, text(signed)) == "MALFORMED_CODE"
