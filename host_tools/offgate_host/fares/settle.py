"""Journey settlement: the ledger's taps priced by the active fare table, charged to the accounts.

Used by Ledger.settle when a fare table is loaded (`offgate fares load`); without one the ledger
keeps its flat fare per passage. Takes the Ledger and the BackOffice as arguments (this module
imports neither: data flows ledger → fares → back office).

Order independence: an account with new taps is re-rated from the start of the service week
that held its earliest new tap (less max_journey_s: a late exit can finish a journey begun in the
week before), from every tap the ledger holds in that window, and its charges from then on are
set to the result (BackOffice.set_journey_charges: new charges, differences, refunds). So the
charges after all taps have arrived do not depend on the order they arrived in, a re-run changes
nothing, and a crash between the money and the ledger's marks is repaired by the next settle.
Transfers and caps never reach across the start of a service week (caps restart there anyway).
"""
import time

from . import config, store
from .engine import Engine

CHUNK_ACCOUNTS = 200


def _now(now):
    return int(time.time() if now is None else now)


def active_engine(db, version=None):
    """(version, Engine) of the newest (or given) fare table version, or None."""
    act = store.active(db, version)
    if act is None:
        return None
    v, table, raw = act
    return v, Engine(table, config.validate(raw, table))


def settle(led, bo, now=None, eng=None):
    """Price and charge every account with unsettled taps. Returns the ledger's settle summary
    (trips = journeys charged, charged = sum of charge changes) plus journeys, incomplete,
    unmatched_exits, pending, capped and accounts. The credentials to deny are listed in "deny";
    Ledger.settle denies them and releases expired holds, as for the flat fare."""
    now = _now(now)
    db = led.db
    if eng is None:
        eng = active_engine(db)
    version, eng = eng
    mj = eng.cfg["max_journey_s"]
    out = {"trips": 0, "charged": 0, "over_cap": 0, "fraud": 0, "unknown": 0, "released": 0, "released_amount": 0,
           "deny": [], "journeys": 0, "incomplete": 0, "unmatched_exits": 0, "pending": 0, "capped": 0,
           "accounts": 0, "version": version, "frozen": 0}
    # marks live in ledger_settled (insert-only, migration 0004; db.UNSETTLED: no mark yet)
    db.execute("INSERT INTO ledger_settled (gate, seq, state) SELECT r.gate, r.seq, 1 FROM ledger_records r "
               "WHERE r.decision = 'OPEN' AND r.cti IS NULL AND " + db.UNSETTLED)
    db.commit()
    rows = db.rows("SELECT r.cti, MIN(r.t) AS t FROM ledger_records r WHERE r.decision = 'OPEN' AND " + db.UNSETTLED +
                   " GROUP BY r.cti ORDER BY r.cti")
    creds = bo.credentials_many(bytes(r["cti"]) for r in rows)  # one query, not one per credential
    first = {}
    for r in rows:
        cti = bytes(r["cti"])
        cred = creds.get(cti)
        if cred is None:
            unknown = db.rows("SELECT r.gate, r.seq FROM ledger_records r WHERE r.cti = ? AND r.decision = 'OPEN' AND "
                              + db.UNSETTLED, (cti,))
            for u in unknown:
                out["unknown"] += led.note_anomaly(u["gate"], u["seq"], "unknown_credential",
                                               "OPEN for credential %s the back office never issued" % cti.hex(), now)
            db.mark_settled([(2, u["gate"], u["seq"]) for u in unknown])
            db.commit()
            continue
        a = cred["account"]
        first[a] = min(first.get(a, r["t"]), int(r["t"]))
    accounts = sorted(first)
    for i in range(0, len(accounts), CHUNK_ACCOUNTS):
        chunk = accounts[i:i + CHUNK_ACCOUNTS]
        ws = {a: eng.cal.week_start_t(first[a] - mj) for a in chunk}
        frozen = _frozen_keys(led, bo, version, ws, mj)
        work = _rate_accounts(led, bo, eng, ws, mj, now, frozen)
        _apply(led, bo, version, work, now, out)
    return out  # the ledger denies out["deny"] and releases expired holds


def station_areas(db, station):
    """(version, areas) of `station` (a GTFS stop_id or area_id) in the newest fare table:
    the areas (areas.txt ids) a journey from or to it is priced by, empty if the table does not
    know it (such a journey finds no fare_leg_rules.txt row); None without a fare table."""
    eng = active_engine(db)
    if eng is None:
        return None
    return eng[0], eng[1].areas(station)


def _frozen_keys(led, bo, version, ws, mj):
    """{account: {(gate, seq)}}: for the accounts of `ws` ({account: week start, Unix s}), the taps
    settled by another pricing regime, which settled is final keeps from being priced again: the
    journey keys of flat charges (charges.regime NULL, in the back office's database) and the taps
    of another fare table version's journeys (fare_journeys, the ledger's). Two queries for the
    chunk of accounts, not two per account (round trips on PostgreSQL)."""
    out = {}
    lo = min(ws.values()) - 2 * mj
    for r in bo.db.rows_in("SELECT account, gate, seq, t FROM charges WHERE regime IS NULL AND t >= %d AND account"
                           % int(lo + mj), ws):
        if r[3] >= ws[r[0]] - mj:
            out.setdefault(r[0], set()).add((r[1], r[2]))
    marks = ",".join("?" * len(ws))
    for r in led.db.rows("SELECT account, gate, seq, exit_gate, exit_seq, t FROM fare_journeys WHERE account IN (%s) "
                         "AND version <> ? AND t >= ?" % marks, list(ws) + [version, lo]):
        if r["t"] >= ws[r["account"]] - 2 * mj:
            keys = out.setdefault(r["account"], set())
            keys.add((r["gate"], r["seq"]))
            if r["exit_gate"] is not None:
                keys.add((r["exit_gate"], r["exit_seq"]))
    return out


def _rate_accounts(led, bo, eng, ws, mj, now, frozen):
    """[(account, ws, journeys, pending, taps)] for the accounts of `ws` ({account: week start,
    Unix s}), each re-rated from its week start; taps whose (gate, seq) is in frozen[account]
    (_frozen_keys) are marked frozen, not priced again. Two queries for the chunk (the
    credentials, the taps), not two per account (round trips on PostgreSQL)."""
    creds = {}
    for c in bo.credentials_of(ws):
        creds.setdefault(c["account"], {})[c["cti"]] = c
    owner = {cti: a for a, cs in creds.items() for cti in cs}
    taps = {a: [] for a in ws}
    lo = min(ws.values()) - mj
    for r in led.db.rows_in("SELECT r.gate, r.seq, r.t, r.cti, r.station, r.direction, %s FROM ledger_records r "
                            "WHERE r.decision = 'OPEN' AND r.t >= %d AND r.cti" % (led.db.SETTLED_STATE, int(lo)),
                            list(owner)):
        gate, seq, t, cti, station, direction, settled = r  # unpacked: a PostgreSQL row's r[i] is Python code
        cti = bytes(cti)
        a = owner[cti]
        if t >= ws[a] - mj:
            tp = {"gate": gate, "seq": seq, "t": t, "cti": cti, "station": station, "direction": direction,
                  "settled": settled}
            if (gate, seq) in frozen.get(a, ()):
                tp["frozen"] = True
            taps[a].append(tp)
    out = []
    for a in ws:
        ts = sorted(taps[a], key=lambda tp: (tp["t"], tp["gate"], tp["seq"]))
        journeys, pending = eng.rate(ts, creds.get(a, {}), now)
        out.append((a, ws[a], [j for j in journeys if j["t"] >= ws[a]], pending, ts))
    return out


def _apply(led, bo, version, work, now, out):
    """Money first (one back-office transaction for the chunk of accounts), then the ledger's side
    (one transaction): the priced journeys and the taps' marks. Both are absolute (set, not add),
    so a crash in between is repaired by the next settle."""
    db = led.db
    results = bo.set_journey_charges_many(
        [(account, ws, [(j["key"][0], j["key"][1], j["cti"], j["t"], j["charged"],
                         "re-rated by fare table version %d: %s" % (version, j["explain"])) for j in journeys])
         for account, ws, journeys, _, _ in work], now=now, regime=version)
    rows, marks, gone, flags, notes = [], [], [], [], []
    for (account, ws, journeys, pending, taps), res in zip(work, results):
        out["frozen"] += sum(1 for tp in taps if tp.get("frozen"))
        for c in res[len(journeys):]:  # journeys re-rated away: refunded
            out["charged"] += c["delta"]
            out["trips"] += 1
        for j, c in zip(journeys, res):
            out["journeys"] += 1
            out["charged"] += c["delta"]
            if c["delta"]:
                out["trips"] += 1
            out["incomplete"] += j["kind"] == "incomplete"
            out["unmatched_exits"] += j["kind"] == "unmatched_exit"
            out["capped"] += j["cap"] is not None
            for tp in (j["entry"], j["exit"]):
                if tp is not None and not tp.get("station"):
                    notes.append((tp["gate"], tp["seq"], "no_place", "tap at gate %d, which had no station registered "
                                  "when it synced: not charged" % tp["gate"], now))
            if j["kind"] == "unmatched_exit":
                notes.append((j["exit"]["gate"], j["exit"]["seq"], "exit_without_entry", "exit at %s by credential %s "
                              "with no entry before it" % (j["exit"]["station"], j["cti"].hex()), now))
            if c["cap"] is not None and c["charged_total"] > c["cap"] and c["delta"] > 0:
                out["over_cap"] += c["over_cap"]
                flags.append(("cap_exceeded", j["cti"], 0, j["key"][0], j["key"][1], None, None,
                              "credential %s charged %d in total, cap %d" % (j["cti"].hex(), c["charged_total"],
                                                                            c["cap"]), now))
                if j["cti"] not in out["deny"]:
                    out["deny"].append(j["cti"])
            if c.get("overdrawn"):
                if j["cti"] not in out["deny"]:
                    out["deny"].append(j["cti"])
                flags.append(led.overdraft_flag_row(c, j["cti"], 0, j["key"][0], j["key"][1], now, out))
            rows.append((account, j["cti"], j["key"][0], j["key"][1], j["t"], j["kind"],
                         j["entry"]["station"] if j["entry"] else None, j["exit"]["station"] if j["exit"] else None,
                         j["exit"]["gate"] if j["exit"] else None, j["exit"]["seq"] if j["exit"] else None,
                         j["exit"]["t"] if j["exit"] else None, j["category"], j["product"],
                         _rule_name(j["leg_rule"]), _transfer_name(j["transfer"]), _cap_name(j["cap"]),
                         j["fare"], j["charge"], j["charged"], j["service_date"], version, j["explain"]))
        out["pending"] += len(pending)
        out["accounts"] += 1
        keep = {(p["gate"], p["seq"]) for p in pending}
        for tp in taps:
            k = (tp["gate"], tp["seq"])
            if tp.get("frozen"):
                continue
            if k in keep:
                if tp["settled"]:  # priced before, pending again: must be re-rated by a later settle
                    marks.append((0, tp["gate"], tp["seq"]))
            elif not tp["settled"]:
                marks.append((1, tp["gate"], tp["seq"]))
        gone.append((account, ws, version))
    # the anomalies and fraud flags of the chunk: one executemany each (pipelined on PostgreSQL)
    led.note_anomalies(notes)
    out["fraud"] += led.flag_fraud_many(flags)
    # this version's journeys of each account from its week start are replaced by `rows` (one
    # executemany: pipelined on PostgreSQL, not a round trip per account; then one COPY)
    db.executemany("DELETE FROM fare_journeys WHERE account = ? AND t >= ? AND version = ?", gone)
    if rows:
        db.load("fare_journeys", ("account", "cti", "gate", "seq", "t", "kind", "from_station", "to_station", "exit_gate",
                                  "exit_seq", "exit_t", "rider_category", "fare_product", "leg_rule", "transfer_rule",
                                  "cap", "fare", "charge", "charged", "service_date", "version", "explain"), rows)
    # taps unmarked so far get their first mark (one COPY: none has one, under settlement's lock);
    # taps pending again lose theirs
    db.mark_settled([m for m in marks if m[0]])
    db.set_marks([m for m in marks if not m[0]])
    db.commit()


def _rule_name(r):
    if not r:
        return None
    return "fare_leg_rules.txt:%d%s" % (r["line"], "/" + r["leg_group_id"] if r["leg_group_id"] else "")


def _transfer_name(r):
    if not r:
        return None
    return "fare_transfer_rules.txt:%d/type %d" % (r["line"], r["fare_transfer_type"])


def _cap_name(c):
    if not c:
        return None
    return "%s %d (-%d)" % (c["kind"], c["amount"], c["reduction"])


# ---------------------------------------------------------------------------- reading back
def statement(db, account):
    """The account's priced journeys, oldest first (dicts, fare_journeys columns)."""
    out = db.rows("SELECT * FROM fare_journeys WHERE account = ? ORDER BY t, gate, seq", (account,))
    for r in out:
        r["cti"] = bytes(r["cti"])
    return out


def revenue(db):
    """Revenue (sum of charged, minor units) and journeys per fare product, entry station and
    rider category: {"by_product": [...], "by_station": [...], "by_category": [...]}."""
    q = ("SELECT {col} AS {name}, COUNT(*) AS journeys, SUM(charged) AS revenue, SUM(fare - charged) AS discounts "
         "FROM fare_journeys GROUP BY {col} ORDER BY {col}")
    return {
        "by_product": db.rows(q.format(col="fare_product", name="fare_product")),
        "by_station": db.rows(q.format(col="COALESCE(from_station, to_station)", name="station")),
        "by_category": db.rows(q.format(col="rider_category", name="rider_category")),
    }
