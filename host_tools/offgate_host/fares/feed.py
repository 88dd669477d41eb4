"""Reading and validating the GTFS-Fares v2 files of a feed into a fare table (plain data).

Source: the GTFS Schedule reference (gtfs.org/documentation/schedule/reference), files
areas.txt, stop_areas.txt, fare_products.txt, fare_media.txt, rider_categories.txt,
fare_leg_rules.txt, fare_transfer_rules.txt, timeframes.txt, with calendar.txt /
calendar_dates.txt for the service_ids that timeframes reference, stops.txt for parent
stations, networks.txt / route_networks.txt / routes.txt for network ids, fare_leg_join_rules.txt
and agency.txt for the time zone. Parsed with the csv module (RFC 4180,
UTF-8, optional BOM).

`read_feed(path)` takes a directory or a .zip and returns a FareTable dict (JSON-serialisable):
amounts in minor currency units (int), times of day in seconds. Every problem found is a
FeedError naming file, line and field; all problems are collected, the message lists them.
What is read but not applied goes to the table's "warnings" ([file, line, field, message];
describe() makes the one line). docs/fares.md, "What of Fares v2 is supported".
"""
import csv
import hashlib
import io
import re
import zipfile
from decimal import Decimal, InvalidOperation
from pathlib import Path
from ..errors import OffgateError

FILES = ("agency.txt", "stops.txt", "routes.txt", "areas.txt", "stop_areas.txt", "networks.txt", "route_networks.txt",
         "fare_products.txt", "fare_media.txt", "rider_categories.txt", "fare_leg_rules.txt",
         "fare_leg_join_rules.txt", "fare_transfer_rules.txt", "timeframes.txt", "calendar.txt",
         "calendar_dates.txt", "feed_info.txt")
# the fields of the fare files in the current GTFS Schedule reference (gtfs/spec/en/reference.md);
# a column not listed here is named in a warning and ignored (it may be an extension that changes
# prices, e.g. MBTA's transfer_only)
FARE_FIELDS = {
    "areas.txt": ("area_id", "area_name"),
    "stop_areas.txt": ("area_id", "stop_id"),
    "networks.txt": ("network_id", "network_name"),
    "route_networks.txt": ("network_id", "route_id"),
    "fare_media.txt": ("fare_media_id", "fare_media_name", "fare_media_type"),
    "rider_categories.txt": ("rider_category_id", "rider_category_name", "is_default_fare_category",
                             "eligibility_url"),
    "fare_products.txt": ("fare_product_id", "fare_product_name", "rider_category_id", "fare_media_id", "amount",
                          "currency"),
    "fare_leg_rules.txt": ("leg_group_id", "network_id", "from_area_id", "to_area_id", "from_timeframe_group_id",
                           "to_timeframe_group_id", "fare_product_id", "rule_priority"),
    "fare_leg_join_rules.txt": ("from_network_id", "to_network_id", "from_stop_id", "to_stop_id"),
    "fare_transfer_rules.txt": ("from_leg_group_id", "to_leg_group_id", "transfer_count", "duration_limit",
                                "duration_limit_type", "fare_transfer_type", "fare_product_id"),
    "timeframes.txt": ("timeframe_group_id", "start_time", "end_time", "service_id"),
}
# columns outside the reference that offgate reads (a warning of their own says how)
EXTENSIONS = {"fare_leg_rules.txt": ("transfer_only",)}
REQUIRED_FILES = ("fare_products.txt", "fare_leg_rules.txt")
# the largest fare amount, in minor units, either sign: far above any real fare, and far inside
# the 64-bit integers the ledger stores sums of many fares in
MAX_MINOR = 10 ** 9
# ISO 4217 minor units where they are not 2 (the GTFS reference points to ISO 4217 for amounts)
MINOR_UNITS = {"BHD": 3, "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "IQD": 3, "ISK": 0, "JOD": 3, "JPY": 0,
               "KMF": 0, "KRW": 0, "KWD": 3, "LYD": 3, "OMR": 3, "PYG": 0, "RWF": 0, "TND": 3, "UGX": 0,
               "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0}
MEDIA_TYPES = {0: "none", 1: "physical paper ticket", 2: "physical transit card", 3: "cEMV", 4: "mobile app"}
TIME_RE = re.compile(r"^(\d{1,2}):([0-5]\d):([0-5]\d)$")
DATE_RE = re.compile(r"^\d{8}$")
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MAX_ERRORS = 20


def describe(p):
    """One line for a problem or warning (file, line, field, message): 'file line N field F: msg'."""
    f, line, field, msg = p
    if line == "-":
        return "%s%s: %s" % (f, " field %s" % field if field else "", msg)
    return "%s line %s field %s: %s" % (f, line, field, msg) if field else "%s line %s: %s" % (f, line, msg)


class FeedError(OffgateError, ValueError):
    """The feed cannot be used; `problems` lists (file, line, field, message)."""

    def __init__(self, problems):
        self.problems = list(problems)
        shown = [describe(p) for p in self.problems[:MAX_ERRORS]]
        more = len(self.problems) - len(shown)
        super().__init__("GTFS fares feed invalid: " + "; ".join(shown) + ("; and %d more" % more if more > 0 else ""))


class _Files:
    """The feed's text files by name, from a directory or a zip (at the archive's root, or in the
    one folder of the archive that holds fare_products.txt). `warnings` collects (file, line,
    field, message) about what is read but not applied."""

    def __init__(self, path):
        path = Path(path)
        self.data = {}
        self.warnings = []
        h = hashlib.sha256()
        if path.is_dir():
            if not any((path / n).is_file() for n in REQUIRED_FILES):
                # an unpacked zip of a folder: the feed one level down
                subs = sorted(d for d in path.iterdir() if (d / REQUIRED_FILES[0]).is_file())
                if len(subs) > 1:
                    raise FeedError([(str(path), "-", "", "%s in several folders (%s): which feed is meant?"
                                      % (REQUIRED_FILES[0], ", ".join(d.name for d in subs)))])
                if subs:
                    self.warnings.append((str(path), "-", "", "files read from its folder %s/" % subs[0].name))
                    path = subs[0]
            for name in FILES:
                p = path / name
                if p.is_file():
                    self.data[name] = p.read_bytes()
        elif path.is_file() and zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                names = {n for n in z.namelist() if not n.startswith("__MACOSX/")}
                prefix = ""
                if not any(n in names for n in REQUIRED_FILES):
                    # the reference wants the files at the root, but zips of a folder are common
                    dirs = sorted({n[:-len(REQUIRED_FILES[0])] for n in names if n.endswith("/" + REQUIRED_FILES[0])})
                    if len(dirs) > 1:
                        raise FeedError([(str(path), "-", "", "%s in several folders of the zip (%s): which feed is meant?"
                                          % (REQUIRED_FILES[0], ", ".join(dirs)))])
                    if dirs:
                        prefix = dirs[0]
                        self.warnings.append((str(path), "-", "", "files read from folder %s of the zip, not its root "
                                              "(the GTFS reference wants them at the root)" % prefix))
                for name in FILES:
                    if prefix + name in names:
                        self.data[name] = z.read(prefix + name)
        elif path.exists():
            raise FeedError([(str(path), "-", "", "not a directory or a .zip file")])
        else:
            raise FeedError([(str(path), "-", "", "no such file or directory")])
        for name in sorted(self.data):
            h.update(name.encode() + b"\0" + self.data[name])
        self.digest = h.hexdigest()
        self.headers = {}

    def rows(self, name, problems):
        """[(line, {field: value})] of a file, values stripped; None when the file is absent.
        Quoted fields, CRLF and a UTF-8 BOM are read as RFC 4180; missing trailing values are
        empty, extra trailing empty values (a trailing comma) are dropped."""
        raw = self.data.get(name)
        if raw is None:
            return None
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            problems.append((name, "-", "", "not UTF-8 (%s)" % e.reason))
            return []
        rd = csv.reader(io.StringIO(text, newline=""))
        try:
            header = next(rd)
        except StopIteration:
            problems.append((name, 1, "", "empty file (no header)"))
            return []
        except csv.Error as e:
            problems.append((name, 1, "", "CSV: %s" % e))
            return []
        header = [h.strip() for h in header]
        while header and header[-1] == "":
            header.pop()  # a trailing comma after the last field name
        self.headers[name] = header
        dup = sorted({h for h in header if header.count(h) > 1})
        if dup:
            problems.append((name, 1, dup[0], "field name given twice"))
            return []
        known = FARE_FIELDS.get(name)
        if known is not None:
            for h in header:
                if h not in known and h not in EXTENSIONS.get(name, ()):
                    self.warnings.append((name, 1, h, "not a field of the GTFS reference: ignored"))
        out = []
        try:
            for row in rd:
                if not row or all(not c.strip() for c in row):
                    continue
                line = rd.line_num
                if len(row) > len(header) and any(c.strip() for c in row[len(header):]):
                    problems.append((name, line, "", "%d values for %d columns" % (len(row), len(header))))
                    continue
                out.append((line, {h: (row[i].strip() if i < len(row) else "") for i, h in enumerate(header)}))
        except csv.Error as e:
            problems.append((name, rd.line_num, "", "CSV: %s" % e))
        return out

    def header(self, name):
        """The field names of a file that rows() has read ([] if absent)."""
        return self.headers.get(name, [])


def _time(v):
    m = TIME_RE.match(v)
    if not m:
        return None
    return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + int(m.group(3))


def _int(v, low=None, high=None):
    try:
        n = int(v)
    except ValueError:
        return None
    if (low is not None and n < low) or (high is not None and n > high):
        return None
    return n


def read_feed(path):
    """Parse and validate the fare files of the GTFS feed at `path` (directory or .zip).
    Returns the fare table (dict, see module docstring). Raises FeedError."""
    files = _Files(path)
    P = []  # problems
    W = files.warnings  # read but not applied, or harmless departures from the reference

    def need(name, line, row, field):
        v = row.get(field, "")
        if v == "":
            P.append((name, line, field, "required, empty or missing"))
        return v

    for name in REQUIRED_FILES:
        if name not in files.data:
            P.append((name, "-", "", "file missing: a GTFS-Fares v2 feed needs it"))
    if P:
        raise FeedError(P)

    # agency.txt: the time zone fares are in (all agencies of a feed share one, by the reference)
    tz = None
    for line, r in files.rows("agency.txt", P) or []:
        atz = r.get("agency_timezone") or None
        if tz and atz and atz != tz:
            W.append(("agency.txt", line, "agency_timezone", "%s differs from %s (the reference wants one time zone "
                      "for all agencies): fares use %s unless the fare config sets timezone" % (atz, tz, tz)))
        tz = tz or atz
    feed_version = None
    for line, r in files.rows("feed_info.txt", P) or []:
        feed_version = r.get("feed_version") or None

    # stops.txt: parent stations (an area given for a station covers its platforms)
    parent = {}
    stops = set()
    for line, r in files.rows("stops.txt", P) or []:
        sid = r.get("stop_id", "")
        if sid:
            stops.add(sid)
            if r.get("parent_station"):
                parent[sid] = r["parent_station"]
        stz = r.get("stop_timezone", "")
        if stz and tz and stz != tz and not any(w[2] == "stop_timezone" for w in W):
            W.append(("stops.txt", line, "stop_timezone", "%s differs from agency_timezone %s: timeframes and caps "
                      "use the one fare config time zone (timezone)" % (stz, tz)))

    # networks (GTFS reference, networks.txt / route_networks.txt, or routes.network_id): the ids
    # fare_leg_rules.network_id and fare_leg_join_rules may name. Gates do not know the route, so a
    # leg's network comes from the fare config (network_id, station_networks).
    networks = {}
    routes = set()
    route_net_col = False
    for line, r in files.rows("routes.txt", P) or []:
        routes.add(r.get("route_id", ""))
        n = r.get("network_id", "")
        if "network_id" in r:
            route_net_col = True
        if n:
            networks.setdefault(n, "")
    has_net_files = "networks.txt" in files.data or "route_networks.txt" in files.data
    if route_net_col and has_net_files:
        W.append(("routes.txt", 1, "network_id", "forbidden when networks.txt or route_networks.txt exists: "
                  "networks.txt is used"))
        networks = {}
    for line, r in files.rows("networks.txt", P) or []:
        n = need("networks.txt", line, r, "network_id")
        if n in networks and has_net_files:
            P.append(("networks.txt", line, "network_id", "duplicate network_id %r" % n))
        elif n:
            networks[n] = r.get("network_name", "")
    route_network = {}
    for line, r in files.rows("route_networks.txt", P) or []:
        n, rid = need("route_networks.txt", line, r, "network_id"), need("route_networks.txt", line, r, "route_id")
        if n and n not in networks:
            P.append(("route_networks.txt", line, "network_id", "unknown network_id %r (networks.txt)" % n))
        if rid and routes and rid not in routes:
            P.append(("route_networks.txt", line, "route_id", "unknown route_id %r (routes.txt)" % rid))
        if rid in route_network:
            P.append(("route_networks.txt", line, "route_id", "route %r is already in network %r: a route is in "
                      "one network" % (rid, route_network[rid])))
        elif rid:
            route_network[rid] = n
    net_known = bool(networks) or route_net_col or has_net_files

    areas = {}
    for line, r in files.rows("areas.txt", P) or []:
        a = need("areas.txt", line, r, "area_id")
        if a in areas:
            P.append(("areas.txt", line, "area_id", "duplicate area_id %r" % a))
        elif a:
            areas[a] = r.get("area_name", "")

    stop_areas = {}
    for line, r in files.rows("stop_areas.txt", P) or []:
        a, s = need("stop_areas.txt", line, r, "area_id"), need("stop_areas.txt", line, r, "stop_id")
        if a and a not in areas:
            P.append(("stop_areas.txt", line, "area_id", "unknown area_id %r (areas.txt)" % a))
        if stops and s and s not in stops:
            P.append(("stop_areas.txt", line, "stop_id", "unknown stop_id %r (stops.txt)" % s))
        if a and s:
            lst = stop_areas.setdefault(s, [])
            if a in lst:
                P.append(("stop_areas.txt", line, "", "duplicate (area_id, stop_id) (%r, %r)" % (a, s)))
            else:
                lst.append(a)

    media = {}
    for line, r in files.rows("fare_media.txt", P) or []:
        m = need("fare_media.txt", line, r, "fare_media_id")
        t = r.get("fare_media_type", "")
        tv = _int(t, 0, 4)
        if tv is None:
            P.append(("fare_media.txt", line, "fare_media_type", "must be 0-4, got %r" % t))
        if m in media:
            P.append(("fare_media.txt", line, "fare_media_id", "duplicate fare_media_id %r" % m))
        elif m:
            media[m] = {"name": r.get("fare_media_name", ""), "type": tv}

    cats = {}
    for line, r in files.rows("rider_categories.txt", P) or []:
        c = need("rider_categories.txt", line, r, "rider_category_id")
        need("rider_categories.txt", line, r, "rider_category_name")
        d = r.get("is_default_fare_category", "")
        if d not in ("", "0", "1"):
            P.append(("rider_categories.txt", line, "is_default_fare_category", "must be 0, 1 or empty, got %r" % d))
        if c in cats:
            P.append(("rider_categories.txt", line, "rider_category_id", "duplicate rider_category_id %r" % c))
        elif c:
            cats[c] = {"name": r.get("rider_category_name", ""), "default": d == "1"}

    products = []
    keys = set()
    currency = None
    for line, r in files.rows("fare_products.txt", P) or []:
        pid = need("fare_products.txt", line, r, "fare_product_id")
        amount_s = need("fare_products.txt", line, r, "amount")
        cur = need("fare_products.txt", line, r, "currency")
        med, cat = r.get("fare_media_id", ""), r.get("rider_category_id", "")
        if med and med not in media:
            P.append(("fare_products.txt", line, "fare_media_id", "unknown fare_media_id %r (fare_media.txt)" % med))
        if cat and cat not in cats:
            P.append(("fare_products.txt", line, "rider_category_id",
                      "unknown rider_category_id %r (rider_categories.txt)" % cat))
        if (pid, cat, med) in keys:
            P.append(("fare_products.txt", line, "", "duplicate (fare_product_id, rider_category_id, fare_media_id) "
                      "(%r, %r, %r)" % (pid, cat, med)))
        keys.add((pid, cat, med))
        if cur and not re.match(r"^[A-Z]{3}$", cur):
            P.append(("fare_products.txt", line, "currency", "not an ISO 4217 code: %r" % cur))
            cur = ""
        if cur and currency and cur != currency:
            P.append(("fare_products.txt", line, "currency", "%s after %s: one currency per fare table" % (cur, currency)))
        currency = currency or cur or None
        minor = None
        if amount_s and cur:
            digits = MINOR_UNITS.get(cur, 2)
            try:
                d = Decimal(amount_s)
                if not d.is_finite():
                    raise InvalidOperation
                scaled = d.scaleb(digits)
                if scaled != scaled.to_integral_value():
                    P.append(("fare_products.txt", line, "amount",
                              "%s has more decimals than %s allows (%d)" % (amount_s, cur, digits)))
                elif abs(scaled) > MAX_MINOR:
                    P.append(("fare_products.txt", line, "amount",
                              "%s is beyond the %d minor units a fare may be" % (amount_s, MAX_MINOR)))
                else:
                    minor = int(scaled)  # may be negative: a transfer discount (reference)
            except InvalidOperation:
                P.append(("fare_products.txt", line, "amount", "not a decimal number: %r" % amount_s))
        if pid:
            products.append({"fare_product_id": pid, "fare_media_id": med, "rider_category_id": cat,
                             "name": r.get("fare_product_name", ""), "amount": minor, "line": line})
    product_ids = {p["fare_product_id"] for p in products}
    eligible = {}
    for p in products:
        eligible.setdefault(p["fare_product_id"], (p["line"], set()))[1].add(p["rider_category_id"])
    for pid, (line, cs) in sorted(eligible.items()):
        if "" not in cs and len(cs) > 1 and sum(1 for c in cs if cats.get(c, {}).get("default")) != 1:
            W.append(("fare_products.txt", line, "rider_category_id", "fare product %r: of its rider categories %s, "
                      "not exactly one is is_default_fare_category=1" % (pid, ", ".join(sorted(cs)))))

    services = {}
    for line, r in files.rows("calendar.txt", P) or []:
        sid = need("calendar.txt", line, r, "service_id")
        days = []
        for dname in DAYS:
            v = r.get(dname, "")
            if v not in ("0", "1"):
                P.append(("calendar.txt", line, dname, "must be 0 or 1, got %r" % v))
            days.append(v == "1")
        s, e = r.get("start_date", ""), r.get("end_date", "")
        for f, v in (("start_date", s), ("end_date", e)):
            if not DATE_RE.match(v):
                P.append(("calendar.txt", line, f, "must be YYYYMMDD, got %r" % v))
        if sid:
            services[sid] = {"days": days, "start": s, "end": e, "added": [], "removed": []}
    for line, r in files.rows("calendar_dates.txt", P) or []:
        sid = need("calendar_dates.txt", line, r, "service_id")
        d, x = r.get("date", ""), r.get("exception_type", "")
        if not DATE_RE.match(d):
            P.append(("calendar_dates.txt", line, "date", "must be YYYYMMDD, got %r" % d))
            continue
        if x not in ("1", "2"):
            P.append(("calendar_dates.txt", line, "exception_type", "must be 1 or 2, got %r" % x))
            continue
        s = services.setdefault(sid, {"days": [False] * 7, "start": "", "end": "", "added": [], "removed": []})
        s["added" if x == "1" else "removed"].append(d)

    timeframes = []
    for line, r in files.rows("timeframes.txt", P) or []:
        g = need("timeframes.txt", line, r, "timeframe_group_id")
        sid = need("timeframes.txt", line, r, "service_id")
        st, et = r.get("start_time", ""), r.get("end_time", "")
        if (st == "") != (et == ""):
            P.append(("timeframes.txt", line, "start_time" if st == "" else "end_time",
                      "start_time and end_time go together (both or neither)"))
            continue
        a, b = (_time(st), _time(et)) if st else (0, 86400)
        if a is None or a >= 86400:
            P.append(("timeframes.txt", line, "start_time", "must be HH:MM:SS before 24:00:00, got %r" % st))
            continue
        if b is None or b > 86400:
            P.append(("timeframes.txt", line, "end_time", "must be HH:MM:SS up to 24:00:00, got %r" % et))
            continue
        if b <= a:
            P.append(("timeframes.txt", line, "end_time", "%s is not after start_time %s" % (et, st)))
            continue
        if sid and services and sid not in services:
            P.append(("timeframes.txt", line, "service_id", "unknown service_id %r (calendar.txt/calendar_dates.txt)" % sid))
        elif sid and not services:
            P.append(("timeframes.txt", line, "service_id", "service_id %r needs calendar.txt or calendar_dates.txt" % sid))
        timeframes.append({"group": g, "start": a, "end": b, "service_id": sid, "line": line})
    groups = {t["group"] for t in timeframes}

    leg_rules = []
    never = {}  # timeframe_group_id -> lines of rules naming it while timeframes.txt does not
    transfer_only = []
    for line, r in files.rows("fare_leg_rules.txt", P) or []:
        if r.get("transfer_only", "") not in ("", "0"):
            # MBTA's extension: the row prices a leg only after a transfer. Used as a plain leg
            # rule it would make legs free; offgate, which cannot tell, leaves it out.
            transfer_only.append((line, r.get("leg_group_id", "")))
            continue
        pid = need("fare_leg_rules.txt", line, r, "fare_product_id")
        if pid and pid not in product_ids:
            P.append(("fare_leg_rules.txt", line, "fare_product_id", "unknown fare_product_id %r (fare_products.txt)" % pid))
        for f in ("from_area_id", "to_area_id"):
            v = r.get(f, "")
            if v and v not in areas:
                P.append(("fare_leg_rules.txt", line, f, "unknown area_id %r (areas.txt)" % v))
        for f in ("from_timeframe_group_id", "to_timeframe_group_id"):
            v = r.get(f, "")
            if v and v not in groups:
                # the rule matches only in a timeframe of that group (reference): never
                never.setdefault((f, v), []).append(line)
        nv = r.get("network_id", "")
        if nv and net_known and nv not in networks:
            P.append(("fare_leg_rules.txt", line, "network_id", "unknown network_id %r (%s)"
                      % (nv, "networks.txt" if has_net_files else "routes.txt network_id")))
        pr = r.get("rule_priority", "")
        prv = 0
        if pr:
            prv = _int(pr, 0)
            if prv is None:
                P.append(("fare_leg_rules.txt", line, "rule_priority", "must be a non-negative integer, got %r" % pr))
                prv = 0
        leg_rules.append({"line": line, "leg_group_id": r.get("leg_group_id", ""), "network_id": r.get("network_id", ""),
                          "from_area_id": r.get("from_area_id", ""), "to_area_id": r.get("to_area_id", ""),
                          "from_timeframe_group_id": r.get("from_timeframe_group_id", ""),
                          "to_timeframe_group_id": r.get("to_timeframe_group_id", ""),
                          "fare_product_id": pid, "rule_priority": prv})
    priority_mode = "rule_priority" in files.header("fare_leg_rules.txt")
    for (f, v), lines in sorted(never.items()):
        W.append(("fare_leg_rules.txt", lines[0], f, "unknown timeframe_group_id %r (timeframes.txt): %d rule(s) "
                  "naming it never match" % (v, len(lines))))
    if transfer_only:
        W.append(("fare_leg_rules.txt", transfer_only[0][0], "transfer_only", "%d row(s) with transfer_only=1 (not in the "
                  "GTFS reference) left out: they would price plain legs" % len(transfer_only)))
    # a transfer rule may name the group of a left-out transfer_only row: it then never applies
    leg_groups = {r["leg_group_id"] for r in leg_rules if r["leg_group_id"]} | {g for _, g in transfer_only if g}

    # fare_leg_join_rules.txt: two consecutive journeys (an exit, then an entry at the station the
    # rule names, or the same station) priced as one effective leg (engine.py, _joins)
    joins = []
    for line, r in files.rows("fare_leg_join_rules.txt", P) or []:
        name = "fare_leg_join_rules.txt"
        for f in ("from_network_id", "to_network_id"):
            v = need(name, line, r, f)
            if v and net_known and v not in networks:
                P.append((name, line, f, "unknown network_id %r" % v))
        fs, ts = r.get("from_stop_id", ""), r.get("to_stop_id", "")
        if bool(fs) != bool(ts):
            P.append((name, line, "to_stop_id" if fs else "from_stop_id", "from_stop_id and to_stop_id go together"))
        for f, v in (("from_stop_id", fs), ("to_stop_id", ts)):
            if v and stops and v not in stops:
                P.append((name, line, f, "unknown stop_id %r (stops.txt)" % v))
        joins.append({"line": line, "from_network_id": r.get("from_network_id", ""),
                      "to_network_id": r.get("to_network_id", ""), "from_stop_id": fs, "to_stop_id": ts})

    transfer_rules = []
    for line, r in files.rows("fare_transfer_rules.txt", P) or []:
        name = "fare_transfer_rules.txt"
        fg, tg = r.get("from_leg_group_id", ""), r.get("to_leg_group_id", "")
        for f, v in (("from_leg_group_id", fg), ("to_leg_group_id", tg)):
            if v and v not in leg_groups:
                P.append((name, line, f, "unknown leg_group_id %r (fare_leg_rules.txt)" % v))
        tc_s = r.get("transfer_count", "")
        tc = None
        if fg != tg:
            if tc_s:
                P.append((name, line, "transfer_count", "forbidden when from_leg_group_id differs from to_leg_group_id"))
        else:
            if not tc_s:
                P.append((name, line, "transfer_count", "required when from_leg_group_id equals to_leg_group_id"))
            else:
                tc = _int(tc_s)
                if tc is None or tc == 0 or tc < -1:
                    P.append((name, line, "transfer_count", "must be -1 (no limit) or >= 1, got %r" % tc_s))
                    tc = None
        dl_s, dt_s = r.get("duration_limit", ""), r.get("duration_limit_type", "")
        dl = dt = None
        if dl_s:
            dl = _int(dl_s, 1)
            if dl is None:
                P.append((name, line, "duration_limit", "must be a positive integer (seconds), got %r" % dl_s))
            if not dt_s:
                P.append((name, line, "duration_limit_type", "required when duration_limit is given"))
        if dt_s:
            if not dl_s:
                P.append((name, line, "duration_limit_type", "forbidden without duration_limit"))
            dt = _int(dt_s, 0, 3)
            if dt is None:
                P.append((name, line, "duration_limit_type", "must be 0-3, got %r" % dt_s))
        ft_s = need(name, line, r, "fare_transfer_type")
        ft = _int(ft_s, 0, 2) if ft_s else None
        if ft_s and ft is None:
            P.append((name, line, "fare_transfer_type", "must be 0, 1 or 2, got %r" % ft_s))
        pid = r.get("fare_product_id", "")
        if pid and pid not in product_ids:
            P.append((name, line, "fare_product_id", "unknown fare_product_id %r (fare_products.txt)" % pid))
        if dl_s == "" and ft is not None and not any(w[0] == name and w[2] == "duration_limit" for w in W):
            W.append((name, line, "duration_limit", "empty: transfers under this rule never expire (applied between "
                      "consecutive journeys of a service week, as the reference says)"))
        transfer_rules.append({"line": line, "from_leg_group_id": fg, "to_leg_group_id": tg, "transfer_count": tc,
                               "duration_limit": dl, "duration_limit_type": dt, "fare_transfer_type": ft,
                               "fare_product_id": pid})
    if P:
        raise FeedError(P)
    used_services = {t["service_id"] for t in timeframes}
    return {
        "format": 1,
        "warnings": [list(w) for w in W],
        "networks": networks,
        "digest": files.digest,
        "feed_version": feed_version,
        "timezone": tz,
        "currency": currency,
        "minor_units": MINOR_UNITS.get(currency, 2) if currency else 2,
        "areas": areas,
        "stop_areas": stop_areas,
        "parent_station": parent,
        "fare_media": media,
        "rider_categories": cats,
        "fare_products": products,
        "leg_rules": leg_rules,
        "priority_mode": priority_mode,
        "transfer_rules": transfer_rules,
        "join_rules": joins,
        "timeframes": timeframes,
        "services": {k: v for k, v in services.items() if k in used_services},
    }
