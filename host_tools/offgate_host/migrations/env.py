"""Alembic environment of offgate: run with a connection given by offgate_host.db (upgrade, current).

Migrations are written by hand (no autogenerate): each is a frozen step, dialect-aware where
PostgreSQL and SQLite differ (partitions, identity columns)."""
from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - offgate runs migrations only through offgate_host.db
    raise SystemExit("run migrations with `offgate db upgrade`, not the alembic command")
context.configure(connection=connection, target_metadata=None, transaction_per_migration=False)
with context.begin_transaction():
    context.run_migrations()
