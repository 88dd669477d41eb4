"""Charts rendered on the server as inline SVG (no chart library, no JavaScript): stacked bars per
hour. Text is escaped; sizes are in SVG user units."""
from html import escape

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def hourly_bars(rows, value_key, series_key, width=720, height=220):
    """Stacked bars: one bar per hour (rows' "hour", Unix seconds), one colour per series_key value."""
    if not rows:
        return '<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="40" role="img"><text x="4" y="24">no data</text></svg>' % width
    seen = [r["hour"] for r in rows]
    hours = list(range(min(seen), max(seen) + 3600, 3600))  # every hour in the range, quiet ones too
    series = sorted({str(r[series_key]) for r in rows})
    colour = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(series)}
    totals = {h: 0 for h in hours}
    for r in rows:
        totals[r["hour"]] += r[value_key]
    top = max(totals.values()) or 1
    left, bottom, legend_h = 40, 30, 18 * ((len(series) + 3) // 4)
    plot_h = height - bottom - legend_h
    bw = (width - left) / max(len(hours), 1)
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" role="img" class="chart">' % (width, height),
           '<text x="2" y="%d" font-size="11">%d</text>' % (legend_h + 10, top),
           '<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#999"/>' % (left, legend_h + plot_h, width, legend_h + plot_h)]
    stack = {h: 0 for h in hours}
    for r in sorted(rows, key=lambda r: (r["hour"], str(r[series_key]))):
        i = hours.index(r["hour"])
        hgt = plot_h * r[value_key] / top
        y = legend_h + plot_h - stack[r["hour"]] - hgt
        stack[r["hour"]] += hgt
        out.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %d</title></rect>'
                   % (left + i * bw + 1, y, max(bw - 2, 1), hgt, colour[str(r[series_key])],
                      escape(str(r[series_key])), _hh(r["hour"]), r[value_key]))
    step = max(1, len(hours) // 12)
    for i, h in enumerate(hours):
        if i % step == 0:
            out.append('<text x="%.1f" y="%d" font-size="10">%s</text>' % (left + i * bw + 1, height - 12, _hh(h)))
    for i, s in enumerate(series):
        x, y = 4 + (i % 4) * (width // 4), 14 + 18 * (i // 4)
        out.append('<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d" font-size="11">%s</text>'
                   % (x, y - 9, colour[s], x + 14, y, escape(s)))
    out.append("</svg>")
    return "".join(out)


def _hh(t):
    import time
    return time.strftime("%H:00", time.gmtime(int(t)))
