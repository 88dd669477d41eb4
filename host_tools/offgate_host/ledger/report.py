"""`offgate report`: the ledger's view of the gates, as rich tables (or JSON)."""
import datetime

from rich.table import Table

REASONS = None


def _reason_name(code):
    global REASONS
    if REASONS is None:
        try:
            from ..device.paths import firmware_module
            REASONS = firmware_module("offgate.reasons")
        except Exception:
            REASONS = False
    if REASONS:
        try:
            return "%s (%d)" % (REASONS.name(code), code)
        except Exception:
            pass
    return str(code)


def _iso(t):
    if t is None:
        return "-"
    return datetime.datetime.fromtimestamp(int(t), datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def tables(rep):
    out = []
    t = Table(title="gate health")
    for c in ("gate", "records", "chain head", "last sync", "clock drift (s)", "time set", "clock at sync",
              "backlog at sync", "log damage (records damaged/cut at boot)", "deny list (serial, age s)"):
        t.add_column(c)
    for g in rep["gates"]:
        c = g.get("clock")
        clock = "-" if not c else ("trusted (%s since %s)" % (c["source"], _iso(c["since"])) if c["trusted"]
                                   else "NOT trusted (%s, %s)" % (c["source"], c["mode"]))
        t.add_row(str(g["gate"]), str(g["records"]), str(g["chain_seq"]), _iso(g["last_sync"]),
                  "-" if g["drift"] is None else str(g["drift"]), _iso(g["time_set"]), clock,
                  "-" if g["backlog"] is None else str(g["backlog"]),
                  "%s/%s" % (g.get("log_damaged", "-"), g.get("log_cut", "-")),
                  "%s, %s" % (g.get("deny_serial", "-"), g.get("deny_age", "-")))
    out.append(t)
    t = Table(title="passages per gate and hour (UTC)")
    for c in ("gate", "hour", "passages"):
        t.add_column(c)
    for p in rep["passages"]:
        t.add_row(str(p["gate"]), _iso(p["hour"])[:-4], str(p["passages"]))
    out.append(t)
    t = Table(title="denials by reason")
    for c in ("gate", "reason", "count"):
        t.add_column(c)
    for d in rep["denials"]:
        t.add_row(str(d["gate"]), _reason_name(d["reason"]), str(d["n"]))
    out.append(t)
    t = Table(title="fraud flags")
    for c in ("kind", "credential", "ctr", "gate/seq", "other gate/seq", "detail"):
        t.add_column(c)
    for f in rep["fraud"]:
        t.add_row(f["kind"], bytes(f["cti"]).hex(), str(f["ctr"]), "%s/%s" % (f["gate"], f["seq"]),
                  "-" if f["other_gate"] is None else "%s/%s" % (f["other_gate"], f["other_seq"]), f["detail"])
    out.append(t)
    if rep["anomalies"]:
        t = Table(title="anomalies (chain breaks, gaps, conflicts)")
        for c in ("gate", "seq", "kind", "detail"):
            t.add_column(c)
        for a in rep["anomalies"]:
            t.add_row(str(a["gate"]), str(a["seq"]), a["kind"], a["detail"])
        out.append(t)
    if rep.get("anomaly_records"):
        t = Table(title="records kept outside the ledger (conflicting or damaged): settle by hand")
        for c in ("gate", "seq", "kind", "t", "credential", "ctr", "decision", "reason"):
            t.add_column(c)
        for r in rep["anomaly_records"]:
            t.add_row(str(r["gate"]), str(r["seq"]), r["kind"], _iso(r["t"]) if r["t"] else "-", r["cti"] or "-",
                      str(r["ctr"]), str(r["decision"]), str(r["reason"]))
        out.append(t)
    return out


def jsonable(rep):
    def conv(v):
        if isinstance(v, (bytes, bytearray, memoryview)):
            return bytes(v).hex()
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, list):
            return [conv(x) for x in v]
        return v
    return conv(rep)


# ---------------------------------------------------------------------------- the operator's report (issue #13)
BUCKET = 900  # records are counted in quarter hours, then put in the operator's local hours (any UTC offset)


def _zone(tz):
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        from ..errors import UsageError
        raise UsageError("unknown time zone %r (an IANA name such as Europe/Warsaw, or UTC)" % tz) from None


def parse_day(text, tz, end=False):
    """Unix seconds of the start of day `text` (YYYY-MM-DD, or YYYY-MM-DDTHH:MM) in time zone `tz`;
    end=True for a bare day: the start of the next day (ranges are [from, to))."""
    from ..errors import UsageError
    zone = _zone(tz)
    try:
        if "T" in text or " " in text:
            d = datetime.datetime.fromisoformat(text.replace(" ", "T"))
        else:
            d = datetime.datetime.fromisoformat(text + "T00:00")
            if end:
                d += datetime.timedelta(days=1)
    except ValueError:
        raise UsageError("dates are YYYY-MM-DD or YYYY-MM-DDTHH:MM, got %r" % text) from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=zone)
    return int(d.timestamp())


def build(led, bo, since=None, until=None, gates=None, stations=None, tz="UTC"):
    """The report for [since, until) (Unix s, None: open), the gates in `gates` and the stations
    in `stations` (None: all), with hours in time zone `tz` (IANA name):
    {"filters", "hourly": [{"hour" (local ISO), "passages", "denials"}], "by_gate": [{"gate",
    "station", "passages", "denials"}], "denials": [{"reason", "count"}], "revenue_by_product" and
    "revenue_by_station": [{"product" | "station", "trips", "revenue" (minor units)}], "fraud",
    "anomalies" (counts by kind)}. A record counts at the station stamped on it at ingest
    (stations.record_station), a charge at its first tap's.
    Revenue is what settlement charged (the back office's charges, by the charge's first tap)."""
    from . import stations as st_mod
    zone = _zone(tz)
    where, args = ["1 = 1"], []
    if since is not None:
        where.append("t >= ?")
        args.append(since)
    if until is not None:
        where.append("t < ?")
        args.append(until)
    if gates:
        where.append("gate IN (%s)" % ", ".join("?" * len(gates)))
        args += list(gates)
    rows = led.db.rows("SELECT gate, station, decision, reason, (t / %d) * %d AS q, COUNT(*) AS n FROM ledger_records "
                       "WHERE %s GROUP BY gate, station, decision, reason, (t / %d) * %d"
                       % (BUCKET, BUCKET, " AND ".join(where), BUCKET, BUCKET), args)
    want = set(stations) if stations else None
    hourly, by_gate, denials = {}, {}, {}
    for r in rows:
        station = st_mod.record_station(r["gate"], r["station"])  # where it was made (stamped at ingest)
        if want is not None and station not in want:
            continue
        local = datetime.datetime.fromtimestamp(int(r["q"]), zone).replace(minute=0, second=0, microsecond=0)
        h = hourly.setdefault(local.isoformat(timespec="minutes"), {"passages": 0, "denials": 0})
        g = by_gate.setdefault((int(r["gate"]), station), {"passages": 0, "denials": 0})
        key = "passages" if r["decision"] == "OPEN" else "denials"
        h[key] += int(r["n"])
        g[key] += int(r["n"])
        if r["decision"] != "OPEN":
            name = _reason_name(r["reason"])
            denials[name] = denials.get(name, 0) + int(r["n"])
    # revenue: the back office's charges (what settlement took), by product and entry station
    cw, cargs = ["1 = 1"], []
    if since is not None:
        cw.append("c.t >= ?")
        cargs.append(since)
    if until is not None:
        cw.append("c.t < ?")
        cargs.append(until)
    if gates:
        cw.append("c.gate IN (%s)" % ", ".join("?" * len(gates)))
        cargs += list(gates)
    by_prod, by_station = {}, {}
    # a charge's revenue is its net amount: as charged plus its corrections (docs/fares.md)
    charges = bo.db.execute("SELECT c.gate, c.seq, cr.product, c.amount + COALESCE((SELECT SUM(k.amount) FROM "
                            "charge_corrections k WHERE k.gate = c.gate AND k.seq = c.seq), 0) AS amount FROM charges c "
                            "JOIN credentials cr ON cr.cti = c.cti WHERE %s" % " AND ".join(cw), cargs).fetchall()
    stamped = {}
    if charges:  # each charge at the station stamped on its (first) tap's record
        lo, hi = min(r["gate"] for r in charges), max(r["gate"] for r in charges)
        stamped = {(int(x["gate"]), int(x["seq"])): x["station"] for x in led.db.rows(
            "SELECT gate, seq, station FROM ledger_records WHERE gate >= ? AND gate <= ? AND decision = 'OPEN'",
            (lo, hi))}
    for r in charges:
        station = st_mod.record_station(r["gate"], stamped.get((r["gate"], r["seq"])))
        if want is not None and station not in want:
            continue
        for d, k in ((by_prod, r["product"]), (by_station, station)):
            e = d.setdefault(k, {"trips": 0, "revenue": 0})
            e["trips"] += 1
            e["revenue"] += r["amount"]
    fraud = [f for f in led.fraud() if (since is None or f["t"] >= since) and (until is None or f["t"] < until)
             and (not gates or f["gate"] in gates)]
    anomalies = {}
    for a in led.anomalies():
        if (not gates or a["gate"] in gates) and (since is None or a["t"] >= since) and (until is None or a["t"] < until):
            anomalies[a["kind"]] = anomalies.get(a["kind"], 0) + 1
    return {
        "filters": {"from": since, "to": until, "gates": list(gates or []), "stations": sorted(want or []),
                    "time_zone": tz},
        "hourly": [dict(hour=h, **v) for h, v in sorted(hourly.items())],
        "by_gate": [dict(gate=g, station=s, **v) for (g, s), v in sorted(by_gate.items())],
        "denials": [{"reason": k, "count": v} for k, v in sorted(denials.items(), key=lambda kv: -kv[1])],
        "revenue_by_product": [dict(product=k, **v) for k, v in sorted(by_prod.items())],
        "revenue_by_station": [dict(station=k, **v) for k, v in sorted(by_station.items())],
        "fraud": [{"kind": f["kind"], "cti": bytes(f["cti"]).hex(), "gate": f["gate"], "seq": f["seq"],
                   "t": f["t"], "detail": f["detail"]} for f in fraud],
        "anomalies": [{"kind": k, "count": v} for k, v in sorted(anomalies.items())],
    }


def text_lines(rep, width=80):
    """The report as plain lines of at most `width` characters (an 80-column terminal)."""
    f = rep["filters"]
    out = ["report %s .. %s, %s%s%s" % (
        _iso(f["from"])[:16] if f["from"] else "start", _iso(f["to"])[:16] if f["to"] else "now", f["time_zone"],
        "; gates " + ",".join(map(str, f["gates"])) if f["gates"] else "",
        "; stations " + ",".join(f["stations"]) if f["stations"] else "")]

    def section(title, header, rows):
        out.append("")
        out.append(title)
        out.append(header)
        out.extend(rows or ["  (none)"])
    section("passages and denials per hour (%s)" % f["time_zone"], "  %-17s %9s %8s" % ("hour", "passages", "denials"),
            ["  %-17s %9d %8d" % (h["hour"][:16].replace("T", " "), h["passages"], h["denials"]) for h in rep["hourly"]])
    section("by gate", "  %-6s %-30s %9s %8s" % ("gate", "station", "passages", "denials"),
            ["  %-6d %-30.30s %9d %8d" % (g["gate"], g["station"], g["passages"], g["denials"]) for g in rep["by_gate"]])
    section("denials by reason", "  %-40s %8s" % ("reason", "count"),
            ["  %-40.40s %8d" % (d["reason"], d["count"]) for d in rep["denials"]])
    section("revenue per product (minor units)", "  %-10s %8s %12s" % ("product", "trips", "revenue"),
            ["  %-10s %8d %12d" % (r["product"], r["trips"], r["revenue"]) for r in rep["revenue_by_product"]])
    section("revenue per station (minor units)", "  %-30s %8s %12s" % ("station", "trips", "revenue"),
            ["  %-30.30s %8d %12d" % (r["station"], r["trips"], r["revenue"]) for r in rep["revenue_by_station"]])
    section("fraud flags", "  %-13s %-16s %-12s %s" % ("kind", "credential", "gate/seq", "when (UTC)"),
            ["  %-13.13s %-16s %-12s %s" % (x["kind"], x["cti"], "%s/%s" % (x["gate"], x["seq"]), _iso(x["t"])[:16])
             for x in rep["fraud"]])
    if rep["anomalies"]:
        section("ledger anomalies", "  %-30s %8s" % ("kind", "count"),
                ["  %-30.30s %8d" % (a["kind"], a["count"]) for a in rep["anomalies"]])
    return [ln[:width] for ln in out]


def csv_text(rep):
    """The report as CSV: one table after another, each `section,<columns...>` rows."""
    import csv
    import io
    buf = io.StringIO()
    w = csv.writer(buf)
    for name in ("hourly", "by_gate", "denials", "revenue_by_product", "revenue_by_station", "fraud", "anomalies"):
        rows = rep[name]
        if not rows:
            continue
        cols = list(rows[0])
        w.writerow(["section"] + cols)
        for r in rows:
            w.writerow([name] + [r[c] for c in cols])
    return buf.getvalue()
