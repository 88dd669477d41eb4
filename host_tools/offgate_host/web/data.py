"""What the staff dashboard shows, as plain rows (dicts): one function per page/table, shared by the
HTML pages, the JSON API and the CSV export. Reads the back office (accounts, deny list) and the
ledger (records, gates, fraud); writes nothing.
"""
import json
import time

from ..ledger import fleet, stations
from ..ledger.report import _reason_name
from . import store

HOUR = 3600


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
    """The fleet with its alerts (offgate_host.ledger.fleet.gates: the one alert computation, shared with
    `offgate gates`)."""
    return fleet.gates(bo, led, now)


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
    """{"entries": [{"cti", "added", "age_s", "account", "reason"}], "count", "size" (bytes of deny.bin),
    "serial", "audit" (the 20 newest bulk changes, newest first), "newest", "gates": [{"gate", "deny_count" (at its last sync), "last_sync", "age_s", "current"}]}.
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
        out_entries.append({"cti": e["cti"].hex(), "added": e["added"], "age_s": now - e["added"], "account": acct,
                            "reason": e.get("reason")})
    gs = []
    for g in led.gates():
        st = json.loads(g["status"]) if g["status"] else {}
        cnt = st.get("deny_count")
        gs.append({"gate": int(g["gate"]), "deny_count": cnt, "last_sync": g["last_sync"],
                   "age_s": now - g["last_sync"] if g["last_sync"] else None,
                   "current": cnt == len(entries) and (newest is None or (g["last_sync"] or 0) >= newest)})
    return {"entries": out_entries, "count": len(entries), "size": len(bo.deny_bytes()), "newest": newest, "gates": gs,
            "serial": bo.deny_serial(), "audit": bo.deny_audit()[-20:][::-1]}
