"""Settlement marks insert-only: ledger_settled instead of ledger_records.settled.

Settling a passage used to UPDATE its ledger_records row (settled = 1, or 2 for an unknown
credential): on PostgreSQL an MVCC update of every settled row (a new row version in a table with
two indexes, so not HOT), about half of settlement's time. The marks now live in their own
insert-only table, ledger_settled (gate, seq, state), keyed like the passage (distribution key
gate first): the flat fare COPYs the new marks into it; the fares path, whose marks can go back
to pending, upserts and deletes. A passage without a row there is unsettled (state 0).

The marks of an existing database are moved over and ledger_records.settled is dropped (SQLite
3.35+ drops a column in place). The (cti, ctr) index of ledger_records becomes partial (OPEN
passages only: every query through it asks for decision = 'OPEN'), so DENY records cost ingest no
entry in it.

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("ledger_settled", sa.Column("gate", sa.BigInteger, nullable=False),
                    sa.Column("seq", sa.BigInteger, nullable=False), sa.Column("state", sa.Integer, nullable=False),
                    sa.PrimaryKeyConstraint("gate", "seq"), sqlite_with_rowid=False)  # SQLite: one B-tree
    op.execute("INSERT INTO ledger_settled (gate, seq, state) SELECT gate, seq, settled FROM ledger_records "
               "WHERE settled <> 0")
    op.execute("ALTER TABLE ledger_records DROP COLUMN settled")
    # the (cti, ctr) index serves only OPEN passages (the double-use probe, settlement, fares):
    # partial, so a DENY costs ingest no index entry
    op.execute("DROP INDEX IF EXISTS ledger_records_cti")
    op.execute("CREATE INDEX ledger_records_cti ON ledger_records (cti, ctr) WHERE decision = 'OPEN'")
