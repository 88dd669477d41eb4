"""Receipts through the CLI, from a gate's own operation log: the firmware's oplog (run in-process,
as the sync tests do) logs a rider's passages, the sync pulls them into the ledger, `offgate settle`
charges them, the CLI wallet asks for a receipt, lists and shows it, `offgate receipt verify` checks
it against the keys alone and against the back office (log consistency, ledger records), and
tampering with the store is reported in one line with a non-zero exit."""
import json
import sqlite3
import time

from click.testing import CliRunner

from synchelp import FakeGate, LoopTransport
from offgate.sync import session

from offgate_host.backoffice.backoffice import BackOffice
from offgate_host.cli import main
from offgate_host.wire.formats import parse_credential
from offgate_host.ledger.ledger import Ledger
from offgate_host.ledger.pull import sync_gate
from offgate_host.wallet import Wallet


def run(*args, ok=True):
    res = CliRunner().invoke(main, [str(a) for a in args])
    if ok:
        assert res.exit_code == 0, res.output
    else:
        assert res.exit_code == 1 and res.output.count("\n") == 1 and "Traceback" not in res.output, res.output
    return res.output


def test_receipt_from_gate_log_to_wallet_and_verification(tmp_path):
    data = tmp_path / "bo"
    d = ["--data", data]
    run("init", "--name", "Zakroczym Transit", "--valid-from", int(time.time()) - 3600, *d)
    run("account", "create", "alice", "--balance", "5000", *d)
    wpath = tmp_path / "alice.json"
    run("wallet", "new", wpath)
    run("credential", "issue", "alice", "--wallet", wpath, "--zones", "1", *d)
    w = Wallet.load(wpath)
    assert w.enc_key is not None
    cti = parse_credential(w.credential)["cti"]
    run("ledger", "fare", "1", "280", *d)
    run("gate", "place", "31", "Rynek", "both", *d)
    run("receipt", "config", "--tax-id", "PL5250001009", *d)

    bo = BackOffice(data)
    g = FakeGate(tmp_path / "gate31", 31, bo)
    now = int(time.time())
    for i in range(3):
        g.log(cti, i + 1, t=now - 600 + i)
    g.log(cti, 9, "DENY", 14, t=now - 100)
    led = Ledger.for_backoffice(bo)
    assert sync_gate(LoopTransport(session.SyncServer(g.port())), bo, led)["new"] == 4
    chains = {r["seq"]: bytes(r["chain"]) for r in led.records(31)}
    assert all(r["chain_ok"] for r in led.records(31))
    led.close()
    bo.close()
    run("settle", *d)

    out = run("wallet", "receipt", "request", wpath, "--from", now - 3600, "--to", now + 60, *d)
    assert "3 trip(s), total 8.40 PLN" in out
    run("wallet", "receipt", "request", wpath, "--trip", "31:2", *d)
    lines = run("wallet", "receipt", "list", wpath).splitlines()
    assert len(lines) == 2 and "8.40 PLN" in lines[0] and "2.80 PLN" in lines[1]
    rid = lines[0].split()[0]
    bundle, plain = tmp_path / "r.cbor", tmp_path / "r-plain.cbor"
    shown = run("wallet", "receipt", "show", wpath, rid[:10], "--out", bundle, "--export", plain)
    assert "Rynek" in shown and "tax id PL5250001009" in shown and "VAT 8.00 %" in shown
    assert chains[1].hex()[:16] in shown   # the gate's record hash, from its operation-log chain
    ok = run("receipt", "verify", bundle, "--wallet", wpath, *d)
    assert "ok  ledger: 3 record(s)" in ok and "consistency: tree 1 -> 2" in ok and ok.endswith("verified\n")
    keys = tmp_path / "keys.json"
    run("receipt", "keys", "--out", keys, *d)
    assert "verified" in run("receipt", "verify", plain, "--keys", keys)
    assert "receipt store OK: 2 receipts" in run("receipt", "audit", *d)
    assert len(run("receipt", "list", *d).splitlines()) == 2

    # errors: one line, exit status 1
    assert "encrypted: give the rider's wallet" in run("receipt", "verify", bundle, "--keys", keys, ok=False)
    (tmp_path / "junk").write_bytes(b"\x01\x02")
    assert "receipt bundle" in run("receipt", "verify", tmp_path / "junk", "--keys", keys, ok=False)
    res = CliRunner().invoke(main, ["wallet", "receipt", "request", str(wpath), "--data", str(data)])
    assert res.exit_code == 2 and "give --trip" in res.output   # a usage error (click: status 2)
    assert "no charged trip" in run("wallet", "receipt", "request", wpath, "--trip", "31:4", *d, ok=False)
    assert "already in the wallet" in run("wallet", "receipt", "add", wpath, bundle, ok=False)

    # tamper with the store: swap the two log entries
    db = sqlite3.connect(str(data / "offgate.db"))
    e = [r[0] for r in db.execute("SELECT entry FROM receipt_log ORDER BY idx")]
    db.execute("UPDATE receipt_log SET entry = ? WHERE idx = 0", (e[1],))
    db.execute("UPDATE receipt_log SET entry = ? WHERE idx = 1", (e[0],))
    db.commit()
    assert "do not hash to its signed root" in run("receipt", "audit", *d, ok=False)
    assert "log rewritten" in run("receipt", "verify", bundle, "--wallet", wpath, *d, ok=False)
    assert "verified" in run("receipt", "verify", plain, "--keys", keys)   # the receipt itself is still genuine
    # a ledger record altered after the fact
    db.execute("UPDATE receipt_log SET entry = ? WHERE idx = 0", (e[0],))
    db.execute("UPDATE receipt_log SET entry = ? WHERE idx = 1", (e[1],))
    db.execute("UPDATE ledger_records SET chain = ? WHERE gate = 31 AND seq = 1", (b"\x00" * 32,))
    db.commit()
    db.close()
    assert "gate 31 seq 1: the ledger's record differs" in run("receipt", "verify", bundle, "--wallet", wpath, *d,
                                                                 ok=False)
    assert json.loads(run("receipt", "config", *d))["vat_bp"] == 800
