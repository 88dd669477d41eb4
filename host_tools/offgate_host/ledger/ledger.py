"""The settlement ledger: what the gates did, verified, settled against the accounts' holds.

Storage: SQLite (default: the back office's own database file, its own tables) or PostgreSQL given
a URL (`postgresql://...`). The same SQL runs on both through `_DB`, a thin adapter (placeholders,
BLOB/BYTEA, autoincrement ids).

Operations data lives here (gates, records, anomalies, fraud flags, fares). Money lives with the
accounts in the back office (accounts, holds, charges: one SQLite transaction per trip), and the
ledger marks a record settled only after its charge is committed there; charges are keyed by
(gate, seq), so a crash between the two commits is repaired by the next settle, never doubled.

Ingest (`ingest(gate, records)`) is idempotent by (gate, seq) and verifies each gate's hash chain:
  * chain[i] = SHA-256(chain[i-1] || body[i]) (body = the record's first 28 bytes, oplog.py);
    a mismatch is stored as an anomaly "chain_mismatch" (tampering), never dropped or hidden;
  * a seq that skips ahead is a "gap", one that goes back inside a batch a "reorder", the same seq
    with a different chain a "conflict", a record with `missed` > 0 a "not_logged" note.
Fraud (`fraud` table, and the credential goes onto the back office's deny list):
  * "double_use": the same credential and counter OPENed twice (two gates, or twice at one);
  * "cap_exceeded": settled trips beyond the credential's cap (its hold), found at settlement;
  * "overdraft": a settled charge took the account below its credit limit (balance < -credit).
"""
import hashlib
import json
import sqlite3
import struct
import time
from pathlib import Path
from ..errors import OffgateError

DEFAULT_FARE = 250
CHUNK = 500  # trips settled per transaction
ZERO32 = bytes(32)
REC_MAGIC = 0x4F


def _now(now=None):
    return int(time.time() if now is None else now)


def record_body(r) -> bytes:
    """The 28 hashed bytes of an operation-log record (firmware/offgate/log/oplog.py layout)."""
    cti = r.get("cti")
    return struct.pack(">BBBBIII8sI", REC_MAGIC, 1 if r["decision"] == "OPEN" else 0, r["reason"] & 0xFF,
                       1 if cti else 0, r["seq"], r["t"], r["ctr"] or 0, bytes(cti) if cti else bytes(8),
                       r.get("missed", 0))


def chain_next(prev: bytes, r) -> bytes:
    return hashlib.sha256(bytes(prev) + record_body(r)).digest()


SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger_gates (
    gate        BIGINT PRIMARY KEY,
    device_pub  {blob} NOT NULL,
    enrolled    BIGINT NOT NULL,
    chain_seq   BIGINT NOT NULL DEFAULT 0,
    chain_head  {blob} NOT NULL,
    last_sync   BIGINT,
    drift       BIGINT,
    time_set    BIGINT,
    backlog     BIGINT,
    status      TEXT
);
CREATE TABLE IF NOT EXISTS ledger_records (
    gate      BIGINT NOT NULL,
    seq       BIGINT NOT NULL,
    t         BIGINT NOT NULL,
    cti       {blob},
    ctr       BIGINT NOT NULL,
    decision  TEXT NOT NULL,
    reason    INTEGER NOT NULL,
    missed    BIGINT NOT NULL,
    chain     {blob} NOT NULL,
    chain_ok  INTEGER NOT NULL,
    ingested  BIGINT NOT NULL,
    settled   INTEGER NOT NULL DEFAULT 0,
    station   TEXT,
    direction TEXT,
    UNIQUE (gate, seq)
);
CREATE INDEX IF NOT EXISTS ledger_records_cti ON ledger_records (cti, ctr);
CREATE TABLE IF NOT EXISTS ledger_anomalies (
    id      {serial},
    gate    BIGINT NOT NULL,
    seq     BIGINT NOT NULL,
    kind    TEXT NOT NULL,
    detail  TEXT NOT NULL,
    t       BIGINT NOT NULL,
    UNIQUE (gate, seq, kind)
);
CREATE TABLE IF NOT EXISTS ledger_fraud (
    id         {serial},
    kind       TEXT NOT NULL,
    cti        {blob} NOT NULL,
    ctr        BIGINT NOT NULL,
    gate       BIGINT NOT NULL,
    seq        BIGINT NOT NULL,
    other_gate BIGINT,
    other_seq  BIGINT,
    detail     TEXT NOT NULL,
    t          BIGINT NOT NULL,
    UNIQUE (kind, gate, seq)
);
-- where each gate is and which way it counts (docs/fares.md): one row per change, so a record is
-- stamped at ingest with the place in effect then and a later change does not rewrite history
CREATE TABLE IF NOT EXISTS ledger_gate_places (
    gate      BIGINT NOT NULL,
    since     BIGINT NOT NULL,
    station   TEXT NOT NULL,
    direction TEXT NOT NULL,
    source    TEXT NOT NULL,
    PRIMARY KEY (gate, since)
);
-- records that could not go into ledger_records, kept with their data (never dropped): "conflict"
-- (a different record under a seq already stored), "damaged" (the gate found it damaged on flash;
-- raw = its 64 bytes, the other fields decoded from them as they are)
CREATE TABLE IF NOT EXISTS ledger_anomaly_records (
    id        {serial},
    gate      BIGINT NOT NULL,
    seq       BIGINT NOT NULL,
    kind      TEXT NOT NULL,
    t         BIGINT,
    cti       {blob},
    ctr       BIGINT,
    decision  TEXT,
    reason    INTEGER,
    missed    BIGINT,
    chain     {blob} NOT NULL,
    raw       {blob},
    ingested  BIGINT NOT NULL,
    UNIQUE (gate, seq, kind, chain)
);
-- every enrolment of a gate's device key (who, how, when): the ledger believes only these keys
CREATE TABLE IF NOT EXISTS ledger_gate_log (
    id          {serial},
    gate        BIGINT NOT NULL,
    device_pub  {blob} NOT NULL,
    action      TEXT NOT NULL,
    by_whom     TEXT NOT NULL,
    t           BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger_fares (
    product  BIGINT PRIMARY KEY,
    amount   BIGINT NOT NULL
);
"""


def _clock_at_sync(g):
    """The gate's clock as it reported it at its last sync, before signed time was set: trusted?,
    source ("signed", "ds3231", "rtc", "floor"), since (Unix s), mode; None if not reported."""
    try:
        c = json.loads(g["status"] or "{}").get("clock") or {}
    except (ValueError, TypeError):
        return None
    if "trusted" not in c:
        return None
    return {k: c.get(k) for k in ("trusted", "source", "since", "mode")}


class LedgerError(OffgateError, ValueError):
    pass


DIRECTIONS = ("entry", "exit", "both")
RECORD_COLS = ("gate", "seq", "t", "cti", "ctr", "decision", "reason", "missed", "chain", "chain_ok", "ingested",
               "settled", "station", "direction")


def _first_line(e) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return lines[0] if lines else type(e).__name__


def _safe_url(url) -> str:
    """The URL without its password (for messages)."""
    import re
    return re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", url)


def parse_url(url):
    """("pg", url) for a PostgreSQL URL (postgresql:// or postgres://), ("sqlite", path) for a
    SQLite file (a plain path or sqlite:///path). Any other URL scheme raises LedgerError: a
    typo such as mysql://x must not become a file or directory named after it."""
    import re
    url = str(url)
    if not url.strip():
        raise LedgerError("empty database URL")
    if url.startswith(("postgresql://", "postgres://")):
        return "pg", url
    if url.startswith("sqlite:///"):
        return "sqlite", url[len("sqlite:///"):]
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*):", url)
    if m and (len(m.group(1)) > 1 or url[2:3] not in ("\\", "/")):  # not a Windows drive letter
        raise LedgerError("unsupported database %r: give a PostgreSQL URL (postgresql://user@host/db) or a "
                          "SQLite file path" % _safe_url(url))
    return "sqlite", url


class GateNotEnrolled(LedgerError):
    """A gate id the ledger does not believe: not enrolled, or enrolled with another device key."""


class _DB:
    """The thin adapter: SQL is written with `?` placeholders and {blob}/{serial} type names."""

    def __init__(self, url, create=True):
        self.url = str(url)
        self._ensured = set()   # names of extension schemas already created (ensure())
        kind, where = parse_url(self.url)
        if kind == "pg":
            import psycopg
            self.kind = "pg"
            try:
                self.conn = psycopg.connect(self.url, connect_timeout=10)
            except psycopg.Error as e:
                raise LedgerError("cannot connect to PostgreSQL at %s: %s" % (_safe_url(self.url), _first_line(e))) from None
            self.types = {"blob": "BYTEA", "serial": "BIGSERIAL PRIMARY KEY"}
        else:
            path = Path(where)
            if not path.parent.is_dir():
                raise LedgerError("ledger database %s: directory %s does not exist" % (path, path.parent))
            if path.is_dir():
                raise LedgerError("ledger database %s is a directory" % path)
            if not create and not path.is_file():
                raise LedgerError("no ledger database %s (create it with `offgate init --db %s`)" % (path, self.url))
            self.kind = "sqlite"
            try:
                self.conn = sqlite3.connect(str(path), timeout=30)
                self.conn.execute("PRAGMA journal_mode=WAL")
                self.conn.execute("PRAGMA synchronous=FULL")
            except sqlite3.DatabaseError as e:
                raise LedgerError("%s is not a usable SQLite database (%s)" % (path, e)) from None
            self.types = {"blob": "BLOB", "serial": "INTEGER PRIMARY KEY AUTOINCREMENT"}

    def sql(self, q):
        return q.replace("?", "%s") if self.kind == "pg" else q

    def execute(self, q, args=()):
        cur = self.conn.cursor()
        cur.execute(self.sql(q), tuple(args))
        return cur

    def executemany(self, q, rows):
        cur = self.conn.cursor()
        cur.executemany(self.sql(q), rows)
        return cur

    def rows(self, q, args=()):
        cur = self.execute(q, args)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]

    def one(self, q, args=()):
        r = self.rows(q, args)
        return r[0] if r else None

    def script(self, text):
        for stmt in text.format(**self.types).split(";"):
            if stmt.strip():
                self.execute(stmt)
        self.conn.commit()

    def ensure(self, name, text):
        """Run schema `text` (CREATE ... IF NOT EXISTS) once per connection; `name` keys it.

        Modules that keep their own tables in the ledger database (stats, receipts, stations)
        call this before use instead of marking the Ledger object themselves."""
        if name not in self._ensured:
            self.script(text)
            self._ensured.add(name)

    def insert_rows(self, table, cols, rows):
        """Insert many rows: COPY on PostgreSQL (one round trip for the batch), executemany on
        SQLite. Rows must be new (a duplicate key raises; the caller's transaction rolls back)."""
        if not rows:
            return
        if self.kind == "pg":
            with self.conn.cursor() as cur:
                with cur.copy("COPY %s (%s) FROM STDIN" % (table, ", ".join(cols))) as cp:
                    for r in rows:
                        cp.write_row(r)
        else:
            self.conn.executemany("INSERT INTO %s (%s) VALUES (%s)" % (table, ", ".join(cols),
                                                                       ", ".join("?" * len(cols))), rows)

    def mark_settled(self, done):
        """Set ledger_records.settled for many (settled, gate, seq). executemany: on PostgreSQL
        psycopg pipelines it (no round trip per row); a set-based UPDATE (unnest, = ANY) was
        measured superlinear here, its plan at the mercy of the table's statistics."""
        if done:
            self.executemany("UPDATE ledger_records SET settled = ? WHERE gate = ? AND seq = ?", done)

    def open_matches(self, keyset):
        """The OPEN records (gate, seq, cti, ctr) of every (cti, ctr) in keyset."""
        keyset = list(keyset)
        if self.kind == "pg":
            return self.rows("SELECT r.gate, r.seq, r.cti, r.ctr FROM ledger_records r JOIN unnest(?::bytea[], "
                             "?::bigint[]) AS k(cti, ctr) ON r.cti = k.cti AND r.ctr = k.ctr WHERE r.decision = 'OPEN'",
                             ([k[0] for k in keyset], [k[1] for k in keyset]))
        out = []
        for cti, ctr in keyset:  # in-process: an indexed lookup each costs microseconds
            out += self.rows("SELECT gate, seq, cti, ctr FROM ledger_records WHERE cti = ? AND ctr = ? "
                             "AND decision = 'OPEN'", (cti, ctr))
        return out

    def commit(self):
        self.conn.commit()

    def rollback(self):
        self.conn.rollback()

    def close(self):
        self.conn.close()


def _b(v):
    return bytes(v) if v is not None else None


def _health(status_json):
    """What the gate's last status said about its log damage and its lists (for the report)."""
    try:
        st = json.loads(status_json) if status_json else {}
    except ValueError:
        st = {}
    log = st.get("log") or {}
    deny = st.get("deny") or {}
    return {"log_damaged": log.get("damaged"), "log_cut": log.get("cut"), "deny_serial": deny.get("serial"),
            "deny_age": deny.get("age"), "trust_serial": st.get("trust_serial")}


def _decode_raw(seq, raw):
    """A damaged 64-byte oplog record decoded as it is (fields may be wrong: that is the damage)."""
    r = {"seq": seq, "raw": raw, "chain": raw[28:60] if len(raw) == 64 else bytes(32)}
    if len(raw) == 64:
        _, op, reason, flags, _s, t, ctr = struct.unpack(">BBBBIII", raw[:16])
        r.update(t=t, ctr=ctr, reason=reason, decision="OPEN" if op == 1 else "DENY" if op == 0 else "?",
                 cti=raw[16:24] if flags & 1 else None, missed=struct.unpack(">I", raw[24:28])[0])
    return r


class Ledger:
    def __init__(self, url, create=True):
        """Open (create=True: and create, if it is a new SQLite file) the ledger at `url`;
        LedgerError for an unsupported URL, a missing directory, an unreachable PostgreSQL or,
        with create=False, a SQLite file that does not exist."""
        self.db = _DB(url, create=create)
        self.db.script(SCHEMA)
        self._migrate()

    def _migrate(self):
        # ledgers made before gates had a place: add the record columns (NULL = unknown place)
        for col in ("station", "direction"):
            try:
                self.db.execute("SELECT %s FROM ledger_records WHERE 1 = 0" % col)
            except Exception:
                self.db.rollback()
                self.db.execute("ALTER TABLE ledger_records ADD COLUMN %s TEXT" % col)
        self.db.commit()

    @classmethod
    def for_backoffice(cls, bo, url=None, create=True):
        """The ledger for a back office: `url` if given, else the back office's own SQLite file.
        create=False (the CLI): a SQLite `url` must already exist (`offgate init --db` makes it)."""
        return cls(url or str(bo.db_path), create=create or not url)

    def close(self):
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ fares
    def set_fare(self, product, amount):
        if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
            raise LedgerError("fare must be a non-negative integer (minor units)")
        self.db.execute("INSERT INTO ledger_fares (product, amount) VALUES (?, ?) "
                        "ON CONFLICT (product) DO UPDATE SET amount = excluded.amount", (product, amount))
        self.db.commit()

    def fare(self, product):
        r = self.db.one("SELECT amount FROM ledger_fares WHERE product = ?", (product,))
        return int(r["amount"]) if r else DEFAULT_FARE

    # ------------------------------------------------------------------ gates
    def enroll_gate(self, gate, device_pub, *, by="operator", how="enroll", replace=False, now=None):
        """Enrol gate `gate` with its device key (65-byte SEC1): the explicit, logged operator action
        (`offgate gates enroll`), also taken at provisioning. Returns True if the key is new for the
        gate, False if it was already enrolled with it. A different key for an enrolled gate (a
        replaced board, or an impostor) raises GateNotEnrolled unless replace=True.
        Every change is logged in ledger_gate_log (gate, key, action, by whom, when)."""
        device_pub = bytes(device_pub)
        if isinstance(gate, bool) or not isinstance(gate, int) or gate < 0:
            raise LedgerError("gate id must be a non-negative integer")
        if len(device_pub) != 65 or device_pub[0] != 4:
            raise LedgerError("gate %d: device key must be a 65-byte uncompressed P-256 point" % gate)
        r = self.db.one("SELECT device_pub FROM ledger_gates WHERE gate = ?", (gate,))
        if r is not None and bytes(r["device_pub"]) == device_pub:
            return False
        if r is not None and not replace:
            raise GateNotEnrolled("gate %d is enrolled with another device key (%s...); if the gate was "
                                  "replaced, re-enrol it: offgate gates enroll %d --key NEW_KEY_HEX --replace"
                                  % (gate, bytes(r["device_pub"]).hex()[:16], gate))
        if r is None:
            self.db.execute("INSERT INTO ledger_gates (gate, device_pub, enrolled, chain_seq, chain_head) "
                            "VALUES (?, ?, ?, 0, ?)", (gate, device_pub, _now(now), ZERO32))
        else:  # replaced board: a new key; its log starts where the old gate's chain stood
            self.db.execute("UPDATE ledger_gates SET device_pub = ?, enrolled = ? WHERE gate = ?",
                            (device_pub, _now(now), gate))
        self.db.execute("INSERT INTO ledger_gate_log (gate, device_pub, action, by_whom, t) VALUES (?, ?, ?, ?, ?)",
                        (gate, device_pub, ("replace:" if r is not None else "") + how, str(by), _now(now)))
        self.db.commit()
        return True

    def check_gate(self, gate, device_pub, registered=None, now=None):
        """May the ledger believe gate `gate` speaking with `device_pub`? Yes only if the gate is
        enrolled with exactly that key. A gate the ledger has not seen yet is enrolled here if
        `registered` (the back office's provisioning registry: gate id -> device key, written by
        `offgate provision`/`deploy`/`gate init`) holds that key for it. Raises GateNotEnrolled
        (one line, says what to do) otherwise: trust is never given on first contact."""
        device_pub = bytes(device_pub)
        r = self.db.one("SELECT device_pub FROM ledger_gates WHERE gate = ?", (gate,))
        if r is not None:
            if bytes(r["device_pub"]) == device_pub:
                return True
            raise GateNotEnrolled("gate %d presented device key %s..., not the enrolled one (%s...); if the gate "
                                  "was replaced, re-enrol it: offgate gates enroll %d --key NEW_KEY_HEX --replace"
                                  % (gate, device_pub.hex()[:16], bytes(r["device_pub"]).hex()[:16], gate))
        reg = (registered or {}).get(gate)
        if reg is not None and bytes(reg) == device_pub:
            self.enroll_gate(gate, device_pub, by="provisioning", how="provisioned", now=now)
            return True
        if reg is not None:
            raise GateNotEnrolled("gate %d presented device key %s..., not the one it was provisioned with (%s...); "
                                  "if the gate was replaced, re-enrol it: offgate gates enroll %d --key NEW_KEY_HEX "
                                  "--replace" % (gate, device_pub.hex()[:16], bytes(reg).hex()[:16], gate))
        raise GateNotEnrolled("gate %d is not enrolled (device key %s...); enrol it after checking the key on the "
                              "gate: offgate gates enroll %d --key KEY_HEX" % (gate, device_pub.hex()[:16], gate))

    def gate_log(self, gate=None):
        q = "SELECT gate, device_pub, action, by_whom, t FROM ledger_gate_log" + \
            (" WHERE gate = ?" if gate is not None else "") + " ORDER BY id"
        out = self.db.rows(q, (gate,) if gate is not None else ())
        for r in out:
            r["device_pub"] = bytes(r["device_pub"])
        return out

    def gate(self, gate):
        return self.db.one("SELECT * FROM ledger_gates WHERE gate = ?", (gate,))

    def gates(self):
        return self.db.rows("SELECT * FROM ledger_gates ORDER BY gate")

    # ------------------------------------------------------------------ gate places
    def set_place(self, gate, station, direction, source="operator", now=None):
        """Record that `gate` is at `station` (a GTFS stop_id or area_id) counting taps as
        `direction` (entry/exit/both) from `now` on (Unix seconds). Records ingested from then on
        carry it; earlier records keep theirs. LedgerError on a bad value."""
        if not isinstance(station, str) or not station.strip():
            raise LedgerError("station must be a non-empty GTFS stop_id or area_id")
        if direction not in DIRECTIONS:
            raise LedgerError("direction must be one of %s, got %r" % ("/".join(DIRECTIONS), direction))
        cur = self.place(gate)
        if cur and cur["station"] == station and cur["direction"] == direction:
            return cur
        now = _now(now)
        if cur and cur["since"] >= now:
            now = cur["since"] + 1  # keep the history strictly ordered
        self.db.execute("INSERT INTO ledger_gate_places (gate, since, station, direction, source) VALUES (?, ?, ?, ?, ?)",
                        (gate, now, station.strip(), direction, source))
        self.db.commit()
        return self.place(gate)

    def place(self, gate):
        """The gate's current place: dict(gate, since, station, direction, source) or None."""
        return self.db.one("SELECT gate, since, station, direction, source FROM ledger_gate_places WHERE gate = ? "
                           "ORDER BY since DESC LIMIT 1", (gate,))

    def places(self):
        return self.db.rows("SELECT gate, since, station, direction, source FROM ledger_gate_places ORDER BY gate, since")

    def _place_from_status(self, gate, st, now):
        # The registry is the operator's word; the gate's own config (sync status) fills it in at
        # enrolment, and a disagreement later is an anomaly to look at, never a silent change.
        station, direction = st.get("station") or "", st.get("direction") or ""
        if not station or direction not in DIRECTIONS:
            return
        cur = self.place(gate)
        if cur is None:
            self.set_place(gate, station, direction, source="gate", now=now)
        elif (cur["station"], cur["direction"]) != (station, direction):
            self._anomaly(gate, self.gate(gate)["chain_seq"], "place_mismatch",
                          "gate config says station %r %s, the registry %r %s"
                          % (station, direction, cur["station"], cur["direction"]), now)

    def note_status(self, gate, st, now=None):
        self._place_from_status(gate, st, _now(now))
        log = st.get("log") or {}
        self.db.execute("UPDATE ledger_gates SET last_sync = ?, backlog = ?, status = ? WHERE gate = ?",
                        (_now(now), log.get("backlog"), json.dumps(st, default=lambda b: b.hex()), gate))
        self.db.commit()

    def note_time(self, gate, drift, now=None):
        self.db.execute("UPDATE ledger_gates SET drift = ?, time_set = ?, last_sync = ? WHERE gate = ?",
                        (drift, _now(now), _now(now), gate))
        self.db.commit()

    # ------------------------------------------------------------------ ingest
    def ingest(self, gate, records, meta=None, now=None, device_pub=None):
        """Store one batch of a gate's records, in one transaction (durable when it returns).
        `device_pub`: the key the batch was signed with; it must be the gate's enrolled key.
        Returns counts and the credential ids to deny. Raises GateNotEnrolled for a gate (or key)
        that is not enrolled: nothing is stored."""
        now = _now(now)
        db = self.db
        g = self.gate(gate)
        if g is None:
            raise GateNotEnrolled("gate %d is not enrolled; nothing ingested" % gate)
        if device_pub is not None and bytes(g["device_pub"]) != bytes(device_pub):
            raise GateNotEnrolled("batch for gate %d is signed by a key that is not the enrolled one; nothing "
                                  "ingested" % gate)
        head_seq, head = int(g["chain_seq"]), bytes(g["chain_head"])
        res = {"new": 0, "duplicates": 0, "anomalies": 0, "fraud": 0, "deny": []}
        prev_seq = None
        meta = meta or {}
        place = self.place(gate) or {"station": None, "direction": None}  # in effect for this batch
        # the stored chains of this batch's seq range, in one query (not one per record)
        seqs = [r["seq"] for r in records]
        existing = {}
        if seqs:
            existing = {row["seq"]: bytes(row["chain"]) for row in db.rows(
                "SELECT seq, chain FROM ledger_records WHERE gate = ? AND seq >= ? AND seq <= ?",
                (gate, min(seqs), max(seqs)))}
        new_rows, opens = [], []

        def flush():
            # one bulk write (COPY on PostgreSQL), then one look for double use, per batch
            db.insert_rows("ledger_records", RECORD_COLS, new_rows)
            if opens:
                res["fraud"] += self._double_uses(gate, opens, now, res["deny"])
            del new_rows[:], opens[:]
        try:
            if records and meta.get("chain_ok") is False:
                res["anomalies"] += self._anomaly(gate, records[-1]["seq"], "chain_mismatch",
                                                  "the batch's records do not lead to the chain the gate "
                                                  "reports (%s)" % bytes(meta.get("chain") or b"").hex()[:16], now)
            for r in records:
                seq = r["seq"]
                if "damaged" in r:
                    # kept with its bytes; the seq counts as stored (nothing is lost quietly)
                    res["anomalies"] += self._anomaly(gate, seq, "damaged_record",
                                                      "the gate found record %d damaged on flash: %s"
                                                      % (seq, bytes(r["damaged"]).hex()), now)
                    self._keep(gate, "damaged", _decode_raw(seq, bytes(r["damaged"])), now)
                    res["damaged"] = res.get("damaged", 0) + 1
                    if seq > head_seq:
                        head_seq, head = seq, bytes(r["chain"])
                    prev_seq = seq
                    continue
                if prev_seq is not None and seq <= prev_seq:
                    res["anomalies"] += self._anomaly(gate, seq, "reorder",
                                                      "seq %d after %d in one batch" % (seq, prev_seq), now)
                prev_seq = seq
                old = existing.get(seq)
                if old is not None:
                    if old == bytes(r["chain"]):
                        res["duplicates"] += 1
                    else:
                        res["anomalies"] += self._anomaly(gate, seq, "conflict",
                                                          "a different record for seq %d was already stored; "
                                                          "kept in ledger_anomaly_records" % seq, now)
                        self._keep(gate, "conflict", r, now)
                        res["conflicts"] = res.get("conflicts", 0) + 1
                        if r["decision"] == "OPEN" and r.get("cti"):
                            flush()  # this batch's earlier records first: they count as stored
                            res["fraud"] += self._double_use(gate, r, now, res["deny"])
                    continue
                if seq != head_seq + 1:
                    if seq > head_seq + 1:
                        res["anomalies"] += self._anomaly(gate, seq, "gap", "records %d..%d missing"
                                                          % (head_seq + 1, seq - 1), now)
                    chain_ok = 0  # cannot be linked to the stored head
                else:
                    chain_ok = 1 if chain_next(head, r) == bytes(r["chain"]) else 0
                    if not chain_ok:
                        res["anomalies"] += self._anomaly(gate, seq, "chain_mismatch",
                                                          "chain of seq %d does not follow seq %d" % (seq, head_seq), now)
                if r.get("missed"):
                    res["anomalies"] += self._anomaly(gate, seq, "not_logged",
                                                      "%d decisions before seq %d were not logged" % (r["missed"], seq), now)
                new_rows.append((gate, seq, r["t"], _b(r.get("cti")), r["ctr"] or 0, r["decision"], r["reason"],
                                 r.get("missed", 0), bytes(r["chain"]), chain_ok, now, 0, place["station"],
                                 place["direction"]))
                existing[seq] = bytes(r["chain"])  # the same seq again later in this batch
                res["new"] += 1
                if seq > head_seq:
                    head_seq, head = seq, bytes(r["chain"])
                if r["decision"] == "OPEN" and r.get("cti"):
                    opens.append(r)
            flush()
            if records and meta.get("chain") and head_seq == records[-1]["seq"]:
                head = bytes(meta["chain"])  # the gate's own chain: the next batch links to it
            db.execute("UPDATE ledger_gates SET chain_seq = ?, chain_head = ? WHERE gate = ?", (head_seq, head, gate))
            db.commit()
            res["stored_to"] = records[-1]["seq"] if records else None
        except BaseException:
            db.rollback()
            raise
        return res

    def _keep(self, gate, kind, r, now):
        self.db.execute("INSERT INTO ledger_anomaly_records (gate, seq, kind, t, cti, ctr, decision, reason, missed, "
                        "chain, raw, ingested) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                        (gate, r["seq"], kind, r.get("t"), _b(r.get("cti")), r.get("ctr"), r.get("decision"),
                         r.get("reason"), r.get("missed"), bytes(r["chain"]), _b(r.get("raw")), now))

    def anomaly_records(self, gate=None):
        q = "SELECT * FROM ledger_anomaly_records" + (" WHERE gate = ?" if gate is not None else "") + \
            " ORDER BY gate, seq, id"
        out = self.db.rows(q, (gate,) if gate is not None else ())
        for r in out:
            for k in ("cti", "chain", "raw"):
                r[k] = _b(r[k])
        return out

    def _anomaly(self, gate, seq, kind, detail, now):
        cur = self.db.execute("INSERT INTO ledger_anomalies (gate, seq, kind, detail, t) VALUES (?, ?, ?, ?, ?) "
                              "ON CONFLICT DO NOTHING", (gate, seq, kind, detail, now))
        return 1 if cur.rowcount else 0

    def _flag(self, kind, cti, ctr, gate, seq, other_gate, other_seq, detail, now):
        cur = self.db.execute("INSERT INTO ledger_fraud (kind, cti, ctr, gate, seq, other_gate, other_seq, detail, t) "
                              "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                              (kind, bytes(cti), ctr, gate, seq, other_gate, other_seq, detail, now))
        return 1 if cur.rowcount else 0

    def _double_uses(self, gate, opens, now, deny):
        """_double_use for the OPEN records of one batch, just inserted, in one query: a record is
        matched against the records stored before it (earlier batches, earlier in this batch),
        as if each had been checked when it was inserted."""
        order = {r["seq"]: i for i, r in enumerate(opens)}
        keyset = {(bytes(r["cti"]), r["ctr"]) for r in opens}
        found = {}
        for m in self.db.open_matches(keyset):
            found.setdefault((bytes(m["cti"]), m["ctr"]), []).append((m["gate"], m["seq"]))
        n = 0
        for r in opens:
            k = (bytes(r["cti"]), r["ctr"])
            me = order[r["seq"]]
            others = sorted(o for o in found.get(k, ()) if o != (gate, r["seq"])
                            and not (o[0] == gate and order.get(o[1], -1) > me))
            for og, os_ in others:
                n += self._flag("double_use", r["cti"], r["ctr"], gate, r["seq"], og, os_,
                                "counter %d of %s opened at gate %d (seq %d) and gate %d (seq %d)"
                                % (r["ctr"], k[0].hex(), og, os_, gate, r["seq"]), now)
            if others:
                deny.append(k[0])
        return n

    def _double_use(self, gate, r, now, deny):
        others = self.db.rows("SELECT gate, seq FROM ledger_records WHERE cti = ? AND ctr = ? AND decision = 'OPEN' "
                              "AND NOT (gate = ? AND seq = ?) ORDER BY gate, seq",
                              (bytes(r["cti"]), r["ctr"], gate, r["seq"]))
        n = 0
        for o in others:
            n += self._flag("double_use", r["cti"], r["ctr"], gate, r["seq"], o["gate"], o["seq"],
                            "counter %d of %s opened at gate %d (seq %d) and gate %d (seq %d)"
                            % (r["ctr"], bytes(r["cti"]).hex(), o["gate"], o["seq"], gate, r["seq"]), now)
        if others:
            deny.append(bytes(r["cti"]))
        return n

    # ------------------------------------------------------------------ settlement
    def settle(self, bo, now=None):
        """Charge every unsettled OPEN passage to its account (against the credential's hold), flag
        use beyond the cap, release the holds of expired credentials. Idempotent.
        With a fare table loaded (`offgate fares load`) taps are paired into journeys and priced
        by it instead (offgate_host.fares.settle, docs/fares.md)."""
        from ..fares import settle as fare_settle
        eng = fare_settle.active_engine(self.db)
        now = _now(now)
        if eng is not None:
            return self._settle_end(bo, now, fare_settle.settle(self, bo, now, eng))
        out = {"trips": 0, "charged": 0, "over_cap": 0, "fraud": 0, "unknown": 0, "released": 0,
               "released_amount": 0, "deny": []}
        rows = self.db.rows("SELECT gate, seq, t, cti, ctr FROM ledger_records WHERE decision = 'OPEN' "
                            "AND settled = 0 ORDER BY t, gate, seq")
        fares, creds = {}, {}
        for i in range(0, len(rows), CHUNK):
            chunk = rows[i:i + CHUNK]
            trips, done, unknown = [], [], []
            for r in chunk:
                if r["cti"] is None:
                    done.append((1, r["gate"], r["seq"]))
                    continue
                cti = bytes(r["cti"])
                if cti not in creds:  # once per credential, not once per trip
                    creds[cti] = bo.credential(cti)
                cred = creds[cti]
                if cred is None:
                    unknown.append(r)
                    done.append((2, r["gate"], r["seq"]))
                    continue
                if cred["product"] not in fares:
                    fares[cred["product"]] = self.fare(cred["product"])
                trips.append((r, (r["gate"], r["seq"], cti, r["t"], fares[cred["product"]])))
            # money first (one back-office transaction), then the ledger's marks (one transaction):
            # a crash in between is repaired by the next settle, as charges are keyed by (gate, seq)
            results = bo.charge_trips([t for _, t in trips], now=now) if trips else []
            for r in unknown:
                out["unknown"] += self._anomaly(r["gate"], r["seq"], "unknown_credential",
                                                "OPEN for credential %s the back office never issued"
                                                % bytes(r["cti"]).hex(), now)
            for (r, t), c in zip(trips, results):
                done.append((1, r["gate"], r["seq"]))
                if c is None:
                    continue
                out["trips"] += 1
                out["charged"] += c["amount"]
                if c["cap"] is not None and c["charged_total"] > c["cap"]:
                    cti = t[2]
                    out["over_cap"] += c["over_cap"]
                    out["fraud"] += self._flag("cap_exceeded", cti, r["ctr"], r["gate"], r["seq"], None, None,
                                               "credential %s charged %d in total, cap %d"
                                               % (cti.hex(), c["charged_total"], c["cap"]), now)
                    if cti not in out["deny"]:
                        out["deny"].append(cti)
                if c.get("overdrawn"):
                    out["fraud"] += self._overdraft(c, t[2], r["ctr"], r["gate"], r["seq"], now, out)
            self.db.mark_settled(done)
            self.db.commit()
        return self._settle_end(bo, now, out)

    def _overdraft(self, c, cti, ctr, gate, seq, now, out):
        """A charge took the account below its credit limit: flag it (fraud kind "overdraft") and
        deny the credential; the back office refuses new credentials until the account is topped
        up (issue_credential). Returns 1 if newly flagged."""
        if cti not in out["deny"]:
            out["deny"].append(cti)
        out["overdrafts"] = out.get("overdrafts", 0) + 1
        return self._flag("overdraft", cti, ctr, gate, seq, None, None,
                          "account %s below its credit limit after charging %d for credential %s"
                          % (c["account"], c["amount"], cti.hex()), now)

    def _settle_end(self, bo, now, out):
        """Both settlements end alike: deny the credentials flagged, release expired holds."""
        for cti in out["deny"]:
            bo.deny(cti)
        for h in bo.release_expired_holds(now):
            out["released"] += 1
            out["released_amount"] += h["released_amount"]
        return out

    # ------------------------------------------------------------------ queries
    def records(self, gate=None):
        q = "SELECT * FROM ledger_records" + (" WHERE gate = ?" if gate is not None else "") + " ORDER BY gate, seq"
        return self.db.rows(q, (gate,) if gate is not None else ())

    def anomalies(self):
        return self.db.rows("SELECT gate, seq, kind, detail, t FROM ledger_anomalies ORDER BY gate, seq, kind")

    def fraud(self):
        out = self.db.rows("SELECT kind, cti, ctr, gate, seq, other_gate, other_seq, detail, t FROM ledger_fraud "
                           "ORDER BY t, gate, seq")
        for f in out:
            f["cti"] = bytes(f["cti"])
        return out

    def report(self):
        """Everything `offgate report` shows, as plain data."""
        db = self.db
        return {
            "passages": db.rows("SELECT gate, (t / 3600) * 3600 AS hour, COUNT(*) AS passages FROM ledger_records "
                                "WHERE decision = 'OPEN' GROUP BY gate, (t / 3600) * 3600 ORDER BY gate, hour"),
            "denials": db.rows("SELECT gate, reason, COUNT(*) AS n FROM ledger_records WHERE decision = 'DENY' "
                               "GROUP BY gate, reason ORDER BY gate, reason"),
            "fraud": self.fraud(),
            "anomalies": self.anomalies(),
            "anomaly_records": [{k: (v.hex() if isinstance(v, bytes) else v) for k, v in r.items()}
                                for r in self.anomaly_records()],
            "gates": [dict({"gate": g["gate"], "last_sync": g["last_sync"], "drift": g["drift"],
                            "time_set": g["time_set"], "backlog": g["backlog"], "chain_seq": g["chain_seq"], "clock": _clock_at_sync(g),
                            "records": db.one("SELECT COUNT(*) AS n FROM ledger_records WHERE gate = ?",
                                              (g["gate"],))["n"]}, **_health(g["status"]))
                      for g in self.gates()],
        }
