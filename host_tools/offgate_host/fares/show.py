"""Rich tables for `offgate fares statement` and the revenue part of `offgate report`."""
import datetime

from rich.table import Table


def _t(t):
    if t is None:
        return "-"
    return datetime.datetime.fromtimestamp(int(t), datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def statement_table(account, rows):
    t = Table(title="journeys of account %s (amounts in minor units)" % account)
    for c in ("entry (UTC)", "from", "to", "kind", "category", "fare", "charged", "rules applied"):
        t.add_column(c)
    total = 0
    for r in rows:
        total += r["charged"]
        t.add_row(_t(r["t"]), r["from_station"] or "-", r["to_station"] or "-", r["kind"], r["rider_category"] or "-",
                  str(r["fare"]), str(r["charged"]), r["explain"])
    t.add_row("", "", "", "", "total", "", str(total), "")
    return t


def revenue_tables(rev):
    out = []
    for key, title, col in (("by_product", "revenue per fare product", "fare_product"),
                            ("by_station", "revenue per entry station", "station"),
                            ("by_category", "revenue per rider category", "rider_category")):
        t = Table(title=title + " (minor units)")
        for c in (col, "journeys", "revenue", "discounts (transfers, caps, passes)"):
            t.add_column(c)
        for r in rev[key]:
            t.add_row(str(r[col] if r[col] is not None else "-"), str(r["journeys"]), str(r["revenue"] or 0),
                      str(r["discounts"] or 0))
        out.append(t)
    return out
