"""One database at scale: passages partitioned by time, distribution keys in primary keys (PostgreSQL).

On PostgreSQL:
  * ledger_records (the passages) becomes a table partitioned by RANGE of the tap time `t` (Unix
    s), one partition per calendar month (ledger_records_yYYYYmMM) plus ledger_records_default for
    taps outside every partition (an unset gate clock); its primary key is (gate, seq, t): the
    distribution key gate first, the partition key t included as PostgreSQL requires. The rows
    of an existing table are copied over, the old table dropped. Partitions for the months the
    data spans and the next months are made here; ingest makes later ones ahead
    (offgate_host.db.Database.ensure_partitions).
  * the log tables keyed by a serial id (ledger_anomalies, ledger_fraud, ledger_anomaly_records,
    ledger_gate_log) get the primary key (gate, id), so they can be distributed by gate
    (Citus requires the distribution column in every primary and unique key).
On SQLite nothing changes (one file, one writer: neither partitions nor distribution apply).

Revision ID: 0002
Revises: 0001
"""
import time

from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

COLS = ("gate", "seq", "t", "cti", "ctr", "decision", "reason", "missed", "chain", "chain_ok", "ingested",
        "settled", "station", "direction")


def upgrade():
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    from offgate_host.db import PARTITION_FLOOR, PARTITION_MONTHS_AHEAD, _month_start, _next_month, partition_name
    insp = sa.inspect(bind)
    for table in ("ledger_anomalies", "ledger_fraud", "ledger_anomaly_records", "ledger_gate_log"):
        pk = insp.get_pk_constraint(table)["name"]
        op.execute('ALTER TABLE %s DROP CONSTRAINT "%s", ADD PRIMARY KEY (gate, id)' % (table, pk))
    op.execute("ALTER TABLE ledger_records RENAME TO ledger_records_old")
    op.execute("ALTER INDEX IF EXISTS ledger_records_cti RENAME TO ledger_records_old_cti")
    op.execute("""
CREATE TABLE ledger_records (
    gate      BIGINT NOT NULL,
    seq       BIGINT NOT NULL,
    t         BIGINT NOT NULL,
    cti       BYTEA,
    ctr       BIGINT NOT NULL,
    decision  TEXT NOT NULL,
    reason    INTEGER NOT NULL,
    missed    BIGINT NOT NULL,
    chain     BYTEA NOT NULL,
    chain_ok  INTEGER NOT NULL,
    ingested  BIGINT NOT NULL,
    settled   INTEGER NOT NULL DEFAULT 0,
    station   TEXT,
    direction TEXT,
    PRIMARY KEY (gate, seq, t)
) PARTITION BY RANGE (t)""")
    op.execute("CREATE TABLE ledger_records_default PARTITION OF ledger_records DEFAULT")
    op.execute("CREATE INDEX ledger_records_cti ON ledger_records (cti, ctr)")
    now = int(time.time())
    lo, hi = bind.execute(sa.text("SELECT MIN(t), MAX(t) FROM ledger_records_old WHERE t >= :a AND t <= :b"),
                          {"a": PARTITION_FLOOR, "b": now + 366 * 86400}).one()
    m = _month_start(min(lo, now) if lo is not None else now)
    end = _month_start(max(hi, now) if hi is not None else now)
    for _ in range(PARTITION_MONTHS_AHEAD):
        end = _next_month(end)
    while m <= end:
        op.execute("CREATE TABLE %s PARTITION OF ledger_records FOR VALUES FROM (%d) TO (%d)"
                   % (partition_name(m), m, _next_month(m)))
        m = _next_month(m)
    op.execute("INSERT INTO ledger_records (%s) SELECT %s FROM ledger_records_old" % (", ".join(COLS), ", ".join(COLS)))
    op.execute("DROP TABLE ledger_records_old")
