"""Settled charges are final (issue 13, docs/fares.md "Settled is final").

  * charges.regime: what priced the charge: NULL the flat fare (`offgate ledger fare`), N fare
    table version N. A fare settlement re-rates only its own version's charges; taps settled by
    another regime are not priced again.
  * charge_corrections: a settled charge is never updated or deleted; a re-rating (a late exit
    completing an incomplete journey, a late tap making a transfer or reaching a cap) adds a line
    here with the difference (amount: + charged more, - refunded; minor units), the part of it
    moved on the credential's hold, and its reason; keyed (gate, seq, n), n counting the
    charge's corrections from 1 (distribution key gate first, as every table since 0002). A charge's amount now = charges.amount + the
    sum of its corrections.

Existing fare-table charges get their version from fare_journeys.

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

I = sa.BigInteger          # noqa: E741
B = sa.LargeBinary
T = sa.Text


def upgrade():
    bind = op.get_bind()
    insp = sa.inspect(bind)
    if "regime" not in {c["name"] for c in insp.get_columns("charges")}:
        op.add_column("charges", sa.Column("regime", I))
        op.execute("UPDATE charges SET regime = (SELECT MAX(f.version) FROM fare_journeys f "
                   "WHERE f.gate = charges.gate AND f.seq = charges.seq)")
    if "charge_corrections" not in set(insp.get_table_names()):
        op.create_table("charge_corrections",
                        sa.Column("gate", I, nullable=False), sa.Column("seq", I, nullable=False),
                        sa.Column("n", I, nullable=False),
                        sa.Column("cti", B, nullable=False), sa.Column("account", T, nullable=False),
                        sa.Column("amount", I, nullable=False), sa.Column("from_hold", I, nullable=False),
                        sa.Column("reason", T, nullable=False), sa.Column("t", I, nullable=False),
                        sa.PrimaryKeyConstraint("gate", "seq", "n"))
        op.create_index("charge_corrections_account", "charge_corrections", ["account", "t"])
        op.create_index("charge_corrections_cti", "charge_corrections", ["cti"])
