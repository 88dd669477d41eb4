"""The one database (issue #13): schema by migrations, `offgate db upgrade|current`, a back office
from before migrations upgraded (SQLite) or merged into its ledger's database (PostgreSQL),
settlement in one transaction, passages partitioned by month on PostgreSQL.
PostgreSQL parts run when OFFGATE_TEST_PG_URL is set (CI sets it)."""
import decimal
import json
import os
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from offgate_host import db as dbmod
from offgate_host.backoffice.backoffice import BackOffice
from offgate_host.cli import main
from offgate_host.ledger.ledger import Ledger

from ledgerhelp import NOW, _pg_url_with_schema, backoffice_on, issue, make_records

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "legacy"
PG_URL = os.environ.get("OFFGATE_TEST_PG_URL")
LEGACY_BALANCE = 5000 + 700 - 900   # opened with 5000, topped up 700, three trips at 300


def run(*args, ok=True):
    res = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in res.output
    if ok:
        assert res.exit_code == 0, res.output
        return res.stdout
    assert res.exit_code != 0 and len(res.stderr.strip().splitlines()) == 1, res.output
    return res.stderr


def legacy_sqlite(path, fixture):
    path.mkdir()
    con = sqlite3.connect(str(path / "offgate.db"))
    con.executescript((FIX / fixture).read_text())
    con.close()
    return path


def test_new_database_is_made_by_the_migrations_only(tmp_path):
    with pytest.raises(dbmod.DatabaseError, match="no ledger database"):
        dbmod.Database(tmp_path / "x.db")  # opening never creates
    assert not (tmp_path / "x.db").exists()
    d = dbmod.Database(tmp_path / "x.db", create=True)
    names = {r[0] for r in d.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"accounts", "charges", "holds", "deny", "gates", "ledger_records", "ledger_fraud", "fare_tables",
            "receipts", "stats_rounds", "web_staff", "alembic_version"} <= names
    assert d.revision() == dbmod.HEAD
    d.close()


def test_legacy_sqlite_back_office_is_upgraded(tmp_path):
    bo = legacy_sqlite(tmp_path / "bo", "one-sqlite.sql")
    assert "revision none (from before migrations)" in run("db", "current", "--data", bo)
    for cmd in (["account", "list"], ["init"], ["report"]):   # not even init moves it forward silently
        assert "run `offgate db upgrade`" in run(*cmd, "--data", bo, ok=False)
    assert "revision none" in run("db", "current", "--data", bo)   # nothing changed
    assert "revision none -> %s" % dbmod.HEAD in run("db", "upgrade", "--data", bo)
    assert "(current)" in run("db", "current", "--data", bo)
    assert "already at revision %s" % dbmod.HEAD in run("db", "upgrade", "--data", bo)  # idempotent
    with BackOffice(bo, create=False) as b, Ledger.for_backoffice(b) as led:
        a = b.get_account("alice")
        assert a["balance"] == LEGACY_BALANCE and a["credit"] == 200
        st = b.statement("alice")
        assert st[-1]["balance"] == LEGACY_BALANCE and [m["kind"] for m in st].count("trip") == 3
        assert len(led.records(7)) == 4 and {x["kind"] for x in led.anomalies()} >= {"gap"}
        # the settled marks moved into ledger_settled (migration 0004)
        assert [r["settled"] for r in led.records(7)] == [1, 1, 1, 0]
        assert [g["gate_id"] for g in b.gates()] == [7]
        # the trip ingested after the last settlement is charged; the three before are not again
        assert led.settle(b, now=NOW)["trips"] == 1 and led.settle(b, now=NOW)["trips"] == 0
        assert b.get_account("alice")["balance"] == LEGACY_BALANCE - 300
        # the upgraded database works on: a new account, a trip charged
        b.create_account("bob", balance=1000)
        assert b.get_account("bob")["balance"] == 1000
    assert "alice" in run("account", "list", "--data", bo)


def test_settlement_is_one_transaction(tmp_path, monkeypatch):
    """A failure after the charges were written (marking the records settled) leaves no charge,
    no balance change, no used hold: the back office and the ledger commit together."""
    bo = BackOffice(tmp_path / "bo")
    bo.init_issuer("t", valid_from=NOW - 86400)
    led = Ledger.for_backoffice(bo)
    cti = issue(bo, balance=5000, cap=1000)
    led.enroll_gate(1, b"\x04" + bytes(64))
    led.ingest(1, make_records(3, cti=cti))

    def boom(done):
        raise RuntimeError("power cut")
    monkeypatch.setattr(type(led.db), "mark_settled", lambda self, done: boom(done))
    with pytest.raises(RuntimeError):
        led.settle(bo, now=NOW + 10)
    assert bo.get_account("a")["balance"] == 5000 and bo.holds("a")[0]["used"] == 0
    assert bo.db.execute("SELECT COUNT(*) FROM charges").fetchone()[0] == 0
    monkeypatch.undo()
    assert led.settle(bo, now=NOW + 10)["trips"] == 3 and bo.get_account("a")["balance"] == 5000 - 3 * 250
    led.close()
    bo.close()


def test_cli_on_postgresql_one_database(tmp_path):
    if not PG_URL:
        pytest.skip("OFFGATE_TEST_PG_URL not set (CI sets it; see .ci/run)")
    url, _ = _pg_url_with_schema()
    data = tmp_path / "bo"
    assert "database postgresql://" in run("init", "--data", data, "--db", url)
    assert (data / "database.url").is_file() and not (data / "offgate.db").exists()
    assert oct((data / "database.url").stat().st_mode & 0o777) == "0o600"
    run("account", "create", "carol", "--balance", "1200", "--data", data)   # no --db: the back office knows it
    assert "carol" in run("account", "list", "--data", data)
    assert "(current)" in run("db", "current", "--data", data)
    # a second back office on the same database is refused: their accounts would mix
    assert "already holds a back office" in run("init", "--data", tmp_path / "bo3", "--db", url, ok=False)
    assert not (tmp_path / "bo3").exists()
    other = str(tmp_path / "other.db")
    run("init", "--data", tmp_path / "bo2", "--db", other)
    assert "is not the database of the back office" in run("report", "--data", data, "--db", other, ok=False)
    # SUM(bigint) is numeric on PostgreSQL: whole values come back as ints (JSON reports, money arithmetic)
    for fmt in (["--format", "json"], ["--json"]):
        json.loads(run("report", "--data", data, *fmt))
    bo = BackOffice(data)
    try:
        r = bo.db.execute("SELECT SUM(x), SUM(x) / 2.0 FROM (VALUES (CAST(1 AS BIGINT)), (CAST(2 AS BIGINT))) AS v(x)"
                          ).fetchone()
        assert type(r[0]) is int and r[0] == 3 and r[1] == decimal.Decimal("1.5")
    finally:
        bo.close()


def test_legacy_ledger_on_postgresql_is_merged(tmp_path):
    """A back office from before the one database: accounts in its offgate.db, the ledger on
    PostgreSQL. `offgate db upgrade --db URL` brings both up, moves the back office into the
    PostgreSQL database, partitions the passages, and keeps the old file."""
    if not PG_URL:
        pytest.skip("OFFGATE_TEST_PG_URL not set (CI sets it; see .ci/run)")
    import psycopg
    url, schema = _pg_url_with_schema()
    with psycopg.connect(PG_URL, autocommit=True) as c:
        c.execute("SET search_path TO %s" % schema)
        c.execute((FIX / "split-ledger-pg.sql").read_text())
    bo = legacy_sqlite(tmp_path / "bo", "split-backoffice.sql")
    assert "offgate db upgrade" in run("report", "--data", bo, "--db", url, ok=False)
    out = run("db", "upgrade", "--data", bo, "--db", url)
    assert "revision none -> %s; merged" % dbmod.HEAD in out
    assert (bo / "database.url").is_file() and (bo / "offgate.db.merged").is_file() and not (bo / "offgate.db").exists()
    with BackOffice(bo, create=False) as b, Ledger.for_backoffice(b) as led:
        assert led.db.kind == "pg" and b.db.url == url
        assert b.get_account("alice")["balance"] == LEGACY_BALANCE
        assert b.statement("alice")[-1]["balance"] == LEGACY_BALANCE
        assert len(led.records(7)) == 4 and len(led.fraud()) == 1
        assert [r["settled"] for r in led.records(7)] == [1, 1, 1, 0]   # marks moved (migration 0004)
        # passages: partitioned by month, this month's partition holds them
        kind = led.db.execute("SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                              "WHERE c.relname = 'ledger_records' AND n.nspname = ?", (schema,)).fetchone()[0]
        assert kind == "p"
        part = dbmod.partition_name(1790000000)
        assert led.db.execute("SELECT COUNT(*) FROM %s" % part).fetchone()[0] == 4
        # ids go on after the copied ones (sequences moved past them)
        led.ingest(7, [dict(make_records(1)[0], seq=9, t=1790000500, chain=bytes(32))], now=1790000600)
        assert len(led.anomalies()) >= 2
        assert led.settle(b, now=1790000700)["trips"] == 1 and led.settle(b, now=1790000700)["trips"] == 0
        assert b.get_account("alice")["balance"] == LEGACY_BALANCE - 300
    assert "alice" in run("account", "list", "--data", bo)
    nxt = dbmod.partition_name(dbmod._next_month(NOW))
    d = dbmod.Database(url)
    with d:   # upgrade makes the partitions ahead: this month's and the next
        d.execute("DROP TABLE %s" % nxt)
    run("db", "upgrade", "--data", bo)
    assert d.execute("SELECT to_regclass(?)", (nxt,)).fetchone()[0] is not None
    d.close()
    assert "already keeps everything" in run("db", "upgrade", "--data", bo, "--db", str(tmp_path / "x.db"), ok=False)


def test_partitions_are_made_ahead_and_default_catches_stray_clocks(tmp_path):
    bo = backoffice_on("postgresql", tmp_path / "bo")
    led = Ledger.for_backoffice(bo)
    d = led.db
    led.enroll_gate(3, b"\x04" + bytes(64))
    far = NOW + 200 * 86400                          # a month no partition exists for yet
    led.ingest(3, make_records(2, t0=far) + make_records(1, start_seq=3, t0=1000))  # + an unset clock (1970)
    names = {r[0] for r in d.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                                     "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'ledger_records' "
                                     "AND p.relnamespace = c.relnamespace AND pg_table_is_visible(p.oid)")}
    assert dbmod.partition_name(far) in names and dbmod.partition_name(NOW) in names
    assert d.execute("SELECT COUNT(*) FROM ledger_records_default").fetchone()[0] == 1
    # a partition made later takes its month's rows out of the default one
    with d:
        assert dbmod.create_partition(d, dbmod._month_start(1000))
    assert d.execute("SELECT COUNT(*) FROM ledger_records_default").fetchone()[0] == 0
    assert len(led.records(3)) == 3
    led.close()
    bo.close()


def test_both_engines_get_the_same_schema(tmp_path):
    """The migrations make the same tables and columns on SQLite and PostgreSQL (PostgreSQL adds
    the passages' partitions)."""
    if not PG_URL:
        pytest.skip("OFFGATE_TEST_PG_URL not set (CI sets it; see .ci/run)")
    lite = dbmod.Database(tmp_path / "x.db", create=True)
    pg = dbmod.Database(_pg_url_with_schema()[0], create=True)
    try:
        a, b = dict(dbmod.table_names(lite.engine)), dict(dbmod.table_names(pg.engine))
        assert a == b and len(a) > 30
    finally:
        lite.close()
        pg.close()


def test_a_database_from_a_newer_offgate_is_left_alone(tmp_path):
    """An older offgate on a database a newer one has migrated: one line saying so, for every command
    (not "run `offgate db upgrade`", which cannot go backwards), and nothing changed."""
    bo = tmp_path / "bo"
    run("init", "--data", bo)
    con = sqlite3.connect(str(bo / "offgate.db"))
    con.execute("UPDATE alembic_version SET version_num = '9999'")
    con.commit()
    con.close()
    before = (bo / "offgate.db").read_bytes()
    for cmd in (["db", "current"], ["db", "upgrade"], ["account", "list"], ["report"]):
        out = run(*cmd, "--data", bo, ok=False)
        assert "newer than this offgate" in out and len(out.strip().splitlines()) == 1, out
    assert (bo / "offgate.db").read_bytes() == before
