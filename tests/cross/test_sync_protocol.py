"""The sync link's security and robustness, with the gate's sync server run in-process (CPython):
mutual authentication, MACs and counters, replayed sessions, signed trust lists and time, deny list
pushes, and a link cut at every single frame of a sync."""
import hashlib
import time

import cbor2
import pytest

from synchelp import FakeGate, LoopTransport
from offgate.sync import session
from offgate_host.wire import keys
from offgate_host.sync import frames as syncframes
from offgate_host.backoffice.backoffice import BackOffice
from offgate_host.ledger.ledger import Ledger
from faults import DropAfter
from offgate_host.sync.frames import GateRefused, LinkError, SyncError
from offgate_host.sync.client import SyncClient, signed_trust
from offgate_host.ledger.pull import sync_gate

NOW = int(time.time())


@pytest.fixture
def env(tmp_path):
    bo = BackOffice(tmp_path / "bo")
    bo.init_issuer("t", valid_from=NOW - 86400)
    bo.create_account("a", balance=50000)  # many credentials, each holding the default cap
    g = FakeGate(tmp_path / "g1", 11, bo)
    srv = session.SyncServer(g.port())
    return bo, g, srv, tmp_path


def client(srv, bo, key=None, cred=None):
    k, c = bo.operator_identity()
    return SyncClient(LoopTransport(srv), key or k, cred or c)


def gate_files(g):
    d = g.cfg["state_dir"]
    return {n: open(d + "/" + n, "rb").read() for n in ("deny.bin", "trust.cbor")}, g.oplog.acked()


def test_handshake_status_config(env):
    bo, g, srv, _ = env
    for i in range(3):
        g.log(b"\x01" * 8, i + 1)
    with client(srv, bo) as c:
        info = c.handshake()
        assert info["gate_id"] == 11 and info["scope"] == "full"
        assert info["device_pub"] == g.device_key.public_bytes()
        st = c.request("status")
        assert st["gate_id"] == 11 and st["log"]["backlog"] == 3 and st["clock"]["now"] >= NOW
        assert "storage" in st and st["firmware"]
        assert c.request("config")["config"]["gate_id"] == 11
        with pytest.raises(GateRefused):
            c.request("no-such-op")
        assert c.request("status")["ok"]  # a refused op does not end the session


def test_wrong_operator_key_is_refused_and_changes_nothing(env):
    bo, g, srv, _ = env
    before = gate_files(g)
    _, cred = bo.operator_identity()
    with client(srv, bo, key=keys.generate(), cred=cred) as c:  # credential for another key
        with pytest.raises(GateRefused, match="operator signature"):
            c.handshake()
    other = BackOffice(env[3] / "other")
    other.init_issuer("evil", valid_from=NOW - 10)
    with client(srv, bo, *other.operator_identity()) as c:       # not a trusted issuer
        with pytest.raises(GateRefused, match="trusted issuer"):
            c.handshake()
    # a rider credential is not an operator credential
    rider = keys.generate()
    rc = bo.issue_credential("a", keys.pub_bytes(rider), zones=[1])
    with client(srv, bo, key=rider, cred=rc) as c:
        with pytest.raises(GateRefused, match="operator role"):
            c.handshake()
    assert gate_files(g) == before and srv.refused == 3


def test_replayed_session_reads_nothing_changes_nothing(env):
    bo, g, srv, _ = env
    g.log(b"\x01" * 8, 1)
    t = LoopTransport(srv)
    k, cred = bo.operator_identity()
    bo.deny("0102030405060708")
    with SyncClient(t, k, cred) as c:
        c.handshake()
        c.push_deny(bo.deny_bytes())
        c.request("status")
    before = gate_files(g)
    replay = LoopTransport(srv)
    replay.open()
    answers = [replay.session.feed(f) for f in t.sent]
    replay.close()
    # HELLO gets a fresh CHALLENGE, the old AUTH no longer verifies, nothing after it is read
    assert answers[0][5] == syncframes.CHALLENGE
    assert all(a[5] == syncframes.ERROR for a in answers[1:])
    assert not any(a[5] == syncframes.RESPONSE for a in answers)
    assert gate_files(g) == before


def test_tampered_mac_and_replayed_frame_end_the_session(env):
    bo, g, srv, _ = env
    g.log(b"\x01" * 8, 1)
    head = g.oplog.head()
    with client(srv, bo) as c:
        c.handshake()
        frame = bytearray(c._seal(syncframes.REQUEST, {"op": "ack", "seq": head[0], "chain": head[1]}))
        frame[-6] ^= 1  # inside the CCM tag; fix the CRC so only the tag is wrong
        import zlib
        import struct
        frame[-4:] = struct.pack(">I", zlib.crc32(bytes(frame[:-4])) & 0xFFFFFFFF)
        c.t.send(bytes(frame))
        with pytest.raises(GateRefused, match="tag"):
            c._expect(syncframes.RESPONSE)
        with pytest.raises((LinkError, SyncError)):
            c.request("status")  # the session is dead
    assert g.oplog.acked()[0] == 0
    with client(srv, bo) as c:
        c.handshake()
        f = c._seal(syncframes.REQUEST, {"op": "status"})
        c.t.send(f)
        c._open_secured(syncframes.RESPONSE, c._expect(syncframes.RESPONSE))
        c.t.send(f)  # the same frame again: its counter is old
        with pytest.raises(GateRefused, match="counter"):
            c._expect(syncframes.RESPONSE)


def test_trust_list_must_be_root_signed_and_not_older(env):
    bo, g, srv, tmp = env
    bo.rotate_issuer(valid_from=NOW - 10)
    signed, serial = signed_trust(bo)
    forged = BackOffice(tmp / "forger").root_sign(cbor2.dumps({0: "trust", 1: serial + 1, 2: bo.trust_bytes()}))
    time_msg = bo.root_sign(cbor2.dumps({0: "time", 1: 11, 2: b"x" * 16, 3: NOW}))
    with client(srv, bo) as c:
        c.handshake()
        with pytest.raises(GateRefused, match="root key"):
            c.push_trust(forged)
        with pytest.raises(GateRefused, match="not a trust"):
            c.push_trust(time_msg)
        assert len(g.verifier.trust.keys) == 1
        assert c.push_trust(signed)["keys"] == 2
        assert len(g.verifier.trust.keys) == 2
        from offgate_host.wire import formats
        old = bo.root_sign(cbor2.dumps({0: "trust", 1: serial - 1,
                                        2: formats.trust_store_bytes(bo.issuer_keys(), serial - 1, NOW)}))
        with pytest.raises(GateRefused, match="not newer"):
            c.push_trust(old)
        with pytest.raises(GateRefused, match="not newer"):
            c.push_trust(signed)  # the same list again is not newer either
        relabelled = bo.root_sign(cbor2.dumps({0: "trust", 1: serial + 5, 2: bo.trust_bytes()}))
        with pytest.raises(GateRefused, match="outside"):
            c.push_trust(relabelled)  # the serial inside the file is what counts
    assert g.verifier.trust.serial == serial


def test_signed_time_needs_the_fresh_nonce(env):
    bo, g, srv, _ = env
    NOW = int(time.time())  # noqa: N806 (the module's NOW is import time; this suite runs for minutes)
    with client(srv, bo) as c:
        c.handshake()
        r = c.set_time(bo.root_sign, now=NOW + 1000)
        assert 990 <= r["drift"] <= 1010 and abs(g.clock.now() - (NOW + 1000)) < 10
        n = c.request("time_nonce")["nonce"]
        signed = bo.root_sign(cbor2.dumps({0: "time", 1: 11, 2: n, 3: NOW + 5000}))
        c.request("set_time", signed=signed)
        with pytest.raises(GateRefused, match="nonce"):
            c.request("set_time", signed=signed)  # replayed: the nonce was used up
        n = c.request("time_nonce")["nonce"]
        with pytest.raises(GateRefused, match="another gate"):
            c.request("set_time", signed=bo.root_sign(cbor2.dumps({0: "time", 1: 12, 2: n, 3: NOW})))
    assert srv.state["last_set"] == NOW + 5000


def raw_deny_v2(ids, serial, issued, sign, fix_crc=True):
    """A version-2 deny list with the ids in the order given (no sorting): for broken lists."""
    import struct
    import zlib
    body = b"OGDL\x02\x00\x00\x00" + struct.pack(">IIII", len(ids), serial, issued, 0) + b"".join(ids)
    sig = sign(cbor2.dumps({0: "deny", 1: serial, 2: issued, 3: len(ids), 4: hashlib.sha256(body).digest()}))
    out = body + struct.pack(">H", len(sig)) + sig
    return out + struct.pack(">I", zlib.crc32(out) & 0xFFFFFFFF)


def test_bad_deny_list_is_refused_and_the_old_one_kept(env):
    from offgate_host.wire import formats
    bo, g, srv, tmp = env
    bo.deny("0102030405060708")
    with client(srv, bo) as c:
        c.handshake()
        assert c.push_deny(bo.deny_bytes())["count"] == 1
        serial = bo.deny_serial()
        bad = raw_deny_v2([b"\x09" * 8, b"\x01" * 8], serial + 1, NOW, bo.root_sign)  # not ascending
        with pytest.raises(GateRefused, match="ascending"):
            c.push_deny(bad)
        with pytest.raises(GateRefused, match="unsigned"):
            c.push_deny(formats.deny_list_bytes([bytes([i]) * 8 for i in range(3)]))  # v1: anyone could make it
        forged = raw_deny_v2([], serial + 1, NOW, BackOffice(tmp / "forger").root_sign)
        with pytest.raises(GateRefused, match="root key"):
            c.push_deny(forged)
        with pytest.raises(GateRefused, match="not newer"):
            c.push_deny(raw_deny_v2([], serial, NOW, bo.root_sign))
        with pytest.raises(GateRefused, match="SHA-256"):
            c.request("deny_begin", size=40, sha256=bytes(32))
            c.request("deny_chunk", off=0, data=bo.deny_bytes()[:40])
            c.request("deny_commit")
        assert g.verifier.deny.count == 1 and g.verifier.deny.serial == serial
        big = sorted({bytes.fromhex("%016x" % ((i * 7919 + 1) << 24)) for i in range(3000)})  # distinct 5-byte prefixes
        for cti in big:
            bo.deny(cti)
        assert c.push_deny(bo.deny_bytes())["count"] == 3001  # chunked, checked in pieces
    assert g.verifier.deny.count == 3001 and g.verifier.deny.contains(big[1234])
    assert g.verifier.deny.serial == serial + 1


def test_clock_scope_when_the_gate_clock_is_wrong(env):
    bo, g, srv, _ = env
    g.clock.offset = -10 * 86400  # ten days behind: the issuer key is not valid yet at the gate
    with client(srv, bo) as c:
        assert c.handshake()["scope"] == "clock"
        with pytest.raises(GateRefused, match="only signed time"):
            c.request("pull")
        c.set_time(bo.root_sign)
    with client(srv, bo) as c:
        assert c.handshake()["scope"] == "full"


def _gate_with_records(bo, d, gid, n=250):
    g = FakeGate(d, gid, bo)
    cti = bytes.fromhex("0a0b0c0d0e0f1011")
    for i in range(n):
        g.log(cti if i % 3 else None, i + 1, "OPEN" if i % 5 else "DENY", 0 if i % 5 else 14)
    return g, session.SyncServer(g.port())


def test_link_cut_at_every_frame_loses_and_doubles_nothing(env):
    bo, _, _, tmp = env
    bo.deny("0102030405060708")
    g, srv = _gate_with_records(bo, tmp / "probe", 20)
    probe = DropAfter(LoopTransport(srv), 10 ** 6)
    sync_gate(probe, bo, Ledger(str(tmp / "probe.db")), max_records=100)
    total = probe.count  # frames in one complete sync (both ways)
    assert total > 20
    for n in range(1, total):
        g, srv = _gate_with_records(bo, tmp / ("cut%d" % n), 100 + n)
        led = Ledger(str(tmp / ("l%d.db" % n)))
        with pytest.raises(LinkError):
            sync_gate(DropAfter(LoopTransport(srv), n), bo, led, max_records=100)
        s = sync_gate(LoopTransport(srv), bo, led, max_records=100)
        recs = led.records(100 + n)
        assert [r["seq"] for r in recs] == list(range(1, 251)), n
        assert led.anomalies() == [] and g.oplog.acked()[0] == 250
        assert g.verifier.deny.count == 1
        led.close()
