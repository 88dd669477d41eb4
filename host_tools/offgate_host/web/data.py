"""What the staff dashboard shows, as plain rows (dicts): one function per page/table, shared by the
HTML pages, the JSON API and the CSV export. Reads the back office (accounts, deny list) and the
ledger (records, gates, fraud); writes nothing.
"""
import json
import time

from .. import stations
from ..report import _reason_name
from . import store

HOUR = 3600
SYNC_LATE_S = 6 * HOUR   # a gate not synced for this long is flagged
DRIFT_ALERT_S = 30       # the gates' skew_s default: beyond it, fresh codes look stale or future
LOG_FILL_ALERT = 0.8     # operation log this full: sync before it refuses (log_full_policy refuse)


def passages_by_hour(led, now=None, hours=24):
    """[{"station", "hour" (Unix s, hour start), "passages"}] of OPEN records in the last `hours`."""
    now = int(time.time() if now is None else now)
    since = (now // HOUR - hours + 1) * HOUR
    rows = led.db.rows("SELECT gate, station, (t / 3600) * 3600 AS hour, COUNT(*) AS n FROM ledger_records "
                       "WHERE decision = 'OPEN' AND t >= ? GROUP BY gate, station, (t / 3600) * 3600 ORDER BY hour, gate",
                       (since,))
    out = {}
    for r in rows:
        k = (stations.record_station(r["gate"], r["station"]), int(r["hour"]))
        out[k] = out.get(k, 0) + int(r["n"])
    return [{"station": s, "hour": h, "passages": n} for (s, h), n in sorted(out.items(), key=lambda kv: (kv[0][1], kv[0][0]))]


def gates(bo, led, now=None):
    """The fleet: [{"gate", "board", "last_sync", "sync_age_s", "drift_s", "backlog", "log_fill" (0..1),
    "records", "opened", "denied", "deny_count", "firmware", "alerts": [text]}]."""
    now = int(time.time() if now is None else now)
    boards = {g["gate_id"]: g["board"] for g in bo.gates()}
    smap = stations.station_map(led)
    anomalies = {}
    for a in led.anomalies():
        anomalies[a["gate"]] = anomalies.get(a["gate"], 0) + 1
    out = []
    seen = set()
    for g in led.gates():
        gid = int(g["gate"])
        seen.add(gid)
        st = json.loads(g["status"]) if g["status"] else {}
        log = st.get("log") or {}
        fill = (log["bytes_used"] / log["capacity"]) if log.get("capacity") else None
        n = led.db.one("SELECT COUNT(*) AS n FROM ledger_records WHERE gate = ?", (gid,))["n"]
        age = now - g["last_sync"] if g["last_sync"] else None
        alerts = []
        if age is None or age > SYNC_LATE_S:
            alerts.append("not synced for %s" % ("ever" if age is None else "%d h" % (age // HOUR)))
        if g["drift"] is not None and abs(g["drift"]) > DRIFT_ALERT_S:
            alerts.append("clock was %+d s off at the last sync" % g["drift"])
        if fill is not None and fill >= LOG_FILL_ALERT:
            alerts.append("operation log %d%% full" % round(fill * 100))
        if log.get("not_logged"):
            alerts.append("%d decisions not logged" % log["not_logged"])
        if anomalies.get(gid):
            alerts.append("%d ledger anomalies (offgate report lists them)" % anomalies[gid])
        out.append({"gate": gid, "station": stations.station_of(smap, gid), "board": boards.get(gid, "-"),
                    "last_sync": g["last_sync"], "sync_age_s": age, "drift_s": g["drift"], "backlog": g["backlog"],
                    "log_fill": None if fill is None else round(fill, 4), "records": int(n),
                    "opened": st.get("opened"), "denied": st.get("denied"), "deny_count": st.get("deny_count"),
                    "firmware": st.get("firmware"), "alerts": alerts})
    for gid, board in sorted(boards.items()):
        if gid not in seen:
            out.append({"gate": gid, "station": stations.station_of(smap, gid), "board": board, "last_sync": None, "sync_age_s": None,
                        "drift_s": None, "backlog": None, "log_fill": None, "records": 0, "opened": None,
                        "denied": None, "deny_count": None, "firmware": None, "alerts": ["registered, never synced"]})
    return sorted(out, key=lambda g: g["gate"])


def denials(led, now=None, hours=24):
    """[{"hour", "reason", "reason_name", "n"}] of DENY records in the last `hours`."""
    now = int(time.time() if now is None else now)
    since = (now // HOUR - hours + 1) * HOUR
    rows = led.db.rows("SELECT (t / 3600) * 3600 AS hour, reason, COUNT(*) AS n FROM ledger_records "
                       "WHERE decision = 'DENY' AND t >= ? GROUP BY (t / 3600) * 3600, reason ORDER BY hour, reason",
                       (since,))
    return [{"hour": int(r["hour"]), "reason": int(r["reason"]), "reason_name": _reason_name(int(r["reason"])),
             "n": int(r["n"])} for r in rows]


def fraud(bo, led):
    """Fraud cases: [{"id", "kind", "cti" (hex), "ctr", "gate", "seq", "other_gate", "other_seq", "detail",
    "t", "account", "denied" (bool), "notes": [...]}], newest first."""
    denied = set(bo.deny_list())
    notes = {}
    for n in store.notes(bo):
        notes.setdefault(n["fraud"], []).append(n)
    out = []
    for f in led.db.rows("SELECT * FROM ledger_fraud ORDER BY t DESC, id DESC"):
        cti = bytes(f["cti"])
        try:
            account = bo.credential(cti)["account"]
        except Exception:
            account = None
        out.append({"id": int(f["id"]), "kind": f["kind"], "cti": cti.hex(), "ctr": f["ctr"], "gate": f["gate"],
                    "seq": f["seq"], "other_gate": f["other_gate"], "other_seq": f["other_seq"], "detail": f["detail"],
                    "t": f["t"], "account": account, "denied": cti in denied, "notes": notes.get(int(f["id"]), [])})
    return out


def fraud_case(bo, led, fraud_id):
    for f in fraud(bo, led):
        if f["id"] == int(fraud_id):
            return f
    return None


def accounts(bo):
    """[{"id", "balance", "credit", "held", "available", "wallets", "created"}] (minor units)."""
    ws = {}
    for w in store.wallets(bo):
        if not w["revoked"]:
            ws[w["account"]] = ws.get(w["account"], 0) + 1
    return [{"id": a["id"], "balance": a["balance"], "credit": a["credit"], "held": bo.outstanding_holds(a["id"]),
             "available": bo.available(a["id"]), "wallets": ws.get(a["id"], 0), "created": a["created"]}
            for a in bo.list_accounts()]


def account(bo, account_id):
    a = bo.get_account(account_id)
    return {"id": a["id"], "balance": a["balance"], "credit": a["credit"], "held": bo.outstanding_holds(account_id),
            "available": bo.available(account_id),
            "holds": [{"cti": h["cti"].hex(), "amount": h["amount"], "used": h["used"], "exp": h["exp"],
                       "state": h["state"]} for h in bo.holds(account_id)],
            "statement": bo.statement(account_id),
            "credentials": [{"cti": c["cti"].hex(), "nbf": c["nbf"], "exp": c["exp"], "zones": c["zones"],
                             "product": c["product"], "cap": c["cap"]} for c in bo.credentials(account_id)],
            "wallets": [{"pub": w["pub"][:16], "enrolled": w["enrolled"], "last_contact": w["last_contact"],
                         "revoked": w["revoked"]} for w in store.wallets(bo, account_id)]}


def denylist(bo, led, now=None):
    """{"entries": [{"cti", "added", "age_s", "account"}], "count", "size" (bytes of deny.bin),
    "newest", "gates": [{"gate", "deny_count" (at its last sync), "last_sync", "age_s", "current"}]}.
    A gate is current when the count it reported matches the list and it synced after the newest entry."""
    now = int(time.time() if now is None else now)
    entries = bo.deny_entries()
    newest = max((e["added"] for e in entries), default=None)
    out_entries = []
    for e in entries:
        try:
            acct = bo.credential(e["cti"])["account"]
        except Exception:
            acct = None
        out_entries.append({"cti": e["cti"].hex(), "added": e["added"], "age_s": now - e["added"], "account": acct})
    gs = []
    for g in led.gates():
        st = json.loads(g["status"]) if g["status"] else {}
        cnt = st.get("deny_count")
        gs.append({"gate": int(g["gate"]), "deny_count": cnt, "last_sync": g["last_sync"],
                   "age_s": now - g["last_sync"] if g["last_sync"] else None,
                   "current": cnt == len(entries) and (newest is None or (g["last_sync"] or 0) >= newest)})
    return {"entries": out_entries, "count": len(entries), "size": len(bo.deny_bytes()), "newest": newest, "gates": gs}
