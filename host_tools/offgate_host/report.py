"""`offgate report`: the ledger's view of the gates, as rich tables (or JSON)."""
import datetime

from rich.table import Table

REASONS = None


def _reason_name(code):
    global REASONS
    if REASONS is None:
        try:
            import sys
            from .simgate import firmware_dir
            p = str(firmware_dir())
            if p not in sys.path:
                sys.path.append(p)
            from offgate import reasons
            REASONS = reasons
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
