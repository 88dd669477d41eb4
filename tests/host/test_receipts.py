"""Signed electronic receipts on the tamper-evident log (receipts.py, docs/receipts.md): requests
signed by the wallet key, receipts signed, encrypted to the rider and logged; verification of the
signature, inclusion proof, tree head, consistency and the ledger records; tampering with the
store detected. Runs on SQLite always and on PostgreSQL when OFFGATE_TEST_PG_URL is set."""
import cbor2
import pytest

from offgate_host.wire import keys
from offgate_host.ledger import receipts, stations
from offgate_host.backoffice.backoffice import BackOffice
from offgate_host.wire.formats import parse_credential
from offgate_host.ledger.ledger import ZERO32, Ledger, chain_next
from offgate_host.wallet import Wallet
from ledgerhelp import NOW, backoffice_on

FARE = 320


class World:
    def __init__(self, tmp_path, kind):
        self.bo = backoffice_on(kind, tmp_path / "bo")
        self.bo.init_issuer("Zakroczym Transit", valid_from=NOW - 5 * 86400)
        self.led = Ledger.for_backoffice(self.bo)
        self.led.set_fare(1, FARE)
        receipts.set_settings(self.led, tax_id="PL5250001009", address="ul. Warszawska 1", vat_bp=800)
        self.bo.create_account("alice", balance=10000)
        self.bo.create_account("bob", balance=10000)
        self.wallet = Wallet.create(tmp_path / "alice.json")
        self.wallet.set_credential(self.bo.issue_credential("alice", self.wallet.pub65, zones=[1], valid_seconds=5 * 86400,
                                                            now=NOW - 4 * 86400))
        receipts.register_enc_key(self.bo, self.wallet.pub65, self.wallet.enc_pub65)
        self.cti = parse_credential(self.wallet.credential)["cti"]
        self.bob = Wallet.create(tmp_path / "bob.json")
        self.bob.set_credential(self.bo.issue_credential("bob", self.bob.pub65, zones=[1], valid_seconds=5 * 86400,
                                                         now=NOW - 4 * 86400))
        receipts.register_enc_key(self.bo, self.bob.pub65, self.bob.enc_pub65)
        bob_cti = parse_credential(self.bob.credential)["cti"]
        stations.set_station(self.led, 11, "Rynek")
        stations.set_station(self.led, 12, "Dworzec")
        # alice: 3 trips at gate 11 on day -3, 2 at gate 12 on day -2; bob: 2 at gate 11
        for gate, events in ((11, [(NOW - 3 * 86400 + 600 * i, self.cti) for i in range(3)] +
                              [(NOW - 3 * 86400 + 5000 + i, bob_cti) for i in range(2)]),
                             (12, [(NOW - 2 * 86400 + 900 * i, self.cti) for i in range(2)])):
            self.led.enroll_gate(gate, b"\x04" + bytes([gate]) * 64)
            prev, recs = ZERO32, []
            for seq, (t, cti) in enumerate(sorted(events), start=1):
                r = {"seq": seq, "t": t, "cti": cti, "ctr": seq, "decision": "OPEN", "reason": 0, "missed": 0}
                r["chain"] = prev = chain_next(prev, r)
                recs.append(r)
            self.led.ingest(gate, recs)
        assert self.led.settle(self.bo, now=NOW)["trips"] == 7
        self.keys = receipts.public_keys(self.bo, self.led)
        self.rpub, self.lpub = bytes.fromhex(self.keys["receipt_pub"]), bytes.fromhex(self.keys["log_pub"])

    def request(self, wallet=None, cti=None, **kw):
        w = wallet or self.wallet
        return receipts.make_request(w.key, cti or parse_credential(w.credential)["cti"], now=NOW, **kw)

    def verify(self, bundle, wallet=None, with_ledger=True):
        return receipts.verify_bundle(bundle, self.rpub, self.lpub, (wallet or self.wallet).enc_key,
                                      self.led if with_ledger else None)

    def close(self):
        self.led.close()
        self.bo.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request, tmp_path):
    w = World(tmp_path, request.param)
    yield w
    w.close()


def test_period_and_trip_receipts_verify_into_the_ledger(world):
    b = receipts.issue(world.bo, world.led, world.request(period=(NOW - 4 * 86400, NOW)), now=NOW)
    out = world.verify(b)
    r = out["receipt"]
    assert [(t["gate"], t["seq"], t["station"], t["amount"]) for t in r["trips"]] == \
        [(11, 1, "Rynek", FARE), (11, 2, "Rynek", FARE), (11, 3, "Rynek", FARE), (12, 1, "Dworzec", FARE),
         (12, 2, "Dworzec", FARE)]
    assert r["total"] == 5 * FARE and r["currency"] == "PLN" and r["account"] == "alice"
    assert r["tax"] == {"rate_bp": 800, "tax": 119, "net": 5 * FARE - 119}   # 1600 * 8/108 = 118.5 -> 119
    assert r["operator"] == {"name": "Zakroczym Transit", "tax_id": "PL5250001009", "address": "ul. Warszawska 1"}
    recs = {(x["gate"], x["seq"]): bytes(x["chain"]) for x in world.led.records()}
    assert all(t["record"] == recs[(t["gate"], t["seq"])] for t in r["trips"])
    assert any(c.startswith("ledger: 5 record(s)") for c in out["checks"])
    one = receipts.issue(world.bo, world.led, world.request(trip=(12, 2)), now=NOW)
    assert [(t["gate"], t["seq"]) for t in world.verify(one)["receipt"]["trips"]] == [(12, 2)]
    # the first receipt's tree head is consistent with the grown log
    assert any(c.startswith("consistency: tree 1 -> 2") for c in world.verify(b)["checks"])
    # bob's receipt holds only bob's trips and only bob can read it
    bb = receipts.issue(world.bo, world.led, world.request(world.bob, period=(0, NOW + 1)), now=NOW)
    assert [t["gate"] for t in world.verify(bb, world.bob)["receipt"]["trips"]] == [11, 11]
    with pytest.raises(receipts.ReceiptError, match="does not decrypt"):
        world.verify(bb, world.wallet)
    # a plain export verifies without the wallet (for an employer); a fresh bundle proves inclusion in the newest tree
    plain = receipts.export_plain(b, world.wallet.enc_key)
    assert receipts.verify_bundle(plain, world.rpub, world.lpub)["receipt"]["total"] == 5 * FARE
    fresh = receipts.bundle_of(world.led, r["id"])
    assert cbor2.loads(fresh)["size"] == 3 and world.verify(fresh)["receipt"]["id"] == r["id"]
    assert receipts.audit(world.bo, world.led)["problems"] == []


def test_bad_requests_are_refused_and_change_nothing(world):
    period = (NOW - 4 * 86400, NOW)
    req = world.request(period=period)
    receipts.issue(world.bo, world.led, req, now=NOW)
    cases = [
        (req, "replayed"),
        (receipts.make_request(keys.generate(), world.cti, period=period, now=NOW), "signature verification failed"),
        (receipts.make_request(world.wallet.key, b"\x55" * 8, period=period, now=NOW), "never issued"),
        (receipts.make_request(world.wallet.key, world.cti, period=period, now=NOW - 3600), "stale"),
        (world.request(trip=(11, 4)), "no charged trip gate 11 seq 4"),  # bob's trip, not alice's
        (world.request(period=(NOW - 10, NOW)), "no charged trips"),
        (b"\xd2\x84garbage", "not valid CBOR"),
    ]
    for data, msg in cases:
        with pytest.raises(receipts.ReceiptError, match=msg):
            receipts.issue(world.bo, world.led, data, now=NOW)
    # bob asking for alice's trip by its (gate, seq): refused
    with pytest.raises(receipts.ReceiptError, match="no charged trip gate 11 seq 1 for this rider"):
        receipts.issue(world.bo, world.led, world.request(world.bob, trip=(11, 1)), now=NOW)
    world.bo.db.execute("DELETE FROM rider_enc_keys")
    world.bo.db.commit()
    with pytest.raises(receipts.ReceiptError, match="no receipt encryption key"):
        receipts.issue(world.bo, world.led, world.request(period=period), now=NOW)
    a = receipts.audit(world.bo, world.led)
    assert (a["size"], a["receipts"], a["tree_heads"], a["problems"]) == (1, 1, 1, [])


def _tamper(world, sql, args=()):
    world.led.db.execute(sql, args)
    world.led.db.commit()


def test_altering_dropping_or_reordering_the_store_is_detected(world):
    bundles = [receipts.issue(world.bo, world.led, world.request(trip=t), now=NOW + i)
               for i, t in enumerate([(11, 1), (11, 2), (11, 3), (12, 1), (12, 2)])]
    assert all(world.verify(b) for b in bundles)
    db = world.led.db
    rows = db.rows("SELECT id, idx, enc FROM receipts ORDER BY idx")
    entries = db.rows("SELECT idx, entry FROM receipt_log ORDER BY idx")

    def problems():
        return " | ".join(receipts.audit(world.bo, world.led)["problems"])

    # altered receipt bytes
    enc = bytearray(rows[1]["enc"])
    enc[-5] ^= 1
    _tamper(world, "UPDATE receipts SET enc = ? WHERE idx = 1", (bytes(enc),))
    assert "altered" in problems()
    with pytest.raises(receipts.ReceiptError):
        world.verify(receipts.bundle_of(world.led, bytes(rows[1]["id"])))
    _tamper(world, "UPDATE receipts SET enc = ? WHERE idx = 1", (bytes(rows[1]["enc"]),))
    assert problems() == ""
    # two receipts swapped (reordered)
    _tamper(world, "UPDATE receipts SET enc = ? WHERE idx = 1", (bytes(rows[2]["enc"]),))
    _tamper(world, "UPDATE receipts SET enc = ? WHERE idx = 2", (bytes(rows[1]["enc"]),))
    assert "altered" in problems()
    _tamper(world, "UPDATE receipts SET enc = ? WHERE idx = 1", (bytes(rows[1]["enc"]),))
    _tamper(world, "UPDATE receipts SET enc = ? WHERE idx = 2", (bytes(rows[2]["enc"]),))
    # a receipt dropped
    _tamper(world, "DELETE FROM receipts WHERE idx = 3")
    assert "dropped" in problems()
    _tamper(world, "INSERT INTO receipts (id, idx, account, rider_pub, enc, request_hash, created) "
                   "SELECT ?, 3, 'alice', rider_pub, ?, ?, 0 FROM receipts WHERE idx = 0",
            (bytes(rows[3]["id"]), bytes(rows[3]["enc"]), b"\x00" * 32))
    assert problems() == ""
    # log entries reordered: the signed tree heads and every rider's proofs catch it
    _tamper(world, "UPDATE receipt_log SET entry = ? WHERE idx = 0", (bytes(entries[1]["entry"]),))
    _tamper(world, "UPDATE receipt_log SET entry = ? WHERE idx = 1", (bytes(entries[0]["entry"]),))
    assert "do not hash to its signed root" in problems()
    with pytest.raises(receipts.ReceiptError, match="log rewritten"):
        world.verify(bundles[0])
    _tamper(world, "UPDATE receipt_log SET entry = ? WHERE idx = 0", (bytes(entries[0]["entry"]),))
    _tamper(world, "UPDATE receipt_log SET entry = ? WHERE idx = 1", (bytes(entries[1]["entry"]),))
    # a log entry altered (e.g. to match an altered receipt)
    e = cbor2.loads(bytes(entries[2]["entry"]))
    _tamper(world, "UPDATE receipt_log SET entry = ? WHERE idx = 2", (cbor2.dumps([e[0], e[1], b"\x00" * 32]),))
    assert "do not hash to its signed root" in problems()
    with pytest.raises(receipts.ReceiptError, match="log rewritten"):
        world.verify(bundles[3])
    _tamper(world, "UPDATE receipt_log SET entry = ? WHERE idx = 2", (bytes(entries[2]["entry"]),))
    # the newest receipt dropped with its log entry and tree head: the rider's bundle shows it
    _tamper(world, "DELETE FROM receipt_sth WHERE size = 5")
    _tamper(world, "DELETE FROM receipt_log WHERE idx = 4")
    _tamper(world, "DELETE FROM receipts WHERE idx = 4")
    assert problems() == ""   # a consistent shorter log: only a holder of a later tree head can tell
    with pytest.raises(receipts.ReceiptError, match="shorter"):
        world.verify(bundles[4])
    assert world.verify(bundles[3])   # earlier receipts still verify against the shorter log
    # a ledger record changed after the receipt named it
    _tamper(world, "UPDATE ledger_records SET chain = ? WHERE gate = 11 AND seq = 2", (b"\x01" * 32,))
    with pytest.raises(receipts.ReceiptError, match="gate 11 seq 2: the ledger's record differs"):
        world.verify(bundles[1])
    assert world.verify(bundles[1], with_ledger=False)


def test_tampered_bundles_do_not_verify(world):
    b = receipts.issue(world.bo, world.led, world.request(trip=(11, 1)), now=NOW)
    receipts.issue(world.bo, world.led, world.request(trip=(11, 2)), now=NOW)
    b = receipts.bundle_of(world.led, cbor2.loads(b)["id"])     # inclusion in a tree of 2: one path hash
    d = cbor2.loads(b)
    cases = [
        (dict(d, path=[b"\x00" * 32]), "inclusion proof fails"),
        (dict(d, index=1), "inclusion proof fails"),
        (dict(d, size=3), "another tree size"),
        (dict(d, sth=d["sth"][:-1] + bytes([d["sth"][-1] ^ 1])), "signed tree head: signature"),
        (dict(d, receipt=d["receipt"][:-1] + bytes([d["receipt"][-1] ^ 1])), "does not decrypt"),
        (dict(d, id=b"\x00" * 16), "different receipt ids"),
    ]
    for bad, msg in cases:
        with pytest.raises(receipts.ReceiptError, match=msg):
            world.verify(cbor2.dumps(bad))
    plain = cbor2.loads(receipts.export_plain(b, world.wallet.enc_key))
    obj = cbor2.loads(plain["signed"])           # CBORTag(18, [protected, unprotected, payload, signature])
    forged = cbor2.loads(obj.value[2])
    forged["total"] = 1
    obj.value[2] = cbor2.dumps(forged)
    with pytest.raises(receipts.ReceiptError, match="receipt: signature"):
        receipts.verify_bundle(cbor2.dumps(dict(plain, signed=cbor2.dumps(obj))), world.rpub, world.lpub)


def test_two_writers_at_once_do_not_fork_the_log(world, monkeypatch):
    """A second back-office process that read the log's right edge before the first appended:
    its insert fails on the index, and it retries on the new edge."""
    stale = receipts._frontier(world.led)
    receipts.issue(world.bo, world.led, world.request(trip=(11, 1)), now=NOW)
    real, calls = receipts._frontier, []

    def once_stale(led):
        calls.append(1)
        return stale if len(calls) == 1 else real(led)
    monkeypatch.setattr(receipts, "_frontier", once_stale)
    b = receipts.issue(world.bo, world.led, world.request(trip=(11, 2)), now=NOW)
    assert len(calls) == 2 and cbor2.loads(b)["index"] == 1
    assert world.verify(b) and receipts.audit(world.bo, world.led)["problems"] == []
