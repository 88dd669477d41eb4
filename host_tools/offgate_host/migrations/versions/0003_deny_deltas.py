"""Deny list deltas and bulk changes (issue 12, docs/protocol.md §6).

  * deny.reason: why an id was denied (bulk `offgate deny add --file F --reason R`).
  * deny_changes (serial, cti, op): for every signed list, the ids it added (op 1) and removed
    (op 0) against the list before, as the gates store them (5-byte prefixes); a delta from serial
    B folds the rows with serial > B (BackOffice.deny_delta).
  * deny_audit: one line per change of the deny list (a bulk add or remove, an expiry pass), with
    how many ids were given and changed, why and by whom.

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

I = sa.BigInteger          # noqa: E741
B = sa.LargeBinary
T = sa.Text


def upgrade():
    bind = op.get_bind()
    insp = sa.inspect(bind)
    if "reason" not in {c["name"] for c in insp.get_columns("deny")}:
        op.add_column("deny", sa.Column("reason", T))
    existing = set(insp.get_table_names())
    if "deny_changes" not in existing:
        op.create_table("deny_changes", sa.Column("serial", I, primary_key=True), sa.Column("cti", B, primary_key=True),
                        sa.Column("op", I, nullable=False))
    if "deny_audit" not in existing:
        op.create_table("deny_audit",
                        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
                                  autoincrement=True),
                        sa.Column("op", T, nullable=False), sa.Column("ids", I, nullable=False),
                        sa.Column("changed", I, nullable=False), sa.Column("reason", T, nullable=False),
                        sa.Column("by", T, nullable=False), sa.Column("t", I, nullable=False),
                        sqlite_autoincrement=True)


def downgrade():
    op.drop_table("deny_audit")
    op.drop_table("deny_changes")
    op.drop_column("deny", "reason")
