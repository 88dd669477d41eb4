"""The settlement ledger: what the gates did, verified, settled against the accounts' holds.

Storage: the back office's one database (offgate_host.db: SQLite or PostgreSQL, schema by
migrations, docs/database.md). The ledger's tables (gates, records, anomalies, fraud flags, fares)
sit beside the accounts, holds and charges, on the same connection: settlement charges a trip and
marks its record settled in one transaction. Charges are keyed by (gate, seq), so settling twice
never charges twice. On PostgreSQL the records are partitioned by month of their tap time.

Ingest (`ingest(gate, records)`) is idempotent by (gate, seq) and verifies each gate's hash chain:
  * chain[i] = SHA-256(chain[i-1] || body[i]) (body = the record's first 28 bytes, oplog.py; the
    gate's 32-byte records do not store it: it is recomputed from the bodies, restarting where the
    batch reports a break); a mismatch or a break is stored as an anomaly "chain_mismatch"
    (tampering or flash damage), never dropped or hidden;
  * a seq that skips ahead is a "gap", one that goes back inside a batch a "reorder", the same seq
    with a different chain a "conflict", a record with `missed` > 0 a "not_logged" note.
Fraud (`fraud` table, and the credential goes onto the back office's deny list):
  * "double_use": the same credential and counter OPENed twice (two gates, or twice at one);
  * "cap_exceeded": settled trips beyond the credential's cap (its hold), found at settlement;
  * "overdraft": a settled charge took the account below its credit limit (balance < -credit).
"""
import hashlib
import json
import struct
import time
import zlib
from ..db import Database, parse_url as _parse_url, same_database
from ..errors import OffgateError

DEFAULT_FARE = 250
CHUNK = 20000  # trips settled per transaction (one back-office, one ledger transaction each)
ZERO32 = bytes(32)
REC_MAGIC = 0x4F


def _now(now=None):
    return int(time.time() if now is None else now)


_BODY = struct.Struct(">BBBBIII8sI")
_NO_CTI = bytes(8)


def record_body(r) -> bytes:
    """The 28 hashed bytes of an operation-log record (firmware/offgate/log/oplog.py layout)."""
    cti = r.get("cti")
    return _BODY.pack(REC_MAGIC, 1 if r["decision"] == "OPEN" else 0, r["reason"] & 0xFF, 1 if cti else 0,
                      r["seq"], r["t"], r["ctr"] or 0, bytes(cti) if cti else _NO_CTI, r.get("missed", 0))


def decode_record(raw: bytes) -> dict:
    """A 32-byte operation-log record (docs/oplog.md "Records"): {"seq", "t", "cti" (8 bytes or None),
    "ctr", "decision", "reason", "missed", "ok"}; ok is False for a bad magic or CRC-32 (flash
    damage: the other fields are then as stored, possibly wrong). The host's own decoder (struct and
    zlib), cross-checked against the firmware's writer in tests/cross/test_oplog_format.py."""
    raw = bytes(raw)
    if len(raw) != 32:
        raise ValueError("an operation-log record is 32 bytes, not %d" % len(raw))
    magic, op, reason, flags, seq, t, ctr, cti, missed, crc = struct.unpack(">BBBBIII8sII", raw)
    return {"seq": seq, "t": t, "cti": cti if flags & 1 else None, "ctr": ctr,
            "decision": "OPEN" if op == 1 else "DENY" if op == 0 else "?", "reason": reason, "missed": missed,
            "ok": magic == REC_MAGIC and zlib.crc32(raw[:28]) & 0xFFFFFFFF == crc}


def chain_next(prev: bytes, r) -> bytes:
    return chain_next_body(prev, record_body(r))


def chain_next_body(prev: bytes, body: bytes) -> bytes:
    """SHA-256(prev || body): the chain after a record with this 28-byte body (docs/oplog.md)."""
    return hashlib.sha256(bytes(prev) + bytes(body)).digest()


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
               "station", "direction")
# their PostgreSQL types, for a binary COPY (db.Database.load): the server parses no text
RECORD_TYPES = ("int8", "int8", "int8", "bytea", "int8", "text", "int4", "int8", "bytea", "int4", "int8", "text",
                "text")


def parse_url(url):
    """offgate_host.db.parse_url, raising LedgerError."""
    return _parse_url(url, LedgerError)


class GateNotEnrolled(LedgerError):
    """A gate id the ledger does not believe: not enrolled, or enrolled with another device key."""


class _DB(Database):
    """The one database (offgate_host.db.Database) with the ledger's bulk operations."""

    @classmethod
    def sharing(cls, database):
        """A _DB on the same connection and transaction as `database` (the back office's)."""
        obj = cls.__new__(cls)
        obj.__dict__ = database.__dict__  # one state: connection, transaction depth, caches
        return obj

    def _temp(self, name, ddl):
        """Create the connection's temporary table `name` unless it exists (callers empty it after
        use, in their transaction: a rollback undoes both the rows and, if new, the table)."""
        self.execute("CREATE TEMP TABLE IF NOT EXISTS %s (%s)" % (name, ddl))

    # the double-use look of a staged batch (ingest_staged): every staged OPEN against the OPEN
    # records of its (cti, ctr) stored before it; LATERAL on PostgreSQL makes it one index probe
    # per staged OPEN whatever the planner thinks of the (unanalysed) staging table
    _MATCH = {
        "pg": "SELECT s.pos, s.cti, s.ctr, s.seq, m.gate, m.seq FROM ledger_stage s CROSS JOIN LATERAL ("
              "SELECT r.gate, r.seq FROM ledger_records r WHERE r.cti = s.cti AND r.ctr = s.ctr "
              "AND r.decision = 'OPEN' AND NOT (r.gate = s.gate AND r.seq = s.seq)) m "
              "WHERE s.decision = 'OPEN' AND s.cti IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ledger_stage l "
              "WHERE l.gate = m.gate AND l.seq = m.seq AND l.pos > s.pos) ORDER BY s.pos, m.gate, m.seq",
        "sqlite": "SELECT s.pos, s.cti, s.ctr, s.seq, r.gate, r.seq FROM ledger_stage s JOIN ledger_records r "
                  "ON r.cti = s.cti AND r.ctr = s.ctr AND r.decision = 'OPEN' AND NOT (r.gate = s.gate AND "
                  "r.seq = s.seq) WHERE s.decision = 'OPEN' AND s.cti IS NOT NULL AND NOT EXISTS (SELECT 1 "
                  "FROM ledger_stage l WHERE l.gate = r.gate AND l.seq = r.seq AND l.pos > s.pos) "
                  "ORDER BY s.pos, r.gate, r.seq",
    }

    @staticmethod
    def dicts(cur):
        return [dict(r) for r in cur.fetchall()]

    def ingest_staged(self, rows):
        """Store new ledger_records rows (RECORD_COLS + their position in the batch) set-based:
        bulk-load them into a temporary staging table, one INSERT ... SELECT into ledger_records,
        one query for double use. Returns the matches [(pos, cti, ctr, seq, other_gate,
        other_seq)]: each staged OPEN against every OPEN of the same (cti, ctr) stored before it
        (earlier batches, other gates, earlier in this batch), as if each had been checked when it
        was inserted. Rows must be new (the caller checked their seqs)."""
        self._temp("ledger_stage", "gate BIGINT, seq BIGINT, t BIGINT, cti {blob}, ctr BIGINT, decision TEXT, "
                   "reason INTEGER, missed BIGINT, chain {blob}, chain_ok INTEGER, ingested BIGINT, "
                   "station TEXT, direction TEXT, pos BIGINT".format(
                       blob="BYTEA" if self.kind == "pg" else "BLOB"))
        cols = ", ".join(RECORD_COLS)
        self.load("ledger_stage", RECORD_COLS + ("pos",), rows, RECORD_TYPES + ("int8",))
        self.execute("INSERT INTO ledger_records (%s) SELECT %s FROM ledger_stage" % (cols, cols))
        found = self.execute(self._MATCH[self.kind]).fetchall()
        self.execute("DELETE FROM ledger_stage")
        return found

    # a passage is settled when ledger_settled holds its (gate, seq) (migration 0004: insert-only
    # marks instead of an MVCC update of every settled ledger_records row); `r` is ledger_records
    UNSETTLED = "NOT EXISTS (SELECT 1 FROM ledger_settled s WHERE s.gate = r.gate AND s.seq = r.seq)"
    SETTLED_STATE = ("COALESCE((SELECT s.state FROM ledger_settled s WHERE s.gate = r.gate AND s.seq = r.seq), 0) "
                     "AS settled")

    def mark_settled(self, done):
        """Mark many passages settled, (state, gate, seq) each (1 settled, 2 unknown credential),
        none marked before (settlement read them as unsettled, under its lock): one COPY into
        ledger_settled on PostgreSQL, executemany on SQLite (in-process, per-row is cheap)."""
        if done:
            self.load("ledger_settled", ("state", "gate", "seq"), done, ("int4", "int8", "int8"))

    def set_marks(self, marks):
        """Set the marks of passages that may have one already (the fares path re-rates): (state,
        gate, seq) each; state 0 (pending again) deletes the mark, others insert or replace it."""
        unmark = [(g, q) for st, g, q in marks if not st]
        mark = [(g, q, st) for st, g, q in marks if st]
        if unmark:
            self.executemany("DELETE FROM ledger_settled WHERE gate = ? AND seq = ?", unmark)
        if mark:
            self.executemany("INSERT INTO ledger_settled (gate, seq, state) VALUES (?, ?, ?) ON CONFLICT (gate, seq) "
                             "DO UPDATE SET state = excluded.state", mark)


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


def _decode_raw(seq, raw, chain=None):
    """A damaged oplog record (32 bytes; 64 from firmware before issue 12, which stored its chain)
    decoded as it is (fields may be wrong: that is the damage); chain: as recomputed over it."""
    r = {"seq": seq, "raw": raw, "chain": raw[28:60] if len(raw) == 64 else (chain or bytes(32))}
    if len(raw) == 32:
        d = decode_record(raw)
        r.update((k, d[k]) for k in ("t", "ctr", "reason", "decision", "cti", "missed"))
    elif len(raw) == 64:
        _, op, reason, flags, _s, t, ctr = struct.unpack(">BBBBIII", raw[:16])
        r.update(t=t, ctr=ctr, reason=reason, decision="OPEN" if op == 1 else "DENY" if op == 0 else "?",
                 cti=raw[16:24] if flags & 1 else None, missed=struct.unpack(">I", raw[24:28])[0])
    return r


# the double-use flags of a run of gate g's records just COPYed (seqs lo..hi, ascending, nothing
# else of the gate in between): each OPEN against the first (by gate, seq) OPEN of its (cti, ctr)
# stored before it (earlier batches, other gates, earlier in the run), as Ledger._double_uses
# flags them; LATERAL: one index probe per OPEN. Args: now, hi, g, lo, hi. PostgreSQL only.
_RUN_DOUBLE_USE = (
    "INSERT INTO ledger_fraud (kind, cti, ctr, gate, seq, other_gate, other_seq, detail, t) "
    "SELECT 'double_use', s.cti, s.ctr, s.gate, s.seq, m.gate, m.seq, 'counter ' || s.ctr || ' of ' || "
    "encode(s.cti, 'hex') || ' opened at gate ' || m.gate || ' (seq ' || m.seq || ') and gate ' || s.gate || "
    "' (seq ' || s.seq || ')', ?::bigint FROM ledger_records s CROSS JOIN LATERAL (SELECT r.gate, r.seq "
    "FROM ledger_records r WHERE r.cti = s.cti AND r.ctr = s.ctr AND r.decision = 'OPEN' AND NOT (r.gate = s.gate "
    "AND r.seq >= s.seq AND r.seq <= ?) ORDER BY r.gate, r.seq LIMIT 1) m WHERE s.gate = ? AND s.seq >= ? "
    "AND s.seq <= ? AND s.decision = 'OPEN' AND s.cti IS NOT NULL ON CONFLICT DO NOTHING RETURNING cti")
# ingest's read on PostgreSQL, one statement: the gate's row (FOR UPDATE: one ingest per gate at
# a time), its place now, the stored seqs and chains of the batch's seq range (args lo, hi, gate)
_GATE_Q = ("SELECT g.device_pub, g.chain_seq, g.chain_head, p.station, p.direction, p.gate IS NOT NULL, e.seqs, "
           "e.chains FROM ledger_gates g LEFT JOIN LATERAL (SELECT gate, station, direction FROM ledger_gate_places "
           "WHERE gate = g.gate ORDER BY since DESC LIMIT 1) p ON true LEFT JOIN LATERAL (SELECT array_agg(seq) AS "
           "seqs, array_agg(chain) AS chains FROM ledger_records r WHERE r.gate = g.gate AND r.seq >= ? AND "
           "r.seq <= ?) e ON true WHERE g.gate = ? FOR UPDATE OF g")
_SET_HEAD = "UPDATE ledger_gates SET chain_seq = ?, chain_head = ? WHERE gate = ?"
# the gate's new head and the run's double-use flags in one statement (args: chain_seq, chain_head,
# gate, then _RUN_DOUBLE_USE's)
_HEAD_AND_DOUBLE_USE = "WITH head AS (" + _SET_HEAD + ") " + _RUN_DOUBLE_USE
_PLACE_Q = ("SELECT gate, since, station, direction, source FROM ledger_gate_places WHERE gate = ? "
            "ORDER BY since DESC LIMIT 1")


class Ledger:
    def __init__(self, url, create=True):
        """Open (create=True: and create, if it is a new SQLite file) the ledger at `url`;
        LedgerError for an unsupported URL, a missing directory, an unreachable PostgreSQL or,
        with create=False, a SQLite file that does not exist."""
        if isinstance(url, Database):  # the back office's database: shared, not closed here
            self.db, self._own = _DB.sharing(url), False
        else:
            self.db, self._own = _DB(url, create=create, error=LedgerError), True

    @classmethod
    def for_backoffice(cls, bo, url=None, create=True):
        """The ledger of a back office: on its database (one connection, one transaction). A
        `url` naming another database opens that one (create=False: it must exist and be
        current) -- a ledger apart from the accounts, as before the one database; the CLI
        refuses that (`offgate db upgrade` merges the two)."""
        if url is None or same_database(url, bo.db.url):
            return cls(bo.db)
        return cls(url, create=create)

    def closes(self, bo):
        """Close back office `bo` with this ledger (one opened for the ledger alone, sharing its
        connection: the CLI's open_ledger). Returns the ledger."""
        self._bo = bo
        return self

    def close(self):
        if self._own:
            self.db.close()
        bo = self.__dict__.pop("_bo", None)  # a back office opened for this ledger alone (closes())
        if bo is not None:
            bo.close()

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
        return self.db.one(_PLACE_Q, (gate,))

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
            self.note_anomaly(gate, self.gate(gate)["chain_seq"], "place_mismatch",
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
        seqs = [r["seq"] for r in records]
        ts = [r["t"] for r in records if "t" in r]
        if ts:
            db.ensure_partitions(min(ts), max(ts), now)  # PostgreSQL: the months' partitions exist
        # the gate, its place and the stored chains of this batch's seq range: one query each,
        # not one per record; on PostgreSQL one statement (_GATE_Q), FOR UPDATE: one ingest per
        # gate at a time, as (gate, seq) is checked here (the partitioned table's key includes t,
        # so it cannot enforce (gate, seq) alone)
        lo_hi = (min(seqs), max(seqs)) if seqs else (None, None)
        if db.kind == "pg":
            # one statement, not a pipeline of three: psycopg's pipeline costs about as much client
            # time per batch as the three statements cost the server (measured: 1.8 vs 0.7 ms)
            row = db.execute(_GATE_Q, (lo_hi[0], lo_hi[1], gate)).fetchone()
            if row is None:
                raise GateNotEnrolled("gate %d is not enrolled; nothing ingested" % gate)
            g = {"device_pub": row[0], "chain_seq": row[1], "chain_head": row[2]}
            place = [{"station": row[3], "direction": row[4]}] if row[5] else []
            existing = dict(zip(row[6], map(bytes, row[7]))) if row[6] else {}
        else:
            g = db.one("SELECT device_pub, chain_seq, chain_head FROM ledger_gates WHERE gate = ?", (gate,))
            if g is None:
                raise GateNotEnrolled("gate %d is not enrolled; nothing ingested" % gate)
            place = db.rows(_PLACE_Q, (gate,))
            existing = {q: bytes(c) for q, c in db.execute(
                "SELECT seq, chain FROM ledger_records WHERE gate = ? AND seq >= ? AND seq <= ?",
                (gate,) + lo_hi).fetchall()} if seqs else {}
        if device_pub is not None and bytes(g["device_pub"]) != bytes(device_pub):
            raise GateNotEnrolled("batch for gate %d is signed by a key that is not the enrolled one; nothing "
                                  "ingested" % gate)
        head_seq, head = int(g["chain_seq"]), bytes(g["chain_head"])
        res = {"new": 0, "duplicates": 0, "anomalies": 0, "fraud": 0, "deny": []}
        prev_seq = None
        meta = meta or {}
        place = place[0] if place else {"station": None, "direction": None}  # in effect for this batch
        stored = set(existing)  # seqs in ledger_records before each flush (for its fast path)
        new_rows, new_pos = [], []  # RECORD_COLS tuples; their positions in the batch
        station, direction = place["station"], place["direction"]
        n_new = 0
        pack, sha256 = _BODY.pack, hashlib.sha256

        def flush(last=False):
            # one bulk store and one look for double use per batch. On PostgreSQL the usual batch
            # (the last flush, a fresh ascending run) is COPYed straight into ledger_records and
            # its double-use flags are made by one INSERT ... SELECT pipelined with the commit
            # (returned here to run then); anything else is staged (_DB.ingest_staged).
            if not new_rows:
                return None
            lo, hi = new_rows[0][1], new_rows[-1][1]
            run = None
            if last and db.kind == "pg" and not any(lo <= q <= hi for q in stored) and \
                    all(new_rows[i][1] < new_rows[i + 1][1] for i in range(len(new_rows) - 1)):
                db.load("ledger_records", RECORD_COLS, new_rows, RECORD_TYPES)
                run = (gate, lo, hi)
            else:
                res["fraud"] += self._double_uses(gate, db.ingest_staged([row + (p,) for row, p in zip(new_rows, new_pos)]),
                                                  now, res["deny"])
            stored.update(row[1] for row in new_rows)
            del new_rows[:], new_pos[:]
            return run
        try:
            for seq in meta.get("breaks") or ():
                res["anomalies"] += self.note_anomaly(gate, seq, "chain_mismatch",
                                                  "the gate's log restarts its chain at seq %d (a lost segment, "
                                                  "or records before it changed on flash)" % seq, now)
            if records and meta.get("chain_ok") is False:
                res["anomalies"] += self.note_anomaly(gate, records[-1]["seq"], "chain_mismatch",
                                                  "the batch's records do not lead to the chain the gate "
                                                  "reports (%s)" % bytes(meta.get("chain") or b"").hex()[:16], now)
            for pos, r in enumerate(records):
                seq = r["seq"]
                if "damaged" in r:
                    # kept with its bytes; the seq counts as stored (nothing is lost quietly)
                    res["anomalies"] += self.note_anomaly(gate, seq, "damaged_record",
                                                      "the gate found record %d damaged on flash: %s"
                                                      % (seq, bytes(r["damaged"]).hex()), now)
                    self._keep(gate, "damaged", _decode_raw(seq, bytes(r["damaged"]), r.get("chain")), now)
                    res["damaged"] = res.get("damaged", 0) + 1
                    if seq > head_seq:
                        head_seq, head = seq, bytes(r["chain"])
                    prev_seq = seq
                    continue
                if prev_seq is not None and seq <= prev_seq:
                    res["anomalies"] += self.note_anomaly(gate, seq, "reorder",
                                                      "seq %d after %d in one batch" % (seq, prev_seq), now)
                prev_seq = seq
                chain = bytes(r["chain"])
                old = existing.get(seq)
                if old is not None:
                    if old == chain:
                        res["duplicates"] += 1
                    else:
                        res["anomalies"] += self.note_anomaly(gate, seq, "conflict",
                                                          "a different record for seq %d was already stored; "
                                                          "kept in ledger_anomaly_records" % seq, now)
                        self._keep(gate, "conflict", r, now)
                        res["conflicts"] = res.get("conflicts", 0) + 1
                        if r["decision"] == "OPEN" and r.get("cti"):
                            flush()  # this batch's earlier records first: they count as stored
                            res["fraud"] += self._double_use(gate, r, now, res["deny"])
                    continue
                # the record's fields read once, for both the chain check and the stored row
                # (record_body/chain_next inlined: this loop is most of ingest's client time)
                cti = r.get("cti")
                if cti is not None:
                    cti = bytes(cti)
                t, ctr, decision, reason, missed = r["t"], r["ctr"] or 0, r["decision"], r["reason"], r.get("missed", 0)
                if seq != head_seq + 1:
                    if seq > head_seq + 1:
                        res["anomalies"] += self.note_anomaly(gate, seq, "gap", "records %d..%d missing"
                                                          % (head_seq + 1, seq - 1), now)
                    chain_ok = 0  # cannot be linked to the stored head
                else:
                    h = sha256(head)
                    h.update(pack(REC_MAGIC, decision == "OPEN", reason & 0xFF, 1 if cti else 0, seq, t, ctr,
                                  cti or _NO_CTI, missed))
                    chain_ok = 1 if h.digest() == chain else 0
                    if not chain_ok:
                        res["anomalies"] += self.note_anomaly(gate, seq, "chain_mismatch",
                                                          "chain of seq %d does not follow seq %d" % (seq, head_seq), now)
                if missed:
                    res["anomalies"] += self.note_anomaly(gate, seq, "not_logged",
                                                      "%d decisions before seq %d were not logged" % (missed, seq), now)
                new_rows.append((gate, seq, t, cti, ctr, decision, reason, missed, chain, chain_ok, now, station,
                                 direction))
                new_pos.append(pos)
                existing[seq] = chain  # the same seq again later in this batch
                n_new += 1
                if seq > head_seq:
                    head_seq, head = seq, chain
            res["new"] = n_new
            run = flush(last=True)
            if records and meta.get("chain") and head_seq == records[-1]["seq"]:
                head = bytes(meta["chain"])  # the gate's own chain: the next batch links to it
            with db.pipeline():  # one round trip on PostgreSQL: head and flags (one statement), commit
                if run:
                    flags = db.execute(_HEAD_AND_DOUBLE_USE,
                                       (head_seq, head, gate, now, run[2], run[0], run[1], run[2]))
                else:
                    flags = None
                    db.execute(_SET_HEAD, (head_seq, head, gate))
                db.commit()
            if flags is not None:
                for (cti,) in flags.fetchall():
                    res["fraud"] += 1
                    res["deny"].append(bytes(cti))
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

    def note_anomaly(self, gate, seq, kind, detail, now):
        """Record anomaly `kind` (text) at (gate, seq) with its one-line `detail`, at `now` (Unix s);
        1 if new, 0 if already recorded. In the caller's transaction (ingest, settlement)."""
        cur = self.db.execute("INSERT INTO ledger_anomalies (gate, seq, kind, detail, t) VALUES (?, ?, ?, ?, ?) "
                              "ON CONFLICT DO NOTHING", (gate, seq, kind, detail, now))
        return 1 if cur.rowcount else 0

    def note_anomalies(self, rows):
        """note_anomaly for many rows (gate, seq, kind, detail, t) in one statement on PostgreSQL
        (Database.insert_new); returns how many were new. In the caller's transaction."""
        return self.db.insert_new("ledger_anomalies", ("gate", "seq", "kind", "detail", "t"), rows,
                                  ("int8", "int8", "text", "text", "int8"))

    def flag_fraud(self, kind, cti, ctr, gate, seq, other_gate, other_seq, detail, now):
        """Flag fraud `kind` ("double_use", "cap_exceeded", "overdraft") of credential `cti` (8 bytes)
        at (gate, seq), with the other record if any; 1 if new, 0 if already flagged. In the
        caller's transaction."""
        cur = self.db.execute("INSERT INTO ledger_fraud (kind, cti, ctr, gate, seq, other_gate, other_seq, detail, t) "
                              "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                              (kind, bytes(cti), ctr, gate, seq, other_gate, other_seq, detail, now))
        return 1 if cur.rowcount else 0

    def _double_uses(self, gate, matches, now, deny):
        """Flag the double uses _DB.ingest_staged found for one batch of gate `gate`: per staged
        OPEN, every earlier OPEN of its (cti, ctr) (ordered by gate, seq), and deny its credential."""
        n = 0
        last = None
        for pos, cti, ctr, seq, og, os_ in matches:
            cti = bytes(cti)
            n += self.flag_fraud("double_use", cti, ctr, gate, seq, og, os_,
                            "counter %d of %s opened at gate %d (seq %d) and gate %d (seq %d)"
                            % (ctr, cti.hex(), og, os_, gate, seq), now)
            if pos != last:
                deny.append(cti)
                last = pos
        return n

    def _double_use(self, gate, r, now, deny):
        others = self.db.rows("SELECT gate, seq FROM ledger_records WHERE cti = ? AND ctr = ? AND decision = 'OPEN' "
                              "AND NOT (gate = ? AND seq = ?) ORDER BY gate, seq",
                              (bytes(r["cti"]), r["ctr"], gate, r["seq"]))
        n = 0
        for o in others:
            n += self.flag_fraud("double_use", r["cti"], r["ctr"], gate, r["seq"], o["gate"], o["seq"],
                            "counter %d of %s opened at gate %d (seq %d) and gate %d (seq %d)"
                            % (r["ctr"], bytes(r["cti"]).hex(), o["gate"], o["seq"], gate, r["seq"]), now)
        if others:
            deny.append(bytes(r["cti"]))
        return n

    # ------------------------------------------------------------------ settlement
    def settle(self, bo, now=None, force_time=False):
        """Charge every unsettled OPEN passage to its account (against the credential's hold), flag
        use beyond the cap, release the holds of expired credentials. Idempotent. One transaction
        on the one database: the charges, holds and balances (back office) and the records'
        settled marks (ledger) commit together or not at all.
        With a fare table loaded (`offgate fares load`) taps are paired into journeys and priced
        by it instead (offgate_host.fares.settle, docs/fares.md).
        Raises ClockRefused for a time implausibly far ahead (BackOffice.settlement_time) unless
        `force_time`: nothing is settled."""
        with self.db:
            if self.db.kind == "pg":  # one settlement at a time (charges are checked, then written)
                self.db.execute("SELECT pg_advisory_xact_lock(7130002)")
            return self._settle(bo, now, force_time)

    def _settle(self, bo, now=None, force_time=False):
        from ..fares import settle as fare_settle
        eng = fare_settle.active_engine(self.db)
        clock = _now(now)  # what has expired is judged by the clock itself, not by the floor (QA9)
        now = bo.settlement_time(clock, force=force_time)  # never at or behind the previous settlement's time
        if eng is not None:
            return self._settle_end(bo, now, fare_settle.settle(self, bo, now, eng), clock)
        out = {"trips": 0, "charged": 0, "over_cap": 0, "fraud": 0, "unknown": 0, "released": 0,
               "released_amount": 0, "deny": []}
        # one read of the unsettled passages, the credentials they name and the fare table; then
        # per chunk the bulk charges (charge_trips), the flags and one set-based mark
        rows = self.db.execute("SELECT r.gate, r.seq, r.t, r.cti, r.ctr FROM ledger_records r WHERE r.decision = 'OPEN' "
                               "AND " + self.db.UNSETTLED + " ORDER BY r.t, r.gate, r.seq").fetchall()
        creds = bo.credentials_many({bytes(c) for _g, _s, _t, c, _r in rows if c is not None})
        fares = {int(r["product"]): int(r["amount"]) for r in self.db.rows("SELECT product, amount FROM ledger_fares")}
        deny_seen = set()
        for i in range(0, len(rows), CHUNK):
            trips, done, unknown = [], [], []
            for gate, seq, t, cti, ctr in rows[i:i + CHUNK]:
                if cti is None:
                    done.append((1, gate, seq))
                    continue
                cti = bytes(cti)
                cred = creds.get(cti)
                if cred is None:
                    unknown.append((gate, seq, cti))
                    done.append((2, gate, seq))
                    continue
                trips.append((gate, seq, cti, t, fares.get(cred["product"], DEFAULT_FARE), ctr))
            # money, then the ledger's marks: one transaction (settle's) on the one database
            # (charge_trip_rows: tuples, not a dict per trip; CHARGE_FIELDS)
            results = bo.charge_trip_rows(trips, now=now, creds=creds) if trips else []
            for gate, seq, cti in unknown:
                out["unknown"] += self.note_anomaly(gate, seq, "unknown_credential",
                                                "OPEN for credential %s the back office never issued" % cti.hex(), now)
            flags = []  # written with one executemany per chunk, not one statement each
            for (gate, seq, cti, _t, _a, ctr), c in zip(trips, results):
                done.append((1, gate, seq))
                if c is None:
                    continue
                account, amount, _fh, over_cap, cap, total, overdrawn = c
                out["trips"] += 1
                out["charged"] += amount
                if cap is not None and total > cap:
                    out["over_cap"] += over_cap
                    flags.append(("cap_exceeded", cti, ctr, gate, seq, None, None,
                                  "credential %s charged %d in total, cap %d" % (cti.hex(), total, cap), now))
                    if cti not in deny_seen:
                        deny_seen.add(cti)
                        out["deny"].append(cti)
                if overdrawn:
                    flags.append(self.overdraft_flag_row({"account": account, "amount": amount}, cti, ctr, gate, seq,
                                                      now, out))
                    if cti not in deny_seen:
                        deny_seen.add(cti)
                        out["deny"].append(cti)
            out["fraud"] += self.flag_fraud_many(flags)
            self.db.mark_settled(done)
            self.db.commit()
        return self._settle_end(bo, now, out, clock)

    def flag_overdraft(self, c, cti, ctr, gate, seq, now, out):
        """A charge took the account below its credit limit: flag it (fraud kind "overdraft") and
        deny the credential; the back office refuses new credentials until the account is topped
        up (issue_credential). Returns 1 if newly flagged."""
        if cti not in out["deny"]:
            out["deny"].append(cti)
        out["overdrafts"] = out.get("overdrafts", 0) + 1
        return self.flag_fraud("overdraft", cti, ctr, gate, seq, None, None,
                          "account %s below its credit limit after charging %d for credential %s"
                          % (c["account"], c["amount"], cti.hex()), now)

    def overdraft_flag_row(self, c, cti, ctr, gate, seq, now, out):
        """flag_overdraft's flag row, for flag_fraud_many (the caller denies the credential)."""
        out["overdrafts"] = out.get("overdrafts", 0) + 1
        return ("overdraft", cti, ctr, gate, seq, None, None,
                "account %s below its credit limit after charging %d for credential %s"
                % (c["account"], c["amount"], cti.hex()), now)

    def flag_fraud_many(self, rows):
        """flag_fraud for many rows (kind, cti, ctr, gate, seq, other_gate, other_seq, detail, t) in one
        statement on PostgreSQL (Database.insert_new); returns how many were new."""
        return self.db.insert_new("ledger_fraud", ("kind", "cti", "ctr", "gate", "seq", "other_gate", "other_seq",
                                                   "detail", "t"), rows,
                                  ("text", "bytea", "int8", "int8", "int8", "int8", "int8", "text", "int8"))

    def _settle_end(self, bo, now, out, clock):
        """Both settlements end alike: deny the credentials flagged, release expired holds."""
        bo.deny_many(out["deny"], "double use found at settlement")
        # posted at the settlement time, but only holds expired by the clock: a time pushed ahead by
        # the floor (a line posted with a clock ahead, an earlier settlement) must not release live
        # credentials' holds (QA9)
        for h in bo.release_expired_holds(now, expired_by=clock):
            out["released"] += 1
            out["released_amount"] += h["released_amount"]
        out["time"] = now  # the settlement time used (BackOffice.settlement_time)
        return out

    # ------------------------------------------------------------------ queries
    def records(self, gate=None):
        q = "SELECT r.*, " + self.db.SETTLED_STATE + " FROM ledger_records r" + \
            (" WHERE r.gate = ?" if gate is not None else "") + " ORDER BY r.gate, r.seq"
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
