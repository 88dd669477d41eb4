"""Attacks on the sync link, the gate's lists and the ledger (issue 11), each performed end to end
with simulated gates (the real firmware's sync server in-process), the real sync client and the
real ledger, and each shown refused with nothing lost."""
import time

import cbor2
import pytest
from click.testing import CliRunner

from synchelp import FakeGate, LoopTransport
from offgate.sync import session
from offgate_host.wire import formats, keys
from offgate_host.backoffice.backoffice import BackOffice
from offgate_host.cli import main
from offgate_host.ledger.ledger import Ledger
from offgate_host.sync.frames import GateNotEnrolled, GateRefused
from offgate_host.sync.client import SyncClient
from offgate_host.ledger.pull import sync_gate
from offgate_host.wallet import Wallet

NOW = int(time.time())


@pytest.fixture
def world(tmp_path):
    bo = BackOffice(tmp_path / "bo")
    bo.init_issuer("t", valid_from=NOW - 86400)
    bo.create_account("victim", balance=5000)
    w = Wallet.create(tmp_path / "victim.json")
    w.set_credential(bo.issue_credential("victim", w.pub65, zones=[1], valid_seconds=3600, now=NOW))
    from offgate_host.wire import formats
    cti = formats.parse_credential(w.credential)["cti"]
    led = Ledger.for_backoffice(bo)
    return bo, led, cti, tmp_path


def _forged_gate(bo, d, gid, cti, n=10):
    """A process posing as gate `gid`: its own device key, forged passages for the victim."""
    g = FakeGate(d, gid, bo, register=False)
    for i in range(n):
        g.log(cti, 100 + i)
    return g, session.SyncServer(g.port())


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
    s = sync_gate(LoopTransport(session.SyncServer(real.port())), bo, led)  # the real one is enrolled on sync
    assert s["new"] == 1 and [r["action"] for r in led.gate_log(12)] == ["provisioned"]
    with pytest.raises(GateNotEnrolled, match="not the enrolled one.*--replace"):
        sync_gate(LoopTransport(srv), bo, led)
    assert len(led.records()) == 1


def test_ingest_refuses_unenrolled_gate_or_key(world):
    bo, led, cti, tmp = world
    from offgate_host.ledger.ledger import GateNotEnrolled as LedgerRefusal, chain_next, ZERO32
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
    srv = session.SyncServer(g.port())
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
    from offgate_host.backoffice.backoffice import BackOfficeError
    with pytest.raises(BackOfficeError, match="revoked"):
        bo.operator_identity("night-shift")


def test_ack_without_pull_frees_nothing(world):
    bo, led, cti, tmp = world
    g = FakeGate(tmp / "g6", 6, bo)
    srv = session.SyncServer(g.port())
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
    srv = session.SyncServer(g.port())
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


# ---------------------------------------------------------------- 3. lists that cannot be rolled back
def test_field_case_deny_rollback_on_the_simulated_gate(world):
    """../shared/field-cases/deny-rollback: a copy of the back office taken before a revocation
    syncs the gate; the gate keeps the newer list and the revoked credential stays refused."""
    import shutil

    from mpbridge import free_port
    from offgate_host.device.simgate import write_gate_dir
    from offgate_host.device.provision import provision_gate_dir
    from backlog import SyncSimGate
    bo, led, cti, tmp = world
    cfg = write_gate_dir(tmp / "gate", gate_id=21, zone=1, trust=bo.trust_bytes(), deny=bo.deny_bytes())
    provision_gate_dir(cfg.parent, bo, gate_id=21)
    led.close()
    shutil.copytree(tmp / "bo", tmp / "backup")           # the back-office copy, before the revocation
    bo.deny(cti)                                            # offgate deny add CTI
    led = Ledger.for_backoffice(bo)
    g = SyncSimGate(cfg, free_port()).start()
    try:
        s = sync_gate(g.transport(), bo, led)
        assert s["deny_count"] == 1
        serial = s["deny_serial"]
        code = _victim_code(tmp)
        assert g.scan(code)["reason"] == "REVOKED"
        old = BackOffice(tmp / "backup")
        old_led = Ledger.for_backoffice(old)
        s = sync_gate(g.transport(), old, old_led)          # the restored copy syncs the same gate
        assert "deny_serial" not in s and any("newer than this back office" in x for x in s["warnings"])
        with SyncClient(g.transport(), *old.operator_identity()) as c:   # and pushing it anyway
            c.handshake()
            with pytest.raises(GateRefused, match="not newer than the gate's %d" % serial):
                c.push_deny(old.deny_bytes())
            old.deny("0909090909090909")                    # even a copy that revokes on its own
            with pytest.raises(GateRefused, match="not newer"):
                c.push_deny(old.deny_bytes())
            st = c.request("status")
        assert st["deny"]["serial"] == serial and st["deny"]["count"] == 1 and st["deny"]["signed"]
        assert 0 <= st["deny"]["age"] < 600 and st["trust"]["serial"] == bo.trust_serial()
        assert g.scan(_victim_code(tmp))["reason"] == "REVOKED"
    finally:
        g.kill()


def _victim_code(tmp):
    w = Wallet.load(tmp / "victim.json")
    return w.qr_text(w.next_code())


def test_trust_serial_lives_in_the_file_a_lost_sync_json_cannot_reset_it(world):
    bo, led, cti, tmp = world
    import os
    g = FakeGate(tmp / "g8", 8, bo)
    srv = session.SyncServer(g.port())
    sniffed, s1 = __import__("offgate_host.sync.client", fromlist=["signed_trust"]).signed_trust(bo)
    bo.rotate_issuer(valid_from=NOW - 10)
    assert sync_gate(LoopTransport(srv), bo, led)["trust_serial"] == s1 + 1
    try:
        os.remove(g.cfg["state_dir"] + "/sync.json")
    except OSError:
        pass
    from offgate.policy.trust import TrustStore
    g.verifier.set_trust(TrustStore.load(g.cfg["state_dir"] + "/trust.cbor"))   # a reboot
    srv = session.SyncServer(g.port())
    with SyncClient(LoopTransport(srv), *bo.operator_identity()) as c:
        c.handshake()
        assert c.request("status")["trust"]["serial"] == s1 + 1
        with pytest.raises(GateRefused, match="not newer"):
            c.push_trust(sniffed)                                  # the older, sniffed, root-signed list
    assert len(g.verifier.trust.keys) == 2


def test_host_refuses_to_sign_its_own_wrong_clock(world):
    bo, led, cti, tmp = world
    from offgate_host.backoffice.backoffice import ClockRefused
    g = FakeGate(tmp / "g9", 9, bo)
    srv = session.SyncServer(g.port())
    assert "drift" in sync_gate(LoopTransport(srv), bo, led)         # a good clock: time set
    last = g.clock.now()
    before = g.clock.offset
    with pytest.raises(ClockRefused, match="behind the newest time this back office has already signed"):
        sync_gate(LoopTransport(srv), bo, led, now=NOW - 3 * 3600)  # a laptop three hours behind
    assert g.clock.offset == before
    with pytest.raises(ClockRefused, match="ahead of the newest time"):
        bo.signing_time(NOW + 90 * 86400)
    other = BackOffice(tmp / "bo2")                                   # a fresh data dir knows no floor,
    with pytest.raises(ClockRefused, match="behind the time this gate was last given"):
        other.signing_time(last - 3600, not_before=last)             # but the gate's last time is one
    s = sync_gate(LoopTransport(srv), bo, led, now=NOW - 3 * 3600, force_time=True)  # deliberate
    assert s.get("drift", s.get("time_fixed")) < -3 * 3600 + 600


def test_stale_deny_list_policy(world):
    bo, led, cti, tmp = world
    from offgate.policy.denylist import DenyList
    from offgate.policy.verifier import Verifier
    d = tmp / "stale"
    d.mkdir()
    (d / "deny.bin").write_bytes(bo.deny_bytes())
    dl = DenyList(str(d / "deny.bin"))
    assert not dl.stale(NOW, 7 * 86400) and dl.stale(NOW + 8 * 86400, 7 * 86400)
    from offgate import config
    assert config.validate({"gate_id": 1, "zone": 1})["list_stale_policy"] == "report"
    with pytest.raises(config.ConfigError, match="list_stale_policy"):
        config.validate({"gate_id": 1, "zone": 1, "list_stale_policy": "ignore"})


def test_deny_list_v2_vector(tmp_path):
    """The version-2 deny list vector of docs/protocol.md §6, on the host and on the firmware."""
    import re
    from pathlib import Path
    from offgate import cose
    from offgate.policy.denylist import DenyList
    from offgate_host.wire import formats
    doc = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
    data = bytes.fromhex(re.search(r"\n(4f47444c02[0-9a-f]+)\n", doc).group(1))
    pub = bytes.fromhex(re.search(r"`(043d68c7[0-9a-f]+)`", doc).group(1))
    info = formats.deny_list_info(data, pub)
    assert (info["serial"], info["issued"], info["signed"]) == (7, 1800000000, True)
    assert info["ids"] == [bytes.fromhex("0102030405060708"), bytes.fromhex("a1a2a3a4a5a6a7a8")]
    (tmp_path / "deny.bin").write_bytes(data)
    dl = DenyList(str(tmp_path / "deny.bin"))
    assert (dl.count, dl.serial, dl.issued) == (2, 7, 1800000000) and dl.contains(bytes.fromhex("a1a2a3a4a5a6a7a8"))
    sig = data[24 + 16 + 2:-4]
    assert cbor2.loads(cose.sign1_verify(sig, pub))[1] == 7
    bad = bytearray(data)
    bad[30] ^= 1
    with pytest.raises(ValueError, match="CRC|ascending"):
        formats.deny_list_info(bytes(bad), pub)


# ---------------------------------------------------------------- 4. a confidential link; no work for strangers
class Tap(LoopTransport):
    """A passive listener on the link: keeps every byte both ways."""

    def __init__(self, server):
        super().__init__(server)
        self.heard = []

    def send(self, data):
        self.heard.append(bytes(data))
        super().send(data)

    def recv(self):
        d = super().recv()
        self.heard.append(bytes(d))
        return d


def test_passive_listener_reads_nothing(world):
    bo, led, cti, tmp = world
    g = FakeGate(tmp / "g30", 30, bo)
    srv = session.SyncServer(g.port())
    g.log(cti, 1)
    bo.deny(cti)
    k, cred = bo.operator_identity()
    tap = Tap(srv)
    import offgate_host.backoffice.backoffice as bom
    orig = bom.BackOffice.operator_identity
    bom.BackOffice.operator_identity = lambda self, *a, **kw: (k, cred)
    try:
        s = sync_gate(tap, bo, led)
    finally:
        bom.BackOffice.operator_identity = orig
    assert s["deny_count"] == 1 and g.verifier.deny.contains(cti)
    wire = b"".join(tap.heard)
    for secret in (cred, cti, cred[20:60], b"trust_serial", b"deny_count", b"acked", b"status", b"set_time",
                   bo.trust_bytes()[:40], b"operator"):
        assert secret not in wire, secret


def test_off_curve_key_and_handshake_flood_cost_the_gate_no_signature(world):
    bo, led, cti, tmp = world
    import os
    from offgate_host.sync.frames import AUTH, ERROR, HELLO, CHALLENGE, Deframer, encode_frame
    g = FakeGate(tmp / "g31", 31, bo)
    calls = {"sign": 0, "ecdh": 0}
    dk = g.device_key
    sign, ecdh = dk.sign, dk.ecdh
    dk.sign = lambda *a, **kw: (calls.__setitem__("sign", calls["sign"] + 1), sign(*a, **kw))[1]
    dk.ecdh = lambda *a, **kw: (calls.__setitem__("ecdh", calls["ecdh"] + 1), ecdh(*a, **kw))[1]
    srv = session.SyncServer(g.port())
    sess = srv.session()
    bad = b"\x04" + (1).to_bytes(32, "big") + (1).to_bytes(32, "big")   # (1, 1) is not on P-256
    out = Deframer().feed(sess.feed(encode_frame(HELLO, cbor2.dumps({1: os.urandom(16), 2: bad}))))
    assert out[0][0] == ERROR and b"not a point" in out[0][1]
    good_eph = keys.pub_bytes(keys.generate())
    answers = []
    for i in range(40):                      # a flood of HELLOs, each followed by a junk AUTH
        sess = srv.session()
        answers += Deframer().feed(sess.feed(encode_frame(HELLO, cbor2.dumps({1: os.urandom(16), 2: good_eph}))))
        answers += Deframer().feed(sess.feed(encode_frame(AUTH, cbor2.dumps({1: os.urandom(200)}))))
    kinds = [a[0] for a in answers]
    assert kinds.count(CHALLENGE) == 40
    busy = sum(1 for a in answers if a[0] == ERROR and b"busy" in a[1])
    assert busy >= 30                       # the rate limit stops the expensive step
    assert calls["sign"] == 0               # the gate signed nothing for anyone
    assert calls["ecdh"] <= 40 - busy
    with pytest.raises(GateRefused, match="busy"):   # a real operator is told to come back ...
        with SyncClient(LoopTransport(srv), *bo.operator_identity()) as c:
            c.handshake(busy_retries=0)
    with SyncClient(LoopTransport(srv), *bo.operator_identity()) as c:   # ... and gets in a second later
        assert c.handshake()["scope"] == "full"


def test_secured_frame_vector():
    """docs/protocol.md §9: a secured REQUEST, made by the host and opened by the firmware."""
    import re
    from pathlib import Path
    from offgate.sync import frames
    from offgate_host.sync import client as h
    doc = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
    vec = bytes.fromhex(re.search(r"\n(4f4753590110001f[0-9a-f]+)\n", doc).group(1))
    c = h.SyncClient(None, None, b"")
    c.k_hg = bytes(range(32))
    assert c._seal(h.REQUEST, {"op": "status"}) == vec
    sess = session.Session.__new__(session.Session)
    sess.k_hg, sess.rx = bytes(range(32)), 0
    (ftype, payload), = frames.Deframer().feed(vec)
    assert cbor2.loads(sess.open(ftype, payload)) == {"op": "status"}
    tampered = bytearray(payload)
    tampered[6] ^= 1
    sess.rx = 0
    assert sess.open(ftype, bytes(tampered)) is None


# ---------------------------------------------------------------- 5. a damaged log never loses a passage quietly
def _reboot(g):
    from offgate.log.oplog import OpLog
    g.oplog.close()
    g.oplog = OpLog(g.cfg["state_dir"] + "/oplog")
    rec = g.oplog.recover()
    return session.SyncServer(g.port()), rec


def test_flipped_bit_in_the_log_skips_one_record_and_keeps_its_bytes(world):
    bo, led, cti, tmp = world
    import os
    g = FakeGate(tmp / "g50", 50, bo)
    for i in range(22):
        g.log(cti, i + 1)
    d = g.cfg["state_dir"] + "/oplog"
    seg = sorted(n for n in os.listdir(d) if n.endswith(".seg"))[0]
    data = bytearray(open(d + "/" + seg, "rb").read())
    data[64 + 6 * 32 + 13] ^= 0x01                  # one bit inside seq 7's counter (32-byte records)
    open(d + "/" + seg, "wb").write(bytes(data))
    srv, rec = _reboot(g)
    assert rec["head"] == 22 and rec["damaged"] == [7] and rec["cut"] == 0
    s = sync_gate(LoopTransport(srv), bo, led)
    assert s["new"] == 21 and g.oplog.acked()[0] == 22
    kept = led.anomaly_records(50)
    assert [(r["seq"], r["kind"], r["ctr"]) for r in kept] == [(7, "damaged", 7 + (1 << 16))]  # as damaged
    assert kept[0]["raw"] == bytes(data[64 + 6 * 32:64 + 7 * 32]) and kept[0]["cti"] == cti
    assert any(a["kind"] == "damaged_record" and a["seq"] == 7 for a in led.anomalies())
    rep = led.report()
    assert rep["anomaly_records"][0]["kind"] == "damaged" and rep["gates"][0]["log_damaged"] == 1


def test_lost_ack_file_never_reuses_a_seq_and_nothing_goes_uncharged(world):
    bo, led, cti, tmp = world
    import os
    g = FakeGate(tmp / "g51", 51, bo)
    srv = session.SyncServer(g.port())
    for i in range(11):
        g.log(cti, i + 1)
    sync_gate(LoopTransport(srv), bo, led)
    os.remove(g.cfg["state_dir"] + "/oplog/ack")                 # flash damage: the ack file is gone
    srv, rec = _reboot(g)
    for i in range(5):
        g.log(cti, 100 + i)
    assert [r["seq"] for r in g.oplog.read(1, 10)] == [12, 13, 14, 15, 16]
    s = sync_gate(LoopTransport(srv), bo, led)
    assert s["new"] == 5 and led.anomaly_records() == [] and len(led.records(51)) == 16


def test_conflicting_records_are_stored_with_their_data_and_checked(world):
    """Even if a gate did reuse seqs (an old firmware, or both marks lost), the ledger keeps the
    conflicting passages with their data, checks them for double use, reports them, and the sync
    acknowledges only what was stored."""
    bo, led, cti, tmp = world
    import shutil
    g = FakeGate(tmp / "g52", 52, bo)
    srv = session.SyncServer(g.port())
    for i in range(11):
        g.log(cti, i + 1)
    sync_gate(LoopTransport(srv), bo, led)
    shutil.rmtree(g.cfg["state_dir"] + "/oplog")                 # the whole log directory lost
    srv, rec = _reboot(g)
    assert rec["head"] == 0
    for i in range(5):
        g.log(cti, 3 + i)                                        # seqs 1..5 again; ctr 3 was seq 3's too
    s = sync_gate(LoopTransport(srv), bo, led)
    kept = led.anomaly_records(52)
    assert [(r["seq"], r["kind"], r["ctr"]) for r in kept] == [(i + 1, "conflict", 3 + i) for i in range(5)]
    assert s["fraud"] >= 1 and cti in bo.deny_list()              # same counter opened twice: double use
    assert g.oplog.acked()[0] == 5                               # acknowledged: all five are stored
    assert len(led.report()["anomaly_records"]) == 5


# ---------------------------------------------------------------- 6. key rotation that cannot lock a gate out
def test_field_case_rotation_lockout_recovered_remotely(tmp_path):
    """../shared/field-cases/rotation-lockout: the gate trusts issuer key A only; the back office
    rotated to B and A expired before the gate was synced again. The root-signed operator
    credential opens the session, the root-signed trust list brings B; riders open again."""
    from mpbridge import free_port
    from offgate_host.device.simgate import write_gate_dir
    from offgate_host.device.provision import provision_gate_dir
    from backlog import SyncSimGate
    bo = BackOffice(tmp_path / "bo")
    bo.init_issuer("t", valid_from=NOW - 10 * 86400, valid_days=9)          # key A, expired yesterday
    # the gate was set up while A was valid (the back office never ships an expired key)
    cfg = write_gate_dir(tmp_path / "gate", gate_id=61, zone=1, trust=formats.trust_store_bytes(bo.issuer_keys(), serial=bo.trust_serial(), issued=NOW - 5 * 86400),
                         deny=bo.deny_bytes())
    provision_gate_dir(cfg.parent, bo, gate_id=61)
    bo.rotate_issuer(valid_from=NOW - 2 * 86400, lead_days=0)              # key B
    bo.create_account("r", balance=5000)
    w = Wallet.create(tmp_path / "r.json")
    w.set_credential(bo.issue_credential("r", w.pub65, zones=[1], now=NOW))
    led = Ledger.for_backoffice(bo)
    g = SyncSimGate(cfg, free_port()).start()
    try:
        assert g.scan(w.qr_text(w.next_code()))["reason"] == "UNKNOWN_ISSUER"
        k = bo.operator_identity()[0]
        with SyncClient(g.transport(), k, bo.issue_operator_credential(
                "operator", keys.pub_bytes(k), signer="issuer", now=NOW)) as c:
            with pytest.raises(GateRefused, match="root key or a trusted issuer"):
                c.handshake()                                               # what locked the gate out
        s = sync_gate(g.transport(), bo, led)
        assert s["trust_serial"] == bo.trust_serial() and s["tables"] >= 1   # B's comb table (A expired: not shipped)
        assert g.scan(w.qr_text(w.next_code()))["decision"] == "OPEN"
    finally:
        g.kill()


def test_damaged_trust_store_recovered_remotely(tmp_path):
    from mpbridge import free_port
    from offgate_host.device.simgate import write_gate_dir
    from offgate_host.device.provision import provision_gate_dir
    from backlog import SyncSimGate
    bo = BackOffice(tmp_path / "bo")
    bo.init_issuer("t", valid_from=NOW - 86400)
    bo.create_account("r", balance=5000)
    w = Wallet.create(tmp_path / "r.json")
    w.set_credential(bo.issue_credential("r", w.pub65, zones=[1], now=NOW))
    t = bytearray(bo.trust_bytes())
    t[len(t) // 2] ^= 0x20                                                   # one flipped bit
    cfg = write_gate_dir(tmp_path / "gate", gate_id=62, zone=1, trust=bytes(t), deny=bo.deny_bytes(), tables=False)
    provision_gate_dir(cfg.parent, bo, gate_id=62)
    led = Ledger.for_backoffice(bo)
    g = SyncSimGate(cfg, free_port()).start()
    try:
        before = g.scan(w.qr_text(w.next_code()))
        assert before["decision"] == "DENY"
        sync_gate(g.transport(), bo, led)
        assert g.scan(w.qr_text(w.next_code()))["decision"] == "OPEN"
    finally:
        g.kill()


def test_staged_rotation_signs_only_once_the_gates_have_the_key(world):
    bo, led, cti, tmp = world
    g1, g2 = FakeGate(tmp / "s1", 71, bo), FakeGate(tmp / "s2", 72, bo)
    old = bo.signing_key()[0]["kid"]
    sync_gate(LoopTransport(session.SyncServer(g1.port())), bo, led)
    sync_gate(LoopTransport(session.SyncServer(g2.port())), bo, led)
    new = bo.rotate_issuer(valid_from=NOW - 10)                      # lead time: 7 days by default
    assert bo.signing_key()[0]["kid"] == old                          # staged: not signing yet
    s = sync_gate(LoopTransport(session.SyncServer(g1.port())), bo, led)
    assert s["trust_serial"] == bo.trust_serial() and s["tables"] >= 2
    assert any("missing at gate(s) [72]" in w for w in s["warnings"])  # the back office warns
    assert bo.signing_key()[0]["kid"] == old
    s = sync_gate(LoopTransport(session.SyncServer(g2.port())), bo, led)
    assert s.get("promoted") == [new.hex()] and bo.signing_key()[0]["kid"] == new
    assert len(g2.verifier.trust.keys) == 2 and g2.verifier.trust.tables[0] >= 2
    bo.retire(old)                                                    # and the old key can go
    sync_gate(LoopTransport(session.SyncServer(g1.port())), bo, led)
    assert [k.kid for k in g1.verifier.trust.keys] == [new]
    assert bo.signing_key(NOW + 30 * 86400)[0]["kid"] == new


# ---------------------------------------------------------------- 7. one strictness for gate and host
# a copy of ../shared/field-cases/host-gate-differential (its README says what each code is)
FIELD_DIR = __import__("pathlib").Path(__file__).resolve().parents[1] / "fixtures" / "host-gate-differential"


def _field_dir():
    return FIELD_DIR


def _fw_decide(trust_bytes, line, now, gate_id=101, zone=1, deny_ids=()):
    """The firmware's verdict (offgate.policy.verifier, in-process), its reason name."""
    import tempfile
    from offgate import reasons
    from offgate.policy.denylist import DenyList
    from offgate.policy.trust import TrustError, TrustStore
    from offgate.policy.verifier import Verifier

    class Fresh:
        def fresh(self, cti, ctr):
            return True
    try:
        trust = TrustStore.from_bytes(trust_bytes)
    except TrustError:
        trust = TrustStore()
    v = Verifier(trust, DenyList(), Fresh(), gate_id, zone, 60, 30, 0)
    d = v.decide(line.encode() if isinstance(line, str) else line, now)
    return reasons.name(d.reason)


@pytest.mark.parametrize("case", ["duplicate-key", "true-key", "trailing-byte", "indefinite-map"])
def test_field_case_host_gate_differential(case, tmp_path):
    d = _field_dir()
    line = (d / (case + ".txt")).read_text().strip()
    trust = (d / "trust.cbor").read_bytes()
    from offgate_host.wire import gateview
    assert _fw_decide(trust, line, 1800000120) == "MALFORMED_CODE"
    verdict, info = gateview.decide(line, gateview.trust_keys(trust), 1800000120, 101, 1)
    assert verdict == "MALFORMED_CODE" and "credential" not in info and "ctr" not in info
    r = CliRunner().invoke(main, ["inspect", "--data", str(tmp_path / "none"), "--trust", str(d / "trust.cbor"),
                                  "--now", "1800000120", "--gate-id", "101", "--zone", "1", line])
    assert r.exit_code == 1 and "the gate would decide MALFORMED_CODE" in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1
    assert "500" not in r.output and "someone-else" not in r.output and "valid" not in r.output


def test_inspect_says_what_the_gate_would_decide(world):
    bo, led, cti, tmp = world
    w = Wallet.load(tmp / "victim.json")
    line = w.qr_text(w.code(NOW, 5))
    (tmp / "trust.cbor").write_bytes(bo.trust_bytes())
    r = CliRunner().invoke(main, ["inspect", "--trust", str(tmp / "trust.cbor"), "--now", str(NOW), "--zone", "1", line])
    assert r.exit_code == 0 and "OK" in r.output
    r = CliRunner().invoke(main, ["inspect", "--trust", str(tmp / "trust.cbor"), "--now", str(NOW + 600), line])
    assert r.exit_code == 0 and "CODE_STALE" in r.output


def _resign(rider_key, payload, tagged=True):
    from offgate_host.wire import formats
    return formats.sign1(rider_key, {formats.H_ALG: formats.ALG_ES256}, payload, tagged=tagged)


_CBOR_VARIANTS = [
    lambda p: p + b"\x00",                                          # trailing byte
    lambda p: bytes([0xBF]) + p[1:] + b"\xff",                      # indefinite-length map
    lambda p: bytes([p[0] + 1]) + p[1:] + b"\x03\x19\x01\xf4",      # duplicate key 3 (counter 500)
    lambda p: bytes([p[0] + 1]) + p[1:] + b"\xf5\x01",              # a `true` key
    lambda p: bytes([p[0] + 1]) + p[1:] + b"\x04\xf9\x3c\x00",      # a float value
    lambda p: bytes([p[0] + 1]) + p[1:] + b"\x04\xc1\x00",          # a tag inside
    lambda p: bytes([p[0] + 1]) + p[1:] + b"\x04\xf7",              # undefined
    lambda p: bytes([p[0] + 1]) + p[1:] + b"\x18\x03\x02",          # key 3 again, non-shortest head
    lambda p: bytes([p[0] + 1]) + p[1:] + b"\x63\x63\x74\x72\x01",  # an extra text key "ctr"
    lambda p: p,                                                     # unchanged (re-signed)
]


@pytest.fixture(scope="module")
def diff_world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("diff")
    bo = BackOffice(tmp / "bo")
    bo.init_issuer("t", valid_from=NOW - 86400)
    bo.create_account("a", balance=5000)
    w = Wallet.create(tmp / "w.json")
    w.set_credential(bo.issue_credential("a", w.pub65, zones=[1], gates=[101, 102], valid_seconds=3600, now=NOW))
    return bo.trust_bytes(), w


from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["flip", "insert", "delete", "cbor", "cred_flip", "text"]),
       pos=st.integers(0, 10 ** 6), val=st.integers(0, 255), variant=st.integers(0, len(_CBOR_VARIANTS) - 1),
       dt=st.sampled_from([0, 45, 95, -40, 4000]))
def test_host_and_gate_agree_on_mutated_codes(diff_world, kind, pos, val, variant, dt):
    """The same mutated inputs to the firmware verifier and to the host's gateview: same verdict."""
    import cbor2
    from offgate_host.wire import formats, gateview
    trust, w = diff_world
    code = bytearray(w.code(NOW, 7))
    if kind == "flip":
        code[pos % len(code)] ^= (val or 1)
    elif kind == "insert":
        code.insert(pos % (len(code) + 1), val)
    elif kind == "delete":
        del code[pos % len(code)]
    elif kind in ("cbor", "cred_flip"):
        s = cbor2.loads(bytes(code))                                 # [prot, {}, payload, sig]
        s = getattr(s, "value", s)                                   # tagged (18) or not: both are codes
        payload = s[2]
        if kind == "cred_flip":                                      # damage inside the credential, re-sign
            auth = cbor2.loads(payload)
            cred = bytearray(auth[1])
            cred[pos % len(cred)] ^= (val or 1)
            auth[1] = bytes(cred)
            payload = cbor2.dumps(auth)
        else:
            payload = _CBOR_VARIANTS[variant](payload)
        code = bytearray(_resign(w.key, payload, tagged=bool(val & 1)))
    line = formats.qr_text(bytes(code)) if kind != "text" else w.qr_text(bytes(code))[:max(4, pos % 420)] + \
        chr(32 + val % 95) * (val % 3)
    now = NOW + dt
    host, _ = gateview.decide(line, gateview.trust_keys(trust), now, 101, 1)
    assert _fw_decide(trust, line, now) == host, (kind, line)


def test_stale_deny_list_policy_on_the_simulated_gate(world):
    bo, led, cti, tmp = world
    from offgate_host.device.simgate import SimGate, write_gate_dir
    w = Wallet.create(tmp / "day.json")
    w.set_credential(bo.issue_credential("victim", w.pub65, zones=[1], valid_seconds=86400, now=NOW))
    for policy, expect in (("report", "OPEN"), ("refuse", "LIST_STALE")):
        cfg = write_gate_dir(tmp / ("gate-" + policy), gate_id=101, zone=1, trust=bo.trust_bytes(),
                             deny=bo.deny_bytes(), list_max_age_s=1800, list_stale_policy=policy)
        with SimGate(cfg, clock_offset=3600) as g:                       # the list is an hour old
            assert any("deny list stale" in n for n in g.boot["notes"]), g.boot
            assert g.scan(w.qr_text(w.code(int(time.time()) + 3600, 900)))["reason"] == ("OK" if expect == "OPEN"
                                                                                         else expect)


def test_simulated_gate_boots_with_a_damaged_log_record_and_loses_nothing_else(world):
    bo, led, cti, tmp = world
    import os
    from offgate_host.device.simgate import SimGate, write_gate_dir
    w = Wallet.load(tmp / "victim.json")
    cfg = write_gate_dir(tmp / "gdmg", gate_id=101, zone=1, trust=bo.trust_bytes(), deny=bo.deny_bytes())
    with SimGate(cfg) as g:
        for i in range(6):
            assert g.scan(w.qr_text(w.code(int(time.time()), 200 + i)))["decision"] == "OPEN"
    d = cfg.parent / "oplog"
    seg = d / sorted(n for n in os.listdir(d) if n.endswith(".seg"))[0]
    data = bytearray(seg.read_bytes())
    data[64 + 2 * 32 + 20] ^= 0x08                        # one bit in seq 3's credential id (32-byte records)
    seg.write_bytes(bytes(data))
    with SimGate(cfg) as g:
        assert any("damaged records kept, seqs [3]" in n for n in g.boot["notes"]), g.boot
        assert g.boot["log_head_seq"] == 6
        assert g.scan(w.qr_text(w.code(int(time.time()), 300)))["decision"] == "OPEN"
        assert g.scan(w.qr_text(w.code(int(time.time()), 204)))["reason"] == "REPLAY"  # the replay file kept it
