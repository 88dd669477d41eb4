"""Baseline: every table offgate kept before migrations, in one database.

Creates each table that is missing (a new database gets all of them). A database made by an
offgate from before migrations (the back office's offgate.db, which also held the ledger by
default, or a ledger on PostgreSQL) is adopted as it is: its tables stay, the columns added since
(credentials.rider_category, ledger_records.station/direction) are added, and a back office from
before the audit trail gets it (top-ups moved in, an opening entry per account), as the ad-hoc
code did when it opened such a file. Tables that were made on first use (gates, operators, web,
receipts, statistics, fares) are simply created when missing.

Types: every integer is BIGINT (SQLite: INTEGER affinity, 64-bit either way); ids of log tables
autoincrement (SQLite INTEGER PRIMARY KEY AUTOINCREMENT, PostgreSQL BIGSERIAL).

Revision ID: 0001
Revises:
"""
from alembic import op
import sqlalchemy as sa

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

I = sa.BigInteger          # noqa: E741
B = sa.LargeBinary
T = sa.Text


def _id():
    return sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True)


def tables(md):
    """The baseline tables (frozen: later changes are later migrations)."""
    sa.Table("config", md, sa.Column("key", T, primary_key=True), sa.Column("value", T, nullable=False))
    sa.Table("issuer_keys", md, sa.Column("kid", B, primary_key=True), sa.Column("iss", T, nullable=False),
             sa.Column("pub", B, nullable=False), sa.Column("nbf", I, nullable=False),
             sa.Column("exp", I, nullable=False), sa.Column("created", I, nullable=False),
             sa.Column("key_file", T, nullable=False))
    sa.Table("accounts", md, sa.Column("id", T, primary_key=True), sa.Column("balance", I, nullable=False),
             sa.Column("credit", I, nullable=False), sa.Column("created", I, nullable=False))
    sa.Table("credentials", md, sa.Column("cti", B, primary_key=True),
             sa.Column("account", T, sa.ForeignKey("accounts.id"), nullable=False),
             sa.Column("kid", B, sa.ForeignKey("issuer_keys.kid"), nullable=False),
             sa.Column("iat", I, nullable=False), sa.Column("nbf", I, nullable=False),
             sa.Column("exp", I, nullable=False), sa.Column("cap", I), sa.Column("product", I, nullable=False),
             sa.Column("zones", T, nullable=False), sa.Column("gates", T), sa.Column("rider_pub", B, nullable=False),
             sa.Column("rider_category", T))
    sa.Table("deny", md, sa.Column("cti", B, primary_key=True), sa.Column("added", I, nullable=False))
    sa.Table("holds", md, sa.Column("cti", B, sa.ForeignKey("credentials.cti"), primary_key=True),
             sa.Column("account", T, sa.ForeignKey("accounts.id"), nullable=False),
             sa.Column("amount", I, nullable=False), sa.Column("used", I, nullable=False, server_default="0"),
             sa.Column("exp", I, nullable=False), sa.Column("state", T, nullable=False, server_default="held"),
             sa.Column("created", I, nullable=False), sa.Column("released", I))
    sa.Table("charges", md, sa.Column("gate", I, primary_key=True), sa.Column("seq", I, primary_key=True),
             sa.Column("cti", B, nullable=False), sa.Column("account", T, nullable=False),
             sa.Column("amount", I, nullable=False), sa.Column("from_hold", I, nullable=False),
             sa.Column("t", I, nullable=False), sa.Column("settled", I, nullable=False),
             sa.Index("charges_cti", "cti"), sa.Index("charges_account", "account", "t"))
    sa.Table("account_audit", md, _id(), sa.Column("account", T, sa.ForeignKey("accounts.id"), nullable=False),
             sa.Column("kind", T, nullable=False), sa.Column("amount", I, nullable=False), sa.Column("credit", I),
             sa.Column("reason", T, nullable=False), sa.Column("by", T, nullable=False),
             sa.Column("t", I, nullable=False), sa.Index("account_audit_account", "account", "t"),
             sqlite_autoincrement=True)
    sa.Table("operator_credentials", md, sa.Column("cti", B, primary_key=True), sa.Column("name", T, nullable=False),
             sa.Column("exp", I, nullable=False), sa.Column("issued", I, nullable=False))
    sa.Table("operator_revoked", md, sa.Column("name", T, primary_key=True), sa.Column("revoked", I, nullable=False))
    sa.Table("gates", md, sa.Column("gate_id", I, primary_key=True, autoincrement=False),
             sa.Column("pub", B, nullable=False, unique=True), sa.Column("board", T, nullable=False),
             sa.Column("registered", I, nullable=False))
    sa.Table("gate_targets", md, sa.Column("gate_id", I, primary_key=True, autoincrement=False),
             sa.Column("target", T, nullable=False), sa.Column("set_at", I, nullable=False))
    sa.Table("rider_enc_keys", md, sa.Column("rider_pub", B, primary_key=True), sa.Column("enc_pub", B, nullable=False),
             sa.Column("registered", I, nullable=False))
    # ledger
    sa.Table("ledger_gates", md, sa.Column("gate", I, primary_key=True, autoincrement=False),
             sa.Column("device_pub", B, nullable=False), sa.Column("enrolled", I, nullable=False),
             sa.Column("chain_seq", I, nullable=False, server_default="0"), sa.Column("chain_head", B, nullable=False),
             sa.Column("last_sync", I), sa.Column("drift", I), sa.Column("time_set", I), sa.Column("backlog", I),
             sa.Column("status", T))
    sa.Table("ledger_records", md, sa.Column("gate", I, nullable=False), sa.Column("seq", I, nullable=False),
             sa.Column("t", I, nullable=False), sa.Column("cti", B), sa.Column("ctr", I, nullable=False),
             sa.Column("decision", T, nullable=False), sa.Column("reason", sa.Integer, nullable=False),
             sa.Column("missed", I, nullable=False), sa.Column("chain", B, nullable=False),
             sa.Column("chain_ok", sa.Integer, nullable=False), sa.Column("ingested", I, nullable=False),
             sa.Column("settled", sa.Integer, nullable=False, server_default="0"), sa.Column("station", T),
             sa.Column("direction", T), sa.UniqueConstraint("gate", "seq"),
             sa.Index("ledger_records_cti", "cti", "ctr"))
    sa.Table("ledger_anomalies", md, _id(), sa.Column("gate", I, nullable=False), sa.Column("seq", I, nullable=False),
             sa.Column("kind", T, nullable=False), sa.Column("detail", T, nullable=False),
             sa.Column("t", I, nullable=False), sa.UniqueConstraint("gate", "seq", "kind"), sqlite_autoincrement=True)
    sa.Table("ledger_fraud", md, _id(), sa.Column("kind", T, nullable=False), sa.Column("cti", B, nullable=False),
             sa.Column("ctr", I, nullable=False), sa.Column("gate", I, nullable=False),
             sa.Column("seq", I, nullable=False), sa.Column("other_gate", I), sa.Column("other_seq", I),
             sa.Column("detail", T, nullable=False), sa.Column("t", I, nullable=False),
             sa.UniqueConstraint("kind", "gate", "seq"), sqlite_autoincrement=True)
    sa.Table("ledger_gate_places", md, sa.Column("gate", I, primary_key=True, autoincrement=False),
             sa.Column("since", I, primary_key=True, autoincrement=False), sa.Column("station", T, nullable=False),
             sa.Column("direction", T, nullable=False), sa.Column("source", T, nullable=False))
    sa.Table("ledger_anomaly_records", md, _id(), sa.Column("gate", I, nullable=False),
             sa.Column("seq", I, nullable=False), sa.Column("kind", T, nullable=False), sa.Column("t", I),
             sa.Column("cti", B), sa.Column("ctr", I), sa.Column("decision", T), sa.Column("reason", sa.Integer),
             sa.Column("missed", I), sa.Column("chain", B, nullable=False), sa.Column("raw", B),
             sa.Column("ingested", I, nullable=False), sa.UniqueConstraint("gate", "seq", "kind", "chain"),
             sqlite_autoincrement=True)
    sa.Table("ledger_gate_log", md, _id(), sa.Column("gate", I, nullable=False),
             sa.Column("device_pub", B, nullable=False), sa.Column("action", T, nullable=False),
             sa.Column("by_whom", T, nullable=False), sa.Column("t", I, nullable=False), sqlite_autoincrement=True)
    sa.Table("ledger_fares", md, sa.Column("product", I, primary_key=True, autoincrement=False),
             sa.Column("amount", I, nullable=False))
    # fares (docs/fares.md)
    sa.Table("fare_tables", md, sa.Column("version", sa.BigInteger().with_variant(sa.Integer, "sqlite"),
                                          primary_key=True, autoincrement=True),
             sa.Column("loaded", I, nullable=False), sa.Column("source", T, nullable=False),
             sa.Column("digest", T, nullable=False), sa.Column("fare_table", T, nullable=False),
             sa.Column("config", T, nullable=False), sqlite_autoincrement=True)
    sa.Table("fare_journeys", md, sa.Column("account", T, nullable=False), sa.Column("cti", B, nullable=False),
             sa.Column("gate", I, primary_key=True, autoincrement=False),
             sa.Column("seq", I, primary_key=True, autoincrement=False), sa.Column("t", I, nullable=False),
             sa.Column("kind", T, nullable=False), sa.Column("from_station", T), sa.Column("to_station", T),
             sa.Column("exit_gate", I), sa.Column("exit_seq", I), sa.Column("exit_t", I),
             sa.Column("rider_category", T), sa.Column("fare_product", T), sa.Column("leg_rule", T),
             sa.Column("transfer_rule", T), sa.Column("cap", T), sa.Column("fare", I, nullable=False),
             sa.Column("charge", I, nullable=False), sa.Column("charged", I, nullable=False),
             sa.Column("service_date", T, nullable=False), sa.Column("version", I, nullable=False),
             sa.Column("explain", T, nullable=False), sa.Index("fare_journeys_account", "account", "t"))
    # statistics (docs/stats.md)
    sa.Table("stats_submissions", md, sa.Column("round_id", T, primary_key=True), sa.Column("digest", B, nullable=False),
             sa.Column("submission", B, nullable=False), sa.Column("created", I, nullable=False))
    sa.Table("stats_rounds", md, sa.Column("round_id", T, primary_key=True), sa.Column("digest", B, nullable=False),
             sa.Column("status", T, nullable=False), sa.Column("detail", T, nullable=False), sa.Column("totals", T),
             sa.Column("t", I, nullable=False))
    sa.Table("stats_seen", md, sa.Column("sub_hash", B, primary_key=True), sa.Column("round_id", T, nullable=False))
    # receipts (docs/receipts.md)
    sa.Table("receipt_log", md, sa.Column("idx", I, primary_key=True, autoincrement=False),
             sa.Column("entry", B, nullable=False))
    sa.Table("receipt_sth", md, sa.Column("size", I, primary_key=True, autoincrement=False),
             sa.Column("root", B, nullable=False), sa.Column("t", I, nullable=False), sa.Column("sth", B, nullable=False))
    sa.Table("receipts", md, sa.Column("id", B, primary_key=True), sa.Column("idx", I, nullable=False, unique=True),
             sa.Column("account", T, nullable=False), sa.Column("rider_pub", B, nullable=False),
             sa.Column("enc", B, nullable=False), sa.Column("request_hash", B, nullable=False, unique=True),
             sa.Column("created", I, nullable=False))
    sa.Table("receipt_settings", md, sa.Column("key", T, primary_key=True), sa.Column("value", T, nullable=False))
    # web back office (docs/web.md)
    sa.Table("web_staff", md, sa.Column("name", T, primary_key=True), sa.Column("pw_hash", T, nullable=False),
             sa.Column("role", T, nullable=False), sa.Column("created", I, nullable=False),
             sa.Column("disabled", I, nullable=False, server_default="0"))
    sa.Table("web_sessions", md, sa.Column("sid_hash", B, primary_key=True),
             sa.Column("name", T, sa.ForeignKey("web_staff.name"), nullable=False), sa.Column("csrf", T, nullable=False),
             sa.Column("created", I, nullable=False), sa.Column("expires", I, nullable=False))
    sa.Table("web_invites", md, sa.Column("token_hash", B, primary_key=True),
             sa.Column("account", T, sa.ForeignKey("accounts.id"), nullable=False), sa.Column("zones", T, nullable=False),
             sa.Column("product", I, nullable=False), sa.Column("valid_seconds", I, nullable=False), sa.Column("cap", I),
             sa.Column("replace_old", I, nullable=False), sa.Column("created_by", T, nullable=False),
             sa.Column("created", I, nullable=False), sa.Column("expires", I, nullable=False), sa.Column("used", I),
             sa.Column("used_by_pub", B))
    sa.Table("web_wallets", md, sa.Column("pub", B, primary_key=True),
             sa.Column("account", T, sa.ForeignKey("accounts.id"), nullable=False), sa.Column("zones", T, nullable=False),
             sa.Column("product", I, nullable=False), sa.Column("valid_seconds", I, nullable=False), sa.Column("cap", I),
             sa.Column("enrolled", I, nullable=False), sa.Column("last_contact", I, nullable=False),
             sa.Column("last_t", I, nullable=False, server_default="0"), sa.Column("revoked", I))
    sa.Table("web_notes", md, _id(), sa.Column("fraud", I, nullable=False), sa.Column("staff", T, nullable=False),
             sa.Column("text", T, nullable=False), sa.Column("t", I, nullable=False), sqlite_autoincrement=True)
    return md


def upgrade():
    bind = op.get_bind()
    insp = sa.inspect(bind)
    existing = set(insp.get_table_names())
    legacy_bo = "accounts" in existing and "account_audit" not in existing
    md = tables(sa.MetaData())
    # columns added to tables before migrations existed
    for table, col in (("credentials", "rider_category"), ("ledger_records", "station"),
                       ("ledger_records", "direction")):
        if table in existing and col not in {c["name"] for c in insp.get_columns(table)}:
            op.add_column(table, sa.Column(col, sa.Text))
    md.create_all(bind, tables=[t for t in md.sorted_tables if t.name not in existing])
    if legacy_bo:
        _audit_trail(bind, "topups" in existing)


def _audit_trail(bind, had_topups):
    """A back office from before the audit trail: its top-ups move into it, and every account
    gets the opening entry that makes its statement reconcile with its balance."""
    if had_topups:
        bind.execute(sa.text("INSERT INTO account_audit (account, kind, amount, reason, \"by\", t) "
                             "SELECT account, 'top-up', amount, 'top-up', \"by\", t FROM topups"))
        op.drop_table("topups")
    for a in bind.execute(sa.text("SELECT id, balance, credit, created FROM accounts")).mappings().all():
        moved = bind.execute(sa.text("SELECT COALESCE(SUM(amount), 0) FROM account_audit WHERE account = :a"),
                             {"a": a["id"]}).scalar()
        charged = bind.execute(sa.text("SELECT COALESCE(SUM(amount), 0) FROM charges WHERE account = :a"),
                               {"a": a["id"]}).scalar()
        bind.execute(sa.text("INSERT INTO account_audit (account, kind, amount, credit, reason, \"by\", t) "
                             "VALUES (:a, 'opening', :amt, :c, 'balance before the audit trail', 'migration', :t)"),
                     {"a": a["id"], "amt": int(a["balance"] - moved + charged), "c": a["credit"], "t": a["created"]})
