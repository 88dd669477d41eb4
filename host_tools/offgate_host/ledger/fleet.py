"""The fleet: every gate the back office knows, its health as of its last sync, and the alerts an
operator acts on. One computation, shared by `offgate gates` and the dashboard (web/data.py).

Sources: the back office's provisioned gates (board, device key), the ledger's enrolled gates (last
sync, drift, backlog, the status the gate reported: firmware, list serials, clock, log, boot notes)
and its anomalies. Reads only.
"""
import hashlib
import json
import time

from . import stations

HOUR = 3600
# Alert thresholds (override any of them: `offgate gates --sync-late 2h --drift 10 --log-fill 70`)
DEFAULTS = {
    "sync_late_s": 6 * HOUR,  # a gate not synced for this long
    "drift_s": 30,            # the gates' skew_s default: beyond it, fresh codes look stale or future
    "log_fill": 0.5,          # operation log this full (ledger.pull.LOG_WARN_PCT, the gate's oplog.WARN_PCT):
                              # ~1.6 days before a busy gate's default log is full (docs/oplog.md)
}


def fingerprint(pub) -> str:
    """A device key's short fingerprint: the first 8 bytes of SHA-256 of its 65-byte SEC1 form, hex."""
    return hashlib.sha256(bytes(pub)).hexdigest()[:16] if pub else "-"


def gates(bo, led, now=None, thresholds=None):
    """[{"gate", "station", "board", "key" (fingerprint), "firmware", "last_sync", "sync_age_s",
    "drift_s", "clock" (trusted/source at the last sync, or None), "backlog", "log_fill" (0..1),
    "records", "opened", "denied", "deny_count", "deny_serial", "trust_serial", "notes" (boot notes),
    "alerts": [text]}], by gate id. Times in Unix seconds; ages and drift in seconds."""
    from .ledger import _clock_at_sync
    th = dict(DEFAULTS, **(thresholds or {}))
    now = int(time.time() if now is None else now)
    prov = {g["gate_id"]: g for g in bo.gates()}
    smap = stations.station_map(led)
    anomalies = {}
    for a in led.anomalies():
        anomalies[a["gate"]] = anomalies.get(a["gate"], 0) + 1
    counts = {int(r["gate"]): int(r["n"]) for r in led.db.rows(
        "SELECT gate, COUNT(*) AS n FROM ledger_records GROUP BY gate")}
    out, seen = [], set()
    for g in led.gates():
        gid = int(g["gate"])
        seen.add(gid)
        try:
            st = json.loads(g["status"]) if g["status"] else {}
        except ValueError:
            st = {}
        log = st.get("log") or {}
        fill = (log["bytes_used"] / log["capacity"]) if log.get("capacity") and "bytes_used" in log else None
        age = now - g["last_sync"] if g["last_sync"] else None
        clock = _clock_at_sync(g)
        notes = st.get("notes") or []
        alerts = []
        if age is None or age > th["sync_late_s"]:
            alerts.append("not synced for %s" % ("ever" if age is None else _age(age)))
        if g["drift"] is not None and abs(g["drift"]) > th["drift_s"]:
            alerts.append("clock was %+d s off at the last sync" % g["drift"])
        if clock is not None and clock.get("trusted") is False:
            alerts.append("clock not trusted at the last sync (%s)" % (clock.get("source") or "?"))
        if fill is not None and fill >= th["log_fill"]:
            alerts.append("operation log %d%% full" % round(fill * 100))
        if log.get("not_logged"):
            alerts.append("%d decisions not logged" % log["not_logged"])
        if anomalies.get(gid):
            alerts.append("%d ledger anomalies (offgate report lists them)" % anomalies[gid])
        if notes:
            alerts.append("boot notes: %s" % "; ".join(map(str, notes))[:120])
        out.append({"gate": gid, "station": stations.station_of(smap, gid),
                    "board": prov[gid]["board"] if gid in prov else "-",
                    "key": fingerprint(g["device_pub"]), "firmware": st.get("firmware"),
                    "last_sync": g["last_sync"], "sync_age_s": age, "drift_s": g["drift"], "clock": clock,
                    "backlog": g["backlog"], "log_fill": None if fill is None else round(fill, 4),
                    "records": counts.get(gid, 0), "opened": st.get("opened"), "denied": st.get("denied"),
                    "deny_count": st.get("deny_count"), "deny_serial": (st.get("deny") or {}).get("serial"),
                    "trust_serial": st.get("trust_serial"), "notes": notes, "alerts": alerts})
    for gid, p in sorted(prov.items()):
        if gid not in seen:
            out.append({"gate": gid, "station": stations.station_of(smap, gid), "board": p["board"],
                        "key": fingerprint(p["pub"]), "firmware": None, "last_sync": None, "sync_age_s": None,
                        "drift_s": None, "clock": None, "backlog": None, "log_fill": None, "records": 0,
                        "opened": None, "denied": None, "deny_count": None, "deny_serial": None,
                        "trust_serial": None, "notes": [], "alerts": ["registered, never synced"]})
    return sorted(out, key=lambda g: g["gate"])


# ---------------------------------------------------------------------------- where each gate is reached
def set_target(bo, gate_id, target, now=None):
    """Record how `offgate sync --all` reaches gate `gate_id` (None: forget it). The target is
    checked (sync.transports.parse_target raises ValueError for a bad one), and the gate must be
    known: provisioned (the back office's registry) or enrolled in the ledger (LedgerError: a
    target for a gate that is not would never show in `offgate gates`, yet be synced)."""
    from ..sync.transports import parse_target
    from .ledger import LedgerError
    with bo.db:
        if target is None:
            bo.db.execute("DELETE FROM gate_targets WHERE gate_id = ?", (gate_id,))
        else:
            parse_target(target)
            if bo.db.execute("SELECT 1 FROM ledger_gates WHERE gate = ?", (gate_id,)).fetchone() is None and \
                    not any(g["gate_id"] == gate_id for g in bo.gates()):
                raise LedgerError("gate %d is neither provisioned nor enrolled: `offgate provision` or "
                                  "`offgate gates enroll` it first" % gate_id)
            other = bo.db.execute("SELECT gate_id FROM gate_targets WHERE target = ? AND gate_id <> ?",
                                  (target, gate_id)).fetchone()
            if other is not None:
                # `sync --all` keys its rounds by target: two gates on one target would sync one of
                # them under the other's name and never the other (QA9)
                raise LedgerError("%s is already gate %d's target: one target reaches one gate"
                                  % (target, other[0]))
            bo.db.upsert("gate_targets", ("gate_id",), {"gate_id": gate_id, "target": target,
                                                        "set_at": int(time.time() if now is None else now)})


def targets(bo) -> dict:
    """{gate_id: target} of every gate with a sync target."""
    return {r["gate_id"]: r["target"] for r in bo.db.execute("SELECT * FROM gate_targets ORDER BY gate_id")}


def backoff(every, failures, ceiling=3600):
    """Seconds until the next try of a gate that failed `failures` times in a row: the interval,
    doubled per failure, at most max(every, ceiling) (a gate that is down is not hammered, and is
    retried at least hourly)."""
    return min(every * (2 ** failures), max(every, ceiling))


def _age(seconds):
    """'3 h', or '25 min' under an hour (a --sync-late under an hour said "0 h"), '2 d' from 2 days."""
    if seconds < HOUR:
        return "%d min" % (seconds // 60)
    if seconds < 48 * HOUR:
        return "%d h" % (seconds // HOUR)
    return "%d d" % (seconds // (24 * HOUR))
