"""The one database of the back office: SQLite (a file) or PostgreSQL (psycopg 3), one schema.

Everything the back office keeps lives in it: accounts, credentials, holds, charges, the audit
trail, the deny list, issuer keys' records, gates, ledger records (passages), anomalies, fraud
flags, fares, receipts, statistics, staff (docs/database.md). The back office and the ledger share
one `Database` (one connection), so settlement charges an account and marks the passage settled
in one transaction.

Schema: Alembic migrations (offgate_host/migrations/versions), run by `offgate init` (a new
database) and `offgate db upgrade` (an existing one); nothing here creates a table. Connections
come from a SQLAlchemy 2 engine (the URL, the driver, the pool); queries are SQL text with `?`
placeholders run on the engine's DBAPI connection (sqlite3 / psycopg): the hot paths (ingest,
settlement, COPY) keep their driver-level speed and the same text runs on both engines.

URLs: a PostgreSQL URL (postgresql:// or postgres://), a SQLite file (a path or sqlite:///path).
"""
import contextlib
import re
import sqlite3
import time
from pathlib import Path

from .errors import OffgateError

HEAD = "0005"   # the newest migration (migrations/versions); a database there is current
# Passages (ledger_records) on PostgreSQL: one partition per calendar month of the tap time `t`
# (Unix s, UTC), created ahead by ingest and by `offgate db upgrade`; a tap outside every
# partition (a gate clock far off) lands in ledger_records_default and moves when its month's
# partition is made.
PARTITION_MONTHS_AHEAD = 2
PARTITION_FLOOR = 1577836800      # 2020-01-01: older taps (an unset gate clock) stay in the default


class DatabaseError(OffgateError, ValueError):
    """A database that cannot be used as it is (URL, missing file, unreachable, wrong revision)."""


class OutdatedDatabase(DatabaseError):
    """The database's schema is older than this offgate: `offgate db upgrade` moves it forward."""


class NewerDatabase(DatabaseError):
    """The database's schema is newer than this offgate knows (written by a newer offgate)."""


def connection_lost(e):
    """A DatabaseError saying so when `e` is the database server gone in the middle of a command
    (PostgreSQL restarted or stopped: psycopg's OperationalError, also under SQLAlchemy), else None.
    What was committed before it stays; the open transaction is rolled back by the server."""
    import sys
    psycopg = sys.modules.get("psycopg")
    orig = getattr(e, "orig", None) or e
    if psycopg is not None and isinstance(orig, psycopg.OperationalError):
        return DatabaseError("lost the connection to PostgreSQL: %s (what was committed before it is kept; "
                             "nothing after it was stored)" % first_line(orig))
    return None


def known_revisions():
    """The revision ids of this offgate's migrations (their file names' prefixes)."""
    return {p.name.split("_", 1)[0] for p in (Path(__file__).parent / "migrations" / "versions").glob("[0-9]*_*.py")}


def check_known(rev, url):
    """Raise NewerDatabase if `rev` (a database's revision; None: none yet) is not one of this offgate's:
    an older offgate must not touch, nor advise upgrading, a database a newer one has moved on."""
    if rev is not None and rev not in known_revisions():
        raise NewerDatabase("database %s is at schema revision %s, newer than this offgate (it knows up to %s): "
                            "use the offgate version that wrote it" % (safe_url(url), rev, HEAD))


def first_line(e) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return lines[0] if lines else type(e).__name__


def safe_url(url) -> str:
    """The URL without its password (for messages)."""
    return re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", str(url))


def parse_url(url, error=DatabaseError):
    """("pg", url) for a PostgreSQL URL (postgresql:// or postgres://), ("sqlite", path) for a
    SQLite file (a plain path or sqlite:///path). Any other URL scheme raises `error`: a typo
    such as mysql://x must not become a file or directory named after it."""
    url = str(url)
    if not url.strip():
        raise error("empty database URL")
    if url.startswith(("postgresql://", "postgres://")):
        return "pg", url
    if url.startswith("sqlite:///"):
        return "sqlite", url[len("sqlite:///"):]
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*):", url)
    if m and (len(m.group(1)) > 1 or url[2:3] not in ("\\", "/")):  # not a Windows drive letter
        raise error("unsupported database %r: give a PostgreSQL URL (postgresql://user@host/db) or a "
                    "SQLite file path" % safe_url(url))
    return "sqlite", url


def normal_url(url) -> str:
    """The URL in the form kept in a back office (a SQLite path made absolute), for comparing."""
    kind, where = parse_url(url)
    return url if kind == "pg" else str(Path(where).resolve())


def same_database(a, b) -> bool:
    return normal_url(a) == normal_url(b)


def _sa_url(kind, where):
    if kind == "pg":
        return re.sub(r"^postgres(ql)?://", "postgresql+psycopg://", where)
    return "sqlite:///" + str(Path(where).resolve())


class _Row(tuple):
    """A PostgreSQL row that reads like sqlite3.Row: r[0], r["name"], dict(r), tuple unpacking."""
    __slots__ = ()
    _idx = {}
    _names = ()

    def __getitem__(self, k):
        return tuple.__getitem__(self, self._idx[k] if isinstance(k, str) else k)

    def keys(self):
        return self._names


_ROW_CLASSES = {}


def _whole_numeric_loader():
    from psycopg.types.numeric import NumericLoader

    class WholeNumericLoader(NumericLoader):
        def load(self, data):
            v = super().load(data)
            return int(v) if v.is_finite() and v == v.to_integral_value() else v
    return WholeNumericLoader


def _pg_row_factory(cursor):
    if cursor.description is None:
        return tuple
    names = tuple(d.name for d in cursor.description)
    cls = _ROW_CLASSES.get(names)
    if cls is None:  # one class per column list (queries repeat: made once, not per execute)
        if len(_ROW_CLASSES) > 4096:
            _ROW_CLASSES.clear()
        cls = _ROW_CLASSES[names] = type("Row", (_Row,), {"__slots__": (), "_names": names,
                                                          "_idx": {n: i for i, n in enumerate(names)}})
    return cls


def _month_start(t):
    g = time.gmtime(t)
    return _utc_ts(g.tm_year, g.tm_mon)


def _utc_ts(year, month):
    import calendar
    return calendar.timegm((year, month, 1, 0, 0, 0))


def _next_month(t):
    g = time.gmtime(t)
    y, m = (g.tm_year + 1, 1) if g.tm_mon == 12 else (g.tm_year, g.tm_mon + 1)
    return _utc_ts(y, m)


class Database:
    """One connection to the database at `url`, shared by everything of one back office.

    execute/executemany/rows/one take SQL with `?` placeholders (turned into %s on PostgreSQL);
    rows read like sqlite3.Row (r[0], r["col"], dict(r)). `with db:` is a transaction: the
    outermost one commits (or rolls back on an exception), inner ones join it, and commit()
    inside one is deferred to it, so settlement's back-office and ledger writes commit together.

    create=True (`offgate init` only): a new SQLite file may be made and the schema is brought to
    the newest migration. create=False: the SQLite file must exist (DatabaseError) and the schema
    must be current (OutdatedDatabase: run `offgate db upgrade`)."""

    def __init__(self, url, create=False, error=DatabaseError, check=True):
        self.url = str(url)
        self.kind, where = parse_url(self.url, error)
        self._depth = 0
        self._sqlcache = {}
        self._months = set()   # partitions known to exist (PostgreSQL)
        self.created = False   # made here (create=True on an empty database)
        import sqlalchemy
        from sqlalchemy.pool import NullPool
        if self.kind == "sqlite":
            path = Path(where)
            if not path.parent.is_dir():
                raise error("database %s: directory %s does not exist" % (path, path.parent))
            if path.is_dir():
                raise error("database %s is a directory" % path)
            if not create and not path.is_file():
                raise error("no ledger database %s (create it with `offgate init --db %s`)" % (path, self.url))
            self.engine = sqlalchemy.create_engine(_sa_url("sqlite", where), poolclass=NullPool,
                                                   connect_args={"timeout": 30})
            self.IntegrityError = sqlite3.IntegrityError
        else:
            import psycopg
            self.engine = sqlalchemy.create_engine(_sa_url("pg", where), poolclass=NullPool,
                                                   connect_args={"connect_timeout": 10})
            self.IntegrityError = psycopg.IntegrityError
        try:
            self._connect()
            if create or check:
                rev = self.revision()
                if rev != HEAD:
                    check_known(rev, self.url)
                if rev != HEAD and create and rev is None and self._empty():
                    self.close(dispose=False)
                    upgrade(self.engine)   # a new database: the migrations make the schema
                    self._connect()
                    self.created = True
                elif rev != HEAD:  # an existing one moves forward only by `offgate db upgrade`
                    self.close()
                    raise OutdatedDatabase(
                        "database %s is %s; this offgate needs schema revision %s: run `offgate db upgrade`"
                        % (safe_url(self.url), "from before migrations" if rev is None else "at revision " + rev,
                           HEAD))
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.DatabaseError, sqlite3.DatabaseError) as e:
            orig = getattr(e, "orig", e)
            if self.kind == "pg":
                raise error("cannot connect to PostgreSQL at %s: %s" % (safe_url(self.url), first_line(orig))) from None
            raise error("%s is not a usable SQLite database (%s)" % (where, first_line(orig))) from None
        except Exception as e:
            import psycopg
            if isinstance(e, psycopg.Error):
                raise error("cannot connect to PostgreSQL at %s: %s" % (safe_url(self.url), first_line(e))) from None
            raise

    def _connect(self):
        self._raw = self.engine.raw_connection()
        self.conn = self._raw.driver_connection
        if self.kind == "sqlite":
            self.conn.row_factory = sqlite3.Row
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute("PRAGMA foreign_keys=ON")
        else:
            self.conn.row_factory = _pg_row_factory
            # a binary COPY's bytea columns (load(types=...)) dumped by psycopg's C dumper for
            # bytes: the one it finds by type (psycopg.dbapi20's, for its Binary wrapper, which
            # nothing here uses) is Python code run for every value
            from psycopg.adapt import PyFormat
            self.conn.adapters.register_dumper(bytes, self.conn.adapters.get_dumper(bytes, PyFormat.BINARY))
            # SUM(bigint) is numeric on PostgreSQL (an int on SQLite): money is in minor units, so a
            # whole numeric comes back as an int (a Decimal would not serialise to JSON, nor mix with floats)
            self.conn.adapters.register_loader("numeric", _whole_numeric_loader())

    # ------------------------------------------------------------------ SQL
    def sql(self, q):
        if self.kind != "pg":
            return q
        s = self._sqlcache.get(q)
        if s is None:
            s = self._sqlcache[q] = q.replace("%", "%%").replace("?", "%s")
        return s

    def execute(self, q, args=()):
        cur = self.conn.cursor()
        cur.execute(self.sql(q), tuple(args))
        return cur

    def executemany(self, q, rows):
        cur = self.conn.cursor()
        cur.executemany(self.sql(q), rows)
        return cur

    def rows(self, q, args=()):
        """The rows as dicts (zip over the values: faster than dict(row) per row)."""
        cur = self.execute(q, args)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]

    def rows_in(self, q, values, tail=""):
        """Rows (tuples) of `q` (ending in "WHERE col") for col in `values`, then `tail` (e.g. GROUP
        BY): = ANY(array) on PostgreSQL, IN (...) on SQLite (in slices below its parameter limit)."""
        values = list(values)
        if not values:
            return []
        if self.kind == "pg":
            return self.execute(q + " = ANY(?)" + tail, (values,)).fetchall()
        out = []
        for i in range(0, len(values), 900):
            part = values[i:i + 900]
            out += self.execute(q + " IN (%s)" % ", ".join("?" * len(part)) + tail, part).fetchall()
        return out

    def one(self, q, args=()):
        cur = self.execute(q, args)
        r = cur.fetchone()
        return dict(zip([d[0] for d in cur.description], r)) if r is not None else None

    def load(self, table, cols, rows, types=None):
        """Bulk-load rows (tuples in `cols` order) into `table`: COPY on PostgreSQL (one round
        trip for all of them; psycopg's COPY support), executemany on SQLite (in-process).
        `types` (PostgreSQL type names of `cols`): a binary COPY, which the server stores
        without parsing text (bytea hex, numbers)."""
        if self.kind == "pg":
            with self.conn.cursor() as cur:
                with cur.copy("COPY %s (%s) FROM STDIN%s" % (table, ", ".join(cols),
                                                             " (FORMAT BINARY)" if types else "")) as cp:
                    if types:
                        cp.set_types(types)
                    for r in rows:
                        cp.write_row(r)
        else:
            self.conn.executemany("INSERT INTO %s (%s) VALUES (%s)" % (table, ", ".join(cols),
                                                                       ", ".join("?" * len(cols))), rows)

    def insert_new(self, table, cols, rows, types):
        """INSERT rows (tuples in `cols` order) into `table`, skipping those that conflict with a
        row there (ON CONFLICT DO NOTHING); returns how many were inserted. PostgreSQL: a binary
        COPY (`types`: the PostgreSQL type names of `cols`) into a temporary table of those
        columns, then one INSERT ... SELECT, not a statement per row; SQLite: executemany
        (in-process). In the caller's transaction."""
        if not rows:
            return 0
        if self.kind != "pg":
            cur = self.executemany("INSERT INTO %s (%s) VALUES (%s) ON CONFLICT DO NOTHING" % (
                table, ", ".join(cols), ", ".join("?" * len(cols))), rows)
            return max(cur.rowcount, 0)
        new, names = "new_" + table, ", ".join(cols)
        self.execute("CREATE TEMP TABLE IF NOT EXISTS %s AS SELECT %s FROM %s WITH NO DATA" % (new, names, table))
        self.load(new, cols, rows, types)
        n = self.execute("INSERT INTO %s (%s) SELECT %s FROM %s ON CONFLICT DO NOTHING" % (table, names, names, new))
        self.execute("DELETE FROM %s" % new)  # emptied in the transaction: a rollback undoes both
        return max(n.rowcount, 0)

    def pipeline(self):
        """A block whose statements go out together (psycopg pipeline mode: one round trip; read
        the cursors after it); nothing special on SQLite."""
        if self.kind == "pg":
            return self.conn.pipeline()
        return contextlib.nullcontext()

    def upsert(self, table, keys, values):
        """INSERT or, on a conflict on the `keys` columns, UPDATE the others (`values`: dict)."""
        cols = list(values)
        rest = [c for c in cols if c not in keys]
        q = "INSERT INTO %s (%s) VALUES (%s) ON CONFLICT (%s) DO %s" % (
            table, ", ".join(cols), ", ".join("?" * len(cols)), ", ".join(keys),
            "UPDATE SET " + ", ".join("%s = excluded.%s" % (c, c) for c in rest) if rest else "NOTHING")
        return self.execute(q, [values[c] for c in cols])

    # ------------------------------------------------------------------ transactions
    def __enter__(self):
        self._depth += 1
        return self

    def __exit__(self, et, ev, tb):
        self._depth -= 1
        if self._depth == 0:
            if et is None:
                self.conn.commit()
            else:
                self.conn.rollback()
        return False

    def commit(self):
        if self._depth == 0:
            self.conn.commit()

    def rollback(self):
        self.conn.rollback()

    def close(self, dispose=True):
        raw, self._raw = getattr(self, "_raw", None), None
        try:
            if raw is not None:
                raw.close()
        finally:
            if dispose:
                self.engine.dispose()

    # ------------------------------------------------------------------ schema
    def revision(self):
        """The schema revision the database is at (None: no migrations run, a pre-Alembic or empty one)."""
        if self.kind == "pg":
            if self.execute("SELECT to_regclass('alembic_version')").fetchone()[0] is None:
                return None
        elif self.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'").fetchone() is None:
            return None
        r = self.execute("SELECT version_num FROM alembic_version").fetchone()
        self.commit()
        return r[0] if r else None

    def _empty(self) -> bool:
        """No tables yet (a new SQLite file, a new PostgreSQL database or schema)."""
        if self.kind == "pg":
            n = self.execute("SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema()").fetchone()[0]
        else:
            n = self.execute("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%'"
                             ).fetchone()[0]
        self.commit()
        return n == 0

    def ensure_partitions(self, t_min, t_max=None, now=None):
        """PostgreSQL: make sure ledger_records has the monthly partitions for taps from `t_min`
        to `t_max` (Unix s; clipped to [PARTITION_FLOOR, now + a year]) and for the next
        PARTITION_MONTHS_AHEAD months. In the caller's transaction; no-op on SQLite."""
        if self.kind != "pg":
            return
        now = int(time.time() if now is None else now)
        t_max = t_min if t_max is None else t_max
        lo = max(PARTITION_FLOOR, min(t_min, now))
        hi = min(max(t_max, now), now + 366 * 86400)
        end = _month_start(hi)
        for _ in range(PARTITION_MONTHS_AHEAD):
            end = _next_month(end)
        m = _month_start(lo)
        while m <= end:
            if m not in self._months:
                create_partition(self, m)
                self._months.add(m)
            m = _next_month(m)


def partition_name(month_start) -> str:
    g = time.gmtime(month_start)
    return "ledger_records_y%04dm%02d" % (g.tm_year, g.tm_mon)


def create_partition(db, month_start):
    """Create the partition of ledger_records for the month starting at `month_start` (Unix s)
    if it does not exist, moving that month's rows out of the default partition first (so the
    attach always validates)."""
    name = partition_name(month_start)
    end = _next_month(month_start)
    if db.execute("SELECT to_regclass(?)", (name,)).fetchone()[0] is not None:
        return False
    db.execute("SELECT pg_advisory_xact_lock(7130001)")  # two ingests making the same partition
    if db.execute("SELECT to_regclass(?)", (name,)).fetchone()[0] is not None:
        return False
    db.execute("CREATE TABLE %s (LIKE ledger_records INCLUDING DEFAULTS INCLUDING CONSTRAINTS)" % name)
    db.execute("WITH moved AS (DELETE FROM ledger_records_default WHERE t >= %d AND t < %d RETURNING *) "
               "INSERT INTO %s SELECT * FROM moved" % (month_start, end, name))
    db.execute("ALTER TABLE ledger_records ATTACH PARTITION %s FOR VALUES FROM (%d) TO (%d)"
               % (name, month_start, end))
    return True


# ---------------------------------------------------------------------------- migrations
def _alembic_config(connection):
    from alembic.config import Config
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine, revision="head"):
    """Run the migrations up to `revision` on the database of `engine` (one transaction on
    PostgreSQL; SQLite commits per migration)."""
    from alembic import command
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), revision)


def current(engine):
    """The revision the database of `engine` is at (None: none, a pre-Alembic or empty database)."""
    from alembic.runtime.migration import MigrationContext
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def revision_of(url):
    """The schema revision of the database at `url` (None: from before migrations, or empty)."""
    d = Database(url, create=False, check=False)
    try:
        _not_empty(d)
        rev = d.revision()
        check_known(rev, url)
        return rev
    finally:
        d.close()


def _not_empty(d):
    """An existing back office's database with no tables at all was truncated or replaced, not
    created by `offgate init`: upgrading it would silently make an empty back office."""
    if d._empty():
        raise DatabaseError("database %s is empty: it holds no back office (truncated or replaced? "
                            "restore it from `offgate backup`)" % safe_url(d.url))


def upgrade_url(url):
    """Bring the (existing) database at `url` to the newest schema: (revision before, after)."""
    d = Database(url, create=False, check=False)
    try:
        _not_empty(d)
        before = d.revision()
        check_known(before, url)
        d.close(dispose=False)
        if before != HEAD:
            upgrade(d.engine)
        d._connect()
        with d:
            d.ensure_partitions(int(time.time()))  # PostgreSQL: this month's and the next ones exist
        return before, d.revision()
    finally:
        d.close()


def table_names(engine):
    """The tables of the database of `engine` with their columns, parents before children (by
    reflection: the schema the migrations made), without Alembic's and SQLite's own."""
    import sqlalchemy
    md = sqlalchemy.MetaData()
    md.reflect(bind=engine)
    return [(t.name, [c.name for c in t.columns]) for t in md.sorted_tables
            if t.name != "alembic_version" and not t.name.startswith(("sqlite_", "ledger_records_"))]


SERIAL_ID_TABLES = ("account_audit", "ledger_anomalies", "ledger_fraud", "ledger_anomaly_records", "ledger_gate_log",
                    "web_notes")


def merge_into(src, dst, error=DatabaseError):
    """Copy every table's rows from database `src` into `dst` (both current, open `Database`s), in
    one transaction of dst. A table that holds rows in both is refused (`error`, nothing
    copied): a merge never mixes two back offices. Returns (tables, rows) copied."""
    plan = []
    for name, cols in table_names(src.engine):
        n = src.execute("SELECT COUNT(*) FROM %s" % name).fetchone()[0]
        if not n:
            continue
        if dst.execute("SELECT COUNT(*) FROM %s" % name).fetchone()[0]:
            raise error("cannot merge: table %s holds rows in both databases; nothing was copied" % name)
        plan.append((name, cols, n))
    total = 0
    with dst:
        for name, cols, n in plan:
            qcols = ", ".join('"%s"' % c for c in cols)
            rows = [tuple(r) for r in src.execute("SELECT %s FROM %s" % (qcols, name)).fetchall()]
            if name == "ledger_records" and dst.kind == "pg":
                dst.ensure_partitions(min(r[2] for r in rows), max(r[2] for r in rows))
            dst.executemany("INSERT INTO %s (%s) VALUES (%s)" % (name, qcols, ", ".join("?" * len(cols))), rows)
            total += len(rows)
            serial = "version" if name == "fare_tables" else "id" if name in SERIAL_ID_TABLES else None
            if dst.kind == "pg" and serial:  # the copied ids are taken: the sequence goes past them
                col = serial
                dst.execute("SELECT setval(pg_get_serial_sequence('%s', '%s'), (SELECT MAX(%s) FROM %s))"
                            % (name, col, col, name))
    return len(plan), total
