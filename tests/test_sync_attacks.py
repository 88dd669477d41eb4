"""Attacks on the sync link, the gate's lists and the ledger (issue 11), each performed end to end
with simulated gates (the real firmware's sync server in-process), the real sync client and the
real ledger, and each shown refused with nothing lost."""
import time

import cbor2
import pytest
from click.testing import CliRunner

from synchelp import FakeGate, LoopTransport
from offgate import syncserver
from offgate_host import keys
from offgate_host.backoffice import BackOffice
from offgate_host.cli import main
from offgate_host.ledger import Ledger
from offgate_host.syncclient import GateNotEnrolled, GateRefused, SyncClient, sync_gate
from offgate_host.wallet import Wallet

NOW = int(time.time())


@pytest.fixture
def world(tmp_path):
    bo = BackOffice(tmp_path / "bo")
    bo.init_issuer("t", valid_from=NOW - 86400)
    bo.create_account("victim", balance=5000)
    w = Wallet.create(tmp_path / "victim.json")
    w.set_credential(bo.issue_credential("victim", w.pub65, zones=[1], valid_seconds=3600, now=NOW))
    from offgate_host import formats
    cti = formats.parse_credential(w.credential)["cti"]
    led = Ledger.for_backoffice(bo)
    return bo, led, cti, tmp_path


def _forged_gate(bo, d, gid, cti, n=10):
    """A process posing as gate `gid`: its own device key, forged passages for the victim."""
    g = FakeGate(d, gid, bo, register=False)
    for i in range(n):
        g.log(cti, 100 + i)
    return g, syncserver.SyncServer(g)


def _nothing_believed(bo, led, before_deny):
    assert led.records() == [] and led.fraud() == []
    assert bo.deny_list() == before_deny
    assert led.settle(bo)["trips"] == 0


# ---------------------------------------------------------------- 1. the ledger believes only enrolled gates
def test_unenrolled_gate_id_is_refused_before_anything_is_pulled(world):
    bo, led, cti, tmp = world
    g, srv = _forged_gate(bo, tmp / "g99", 99, cti)
    with pytest.raises(GateNotEnrolled, match=r"gate 99 is not enrolled.*offgate gates enroll 99"):
        sync_gate(LoopTransport(srv), bo, led)
    _nothing_believed(bo, led, [])
    assert g.oplog.acked()[0] == 0 and g.oplog.head()[0] == 10  # the gate kept everything too
    assert led.gates() == []


def test_registered_but_never_synced_gate_cannot_be_taken_over(world):
    bo, led, cti, tmp = world
    real = FakeGate(tmp / "real12", 12, bo)              # provisioned: registered with its key
    fake, srv = _forged_gate(bo, tmp / "fake12", 12, cti)
    with pytest.raises(GateNotEnrolled, match="not the one it was provisioned with"):
        sync_gate(LoopTransport(srv), bo, led)
    _nothing_believed(bo, led, [])
    real.log(cti, 1)
    s = sync_gate(LoopTransport(syncserver.SyncServer(real)), bo, led)  # the real one is enrolled on sync
    assert s["new"] == 1 and [r["action"] for r in led.gate_log(12)] == ["provisioned"]
    with pytest.raises(GateNotEnrolled, match="not the enrolled one.*--replace"):
        sync_gate(LoopTransport(srv), bo, led)
    assert len(led.records()) == 1


def test_ingest_refuses_unenrolled_gate_or_key(world):
    bo, led, cti, tmp = world
    from offgate_host.ledger import GateNotEnrolled as LedgerRefusal, chain_next, ZERO32
    r = {"seq": 1, "t": NOW, "cti": cti, "ctr": 1, "decision": "OPEN", "reason": 0, "missed": 0}
    r["chain"] = chain_next(ZERO32, r)
    with pytest.raises(LedgerRefusal):
        led.ingest(7, [r])
    led.enroll_gate(7, keys.pub_bytes(keys.generate()))
    with pytest.raises(LedgerRefusal, match="not the enrolled one"):
        led.ingest(7, [r], device_pub=keys.pub_bytes(keys.generate()))
    assert led.records() == []


def test_explicit_enrolment_command_is_logged_and_then_sync_works(world):
    bo, led, cti, tmp = world
    g, srv = _forged_gate(bo, tmp / "g40", 40, cti, n=2)   # an unregistered but genuine gate
    with pytest.raises(GateNotEnrolled):
        sync_gate(LoopTransport(srv), bo, led)
    r = CliRunner().invoke(main, ["gates", "enroll", "--data", str(tmp / "bo"), "40", "--gate-dir",
                                  str(tmp / "g40"), "--by", "alice"])
    assert r.exit_code == 0, r.output
    assert sync_gate(LoopTransport(srv), bo, led)["new"] == 2
    assert [(x["action"], x["by_whom"]) for x in led.gate_log(40)] == [("enroll", "alice")]
    r = CliRunner().invoke(main, ["gates", "enroll", "--data", str(tmp / "bo"), "40", "--key", "04" + "00" * 64])
    assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1


# ---------------------------------------------------------------- 2. revocable operators; an ack covers only what was pulled
def _gate_files(g):
    d = g.cfg["state_dir"]
    return {n: open(d + "/" + n, "rb").read() for n in ("deny.bin", "trust.cbor")}, g.oplog.acked(), g.oplog.head()


def test_revoked_operator_credential_is_refused_in_every_scope(world):
    bo, led, cti, tmp = world
    g = FakeGate(tmp / "g5", 5, bo)
    srv = syncserver.SyncServer(g)
    for i in range(6):
        g.log(cti, i + 1)
    thief_key, thief_cred = bo.operator_identity("night-shift")     # stolen from a laptop
    assert bo.revoke_operator("night-shift")                         # the back office revokes it
    sync_gate(LoopTransport(srv), bo, led)                           # the next sync brings the deny list
    before = _gate_files(g)
    with SyncClient(LoopTransport(srv), thief_key, thief_cred) as c:
        with pytest.raises(GateRefused, match="revoked"):
            c.handshake()
    g.clock.offset = 30 * 86400                                      # and in the clock-only scope too
    with SyncClient(LoopTransport(srv), thief_key, thief_cred) as c:
        with pytest.raises(GateRefused, match="revoked"):
            c.handshake()
    assert _gate_files(g) == before
    from offgate_host.backoffice import BackOfficeError
    with pytest.raises(BackOfficeError, match="revoked"):
        bo.operator_identity("night-shift")


def test_ack_without_pull_frees_nothing(world):
    bo, led, cti, tmp = world
    g = FakeGate(tmp / "g6", 6, bo)
    srv = syncserver.SyncServer(g)
    for i in range(6):
        g.log(cti, i + 1)
    head = g.oplog.head()
    with SyncClient(LoopTransport(srv), *bo.operator_identity()) as c:
        c.handshake()
        with pytest.raises(GateRefused, match="beyond what this session pulled"):
            c.request("ack", seq=head[0], chain=head[1])
        c.request("pull", max=2)
        with pytest.raises(GateRefused, match="beyond what this session pulled"):
            c.request("ack", seq=head[0], chain=head[1])
        two = g.oplog.read(2, 1)[0]["chain"]
        assert c.request("ack", seq=2, chain=two)["acked"]
    with SyncClient(LoopTransport(srv), *bo.operator_identity()) as c:  # a new session pulled nothing
        c.handshake()
        with pytest.raises(GateRefused, match="beyond what this session pulled"):
            c.request("ack", seq=head[0], chain=head[1])
    assert g.oplog.acked()[0] == 2 and g.oplog.head()[0] == 6
    assert sync_gate(LoopTransport(srv), bo, led)["new"] == 4   # all but the two this test pulled itself


def test_expired_operator_credential_reads_nothing(world):
    bo, led, cti, tmp = world
    g = FakeGate(tmp / "g7", 7, bo)
    srv = syncserver.SyncServer(g)
    g.log(cti, 1)
    k, cred = bo.operator_identity("old", now=NOW - 7200)             # expired an hour ago
    with SyncClient(LoopTransport(srv), k, cred) as c:
        assert c.handshake()["scope"] == "clock"
        for op in ("status", "config", "pull"):
            with pytest.raises(GateRefused, match="only signed time"):
                c.request(op)
        with pytest.raises(GateRefused, match="only signed time"):
            c.request("ack", seq=1, chain=g.oplog.head()[1])
    assert g.oplog.acked()[0] == 0
