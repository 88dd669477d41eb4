"""The settlement ledger: idempotent ingest, chain verification, holds, settlement and fraud flags.
Runs on SQLite always and on PostgreSQL when OFFGATE_TEST_PG_URL is set (CI sets it)."""
import pytest

from ledgerhelp import NOW, issue, make_records, world  # noqa: F401  (world: the fixture)


def test_ingest_is_idempotent_and_chain_checked(world):
    bo, led = world
    led.enroll_gate(1, b"\x04" + bytes(64))
    recs = make_records(10)
    r1 = led.ingest(1, recs[:6])
    assert (r1["new"], r1["duplicates"], r1["anomalies"]) == (6, 0, 0)
    r2 = led.ingest(1, recs[3:])  # overlap: an interrupted sync pulls the same records again
    assert (r2["new"], r2["duplicates"], r2["anomalies"]) == (4, 3, 0)
    assert len(led.records(1)) == 10 and all(r["chain_ok"] == 1 for r in led.records(1))
    assert led.gate(1)["chain_seq"] == 10 and bytes(led.gate(1)["chain_head"]) == recs[-1]["chain"]


def test_tampering_gaps_reorders_conflicts_are_reported(world):
    bo, led = world
    led.enroll_gate(2, b"\x04" + bytes(64))
    recs = make_records(8)
    forged = dict(recs[2], ctr=999)  # edited after the fact: its chain no longer matches
    led.ingest(2, [recs[0], recs[1], forged])
    led.ingest(2, [recs[5], recs[4]])                 # gap (3..4 missing) and a reorder
    led.ingest(2, [dict(recs[1], chain=b"\x07" * 32)])  # a different record for a stored seq
    kinds = {(a["seq"], a["kind"]) for a in led.anomalies()}
    assert (3, "chain_mismatch") in kinds
    assert (6, "gap") in kinds and (5, "reorder") in kinds and (2, "conflict") in kinds
    stored = {r["seq"]: r for r in led.records(2)}
    assert stored[3]["ctr"] == 999 and stored[3]["chain_ok"] == 0  # kept, flagged, not hidden
    assert stored[2]["chain"] == recs[1]["chain"]                   # the first version stands


def test_double_use_flags_fraud_and_denies(world):
    bo, led = world
    cti = issue(bo)
    for g in (1, 2):
        led.enroll_gate(g, b"\x04" + bytes([g]) * 64)
    a = led.ingest(1, make_records(2, cti=cti, ctr0=5))   # ctr 5, 6 at gate 1
    b = led.ingest(2, make_records(1, cti=cti, ctr0=6))   # ctr 6 again at gate 2
    assert a["fraud"] == 0 and b["fraud"] == 1 and b["deny"] == [cti]
    f = led.fraud()
    assert len(f) == 1 and f[0]["kind"] == "double_use" and f[0]["cti"] == cti and f[0]["ctr"] == 6
    assert {f[0]["gate"], f[0]["other_gate"]} == {1, 2}
    assert led.ingest(2, make_records(1, cti=cti, ctr0=6))["fraud"] == 0  # re-ingest: flagged once


def test_holds_settlement_and_release(world):
    bo, led = world
    led.set_fare(1, 300)
    cti = issue(bo, balance=5000, cap=1000, valid=600)
    assert bo.available("a") == 4000 and bo.holds("a")[0]["amount"] == 1000
    led.enroll_gate(1, b"\x04" + bytes(64))
    led.ingest(1, make_records(3, cti=cti) + make_records(1, start_seq=4, prev=make_records(3, cti=cti)[-1]["chain"],
                                                          cti=cti, ctr0=9, decision="DENY"))
    s = led.settle(bo, now=NOW + 10)
    assert (s["trips"], s["charged"], s["fraud"]) == (3, 900, 0)
    assert bo.get_account("a")["balance"] == 4100
    assert bo.holds("a")[0]["used"] == 900 and bo.available("a") == 4000
    again = led.settle(bo, now=NOW + 20)
    assert again["trips"] == 0 and bo.get_account("a")["balance"] == 4100  # idempotent
    rel = led.settle(bo, now=NOW + 700)  # the credential has expired: the unused 100 goes back
    assert rel["released"] == 1 and rel["released_amount"] == 100
    assert bo.available("a") == 4100 and bo.holds("a")[0]["state"] == "released"


def test_use_past_the_cap_is_fraud(world):
    bo, led = world
    cti = issue(bo, cap=500)
    led.enroll_gate(1, b"\x04" + bytes(64))
    led.ingest(1, make_records(3, cti=cti))  # 3 x 250 > 500
    s = led.settle(bo, now=NOW + 5)
    assert s["trips"] == 3 and s["charged"] == 750 and s["over_cap"] == 250 and s["fraud"] == 1
    assert cti in bo.deny_list()
    assert [f["kind"] for f in led.fraud()] == ["cap_exceeded"]
    assert bo.get_account("a")["balance"] == 4250


def test_settle_repairs_a_crash_between_charge_and_mark(world):
    bo, led = world
    cti = issue(bo)
    led.enroll_gate(1, b"\x04" + bytes(64))
    led.ingest(1, make_records(2, cti=cti))
    rec = led.records(1)[0]
    bo.charge_trip(1, rec["seq"], cti, rec["t"], 250)  # charged, but the ledger never marked it
    s = led.settle(bo)
    assert s["trips"] == 1 and bo.get_account("a")["balance"] == 5000 - 500


def test_unknown_credential_and_report(world):
    bo, led = world
    led.enroll_gate(3, b"\x04" + bytes(64))
    led.ingest(3, make_records(2, cti=b"\x09" * 8) + make_records(1, start_seq=3, prev=make_records(2, cti=b"\x09" * 8)[-1]["chain"],
                                                                  decision="DENY", cti=None))
    s = led.settle(bo)
    assert s["unknown"] == 2 and s["trips"] == 0
    rep = led.report()
    assert sum(p["passages"] for p in rep["passages"]) == 2
    assert rep["denials"] == [{"gate": 3, "reason": 14, "n": 1}]
    assert rep["gates"][0]["records"] == 3
    assert any(a["kind"] == "unknown_credential" for a in rep["anomalies"])


def test_gate_key_is_pinned(world):
    bo, led = world
    assert led.enroll_gate(4, b"\x04" + bytes(64)) is True
    assert led.enroll_gate(4, b"\x04" + bytes(64)) is False
    from offgate_host.ledger.ledger import GateNotEnrolled
    with pytest.raises(GateNotEnrolled, match="offgate gates enroll 4"):
        led.enroll_gate(4, b"\x04" + b"\x01" * 64)
    with pytest.raises(GateNotEnrolled, match="not enrolled"):
        led.check_gate(5, b"\x04" + b"\x01" * 64)
    assert led.enroll_gate(4, b"\x04" + b"\x01" * 64, by="alice", replace=True) is True
    assert [(r["gate"], r["action"], r["by_whom"]) for r in led.gate_log(4)] == [(4, "enroll", "operator"),
                                                                                  (4, "replace:enroll", "alice")]
