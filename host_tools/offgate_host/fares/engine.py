"""The fare engine: taps in, priced and explained journeys out. Pure: no database, no clock.

Steps (docs/fares.md):
  1. pair(): taps → journeys. Per credential, an entry and the next exit with no other entry
     between, within max_journey_s; then, for what is left, by account (an entry of one credential,
     an exit of another, no entry of the account between). An entry left over is incomplete once
     max_journey_s has passed (before that it is pending: its exit may not be synced yet); an exit
     left over is an unmatched exit (flagged).
  2. price_leg(): fare_leg_rules.txt matching (GTFS reference, "fare_leg_rules.txt") on
     network_id, from_area_id, to_area_id, from_timeframe_group_id, to_timeframe_group_id:
     without a rule_priority column a field matches when it names the leg's value (exact match),
     and an empty field stands for every value the column does not name ("all others"); with
     rule_priority, an empty field matches anything and the matching rules of the highest
     priority are kept. Among the remaining rules,
     a fare product the credential already holds (a pass) costs 0, else the cheapest product for
     the rider category and fare medium is charged (best fare for the rider).
  2b. _joins(): fare_leg_join_rules.txt: consecutive journeys a join rule matches (networks of
     their entry stations, the stop between them) are one effective leg, priced from the first
     entry to the last exit; joined journeys are charged the rest of its fare and are no transfer.
  3. transfers(): fare_transfer_rules.txt between consecutive complete journeys, matched on
     from/to_leg_group_id the same way, within transfer_count and duration_limit (measured from
     the first leg of the transfer sub-journey); fare_transfer_type 0: the next leg costs the
     transfer product (A + AB); 1: transfer product plus the leg (A + AB + B); 2: the two legs
     together cost the transfer product (AB; the next leg costs AB less what the first one did;
     on a later transfer of the same sub-journey it costs the transfer product, S + BC).
  4. caps(): daily (service day starting at service_day_start) and weekly (Monday to Sunday of
     service days) caps per rider category, in the operator's time zone; incomplete journeys
     outside the caps unless configured.
Amounts are minor currency units (int), times Unix seconds. Every journey says which rules made
its charge (leg rule line and leg_group_id, fare product, transfer rule line, cap).
"""
import datetime
import zoneinfo

FIELDS = ("network_id", "from_area_id", "to_area_id", "from_timeframe_group_id", "to_timeframe_group_id")
TIME_FIELDS = FIELDS[3:]


def tap_key(tp):
    return (tp["t"], tp["gate"], tp["seq"])


class Calendar:
    """Local time, service days and weeks, and timeframes of one fare table + config."""

    def __init__(self, table, cfg):
        self.tz = zoneinfo.ZoneInfo(cfg["timezone"])
        self.day_start = cfg["day_start_s"]
        self.table = table
        self._svc = {}

    def local(self, t):
        return datetime.datetime.fromtimestamp(t, self.tz)

    def service_date(self, t):
        return (self.local(t) - datetime.timedelta(seconds=self.day_start)).date()

    def week(self, t):
        d = self.service_date(t)
        return d - datetime.timedelta(days=d.weekday())  # the Monday

    def week_start_t(self, t):
        """Unix time at which the service week holding t began (Monday, service_day_start)."""
        mon = self.week(t)
        h, m = divmod(self.day_start // 60, 60)
        return int(datetime.datetime(mon.year, mon.month, mon.day, h, m, tzinfo=self.tz).timestamp())

    def _active(self, service_id, date):
        key = (service_id, date)
        r = self._svc.get(key)
        if r is None:
            s = self.table["services"].get(service_id)
            ds = date.strftime("%Y%m%d")
            if s is None:
                r = False
            elif ds in s["removed"]:
                r = False
            elif ds in s["added"]:
                r = True
            else:
                r = bool(s["days"][date.weekday()]) and (not s["start"] or s["start"] <= ds) and (not s["end"] or ds <= s["end"])
            self._svc[key] = r
        return r

    def in_group(self, group, t):
        """True if Unix time t falls in a timeframe of timeframe_group_id `group` (local time of
        day on a date its service_id runs; end_time exclusive)."""
        lt = self.local(t)
        sec = lt.hour * 3600 + lt.minute * 60 + lt.second
        for tf in self.table["timeframes"]:
            if tf["group"] == group and tf["start"] <= sec < tf["end"] and self._active(tf["service_id"], lt.date()):
                return True
        return False


class Engine:
    def __init__(self, table, cfg):
        self.table = table
        self.cfg = cfg
        self.cal = Calendar(table, cfg)
        self.media = self._media()
        self.products = {}
        for p in table["fare_products"]:
            self.products.setdefault(p["fare_product_id"], []).append(p)
        self.caps = {str(c.get("rider_category_id", "*")): c for c in cfg["caps"]}
        self._areas = {}
        self._columns = {f: sorted({r[f] for r in table["leg_rules"] if r[f]}) for f in FIELDS}
        self._listed_cache = {}
        # a leg's price depends only on its stations, the timeframe groups its entry and exit
        # times fall in, the rider category and the passes: remembered under that key
        self._memo = {}
        self._groups = sorted({r[f] for r in table["leg_rules"] for f in FIELDS[3:] if r[f]})
        # rows by from_area_id, so a leg looks at the rows of its areas and the empty ones only
        self._by_from = {}
        for r in table["leg_rules"]:
            self._by_from.setdefault(r["from_area_id"], []).append(r)
        self._tcolumns = {f: {r[f] for r in table["transfer_rules"] if r[f]}
                          for f in ("from_leg_group_id", "to_leg_group_id")}

    def warnings(self):
        """(file, line, field, message) about this table + config that leave legs unpriced: rules
        naming a network no gate has, leg rules whose product has no row offgate may charge."""
        out = []
        rules = self.table["leg_rules"]
        gate_nets = {self.cfg["network_id"]} | set(self.cfg["station_networks"].values())
        if rules and all(r["network_id"] and r["network_id"] not in gate_nets for r in rules):
            out.append(("fare_leg_rules.txt", "-", "network_id", "every row names a network_id no gate has (set the "
                        "fare config's network_id or station_networks): no journey will find a fare"))
        cats = {""} | set(self.table["rider_categories"])
        dead = [r for r in rules if all(self.product_amount(r["fare_product_id"], c)[0] is None for c in cats)]
        if dead:
            out.append(("fare_leg_rules.txt", dead[0]["line"], "fare_product_id", "%d of %d rule(s) price with products "
                        "that have no row on the fare media offgate codes count as (fare_media_ids; default: type 4, "
                        "mobile app, or none): journeys they match are not charged, e.g. %r"
                        % (len(dead), len(rules), dead[0]["fare_product_id"])))
        return out

    # ------------------------------------------------------------------ products
    def _media(self):
        if self.cfg["fare_media_ids"] is not None:
            return set(self.cfg["fare_media_ids"]) | {""}
        app = {m for m, v in self.table["fare_media"].items() if v["type"] == 4}
        return (app | {""}) if app else None  # None: any medium

    def product_amount(self, pid, category):
        """(amount, product row) of fare product `pid` for the rider category, or (None, None).
        Rows for the category first, then rows for any category (empty rider_category_id), then,
        the operator's fallback, rows of the default category; the cheapest eligible medium."""
        rows = [r for r in self.products.get(pid, ()) if self.media is None or r["fare_media_id"] in self.media]
        for want in (category, "", self.cfg["default_rider_category"]):
            if want is None:
                continue
            cand = [r for r in rows if r["rider_category_id"] == want]
            if cand:
                best = min(cand, key=lambda r: (r["amount"], r["line"]))
                return best["amount"], best
        return None, None

    # ------------------------------------------------------------------ stations and areas
    def areas(self, station):
        """Areas (areas.txt ids) of a gate's station: the station itself if it is an area id, else
        the areas of that stop, of its parent station and of its child stops (stop_areas.txt)."""
        a = self._areas.get(station)
        if a is None:
            t = self.table
            if station in t["areas"]:
                a = {station}
            else:
                a = set(t["stop_areas"].get(station, ()))
                p = t["parent_station"].get(station)
                if p:
                    a |= set(t["stop_areas"].get(p, ()))
                for child, par in t["parent_station"].items():
                    if par == station:
                        a |= set(t["stop_areas"].get(child, ()))
            self._areas[station] = a
        return a

    def network(self, station):
        return self.cfg["station_networks"].get(station, self.cfg["network_id"])

    # ------------------------------------------------------------------ leg rules
    def _field_match(self, field, value, leg):
        if field == "network_id":
            return value == leg["network_id"]
        if field == "from_area_id":
            return value in leg["from_areas"]
        if field == "to_area_id":
            return value in leg["to_areas"]
        if field == "from_timeframe_group_id":
            return self.cal.in_group(value, leg["t_from"])
        return self.cal.in_group(value, leg["t_to"])

    def _listed(self, f, leg):
        """True if the leg's value of field f is among the values the column lists (so an empty
        field, meaning "all others", does not cover it)."""
        r = self._listed_cache.get(f)  # reset for every leg by leg_rules()
        if r is None:
            r = any(self._field_match(f, v, leg) for v in self._columns[f])
            self._listed_cache[f] = r
        return r

    def leg_rules(self, leg):
        """The fare_leg_rules.txt rows that apply to `leg` (GTFS reference, fare_leg_rules.txt):
        without rule_priority, a field matches if it names the leg's value, or if it is empty and
        no row of the file names the leg's value in that column ("all others"); with
        rule_priority, an empty field matches anything and only the matching rows of the highest
        rule_priority are kept. An empty from/to_timeframe_group_id matches any time in both
        modes ("the start time of the leg does not affect the matching of this rule")."""
        rules = list(self._by_from.get("", ()))
        for a in sorted(leg["from_areas"]):
            rules += self._by_from.get(a, ())
        rules.sort(key=lambda r: r["line"])
        if self.table["priority_mode"]:
            cand = [r for r in rules if all(not r[f] or self._field_match(f, r[f], leg) for f in FIELDS)]
            if cand:
                top = max(r["rule_priority"] for r in cand)
                cand = [r for r in cand if r["rule_priority"] == top]
            return cand
        self._listed_cache = {}
        # "all others" is the reference's reading of an empty network_id, from_area_id and
        # to_area_id only; an empty timeframe group means the time does not matter, in both modes
        return [r for r in rules
                if all(self._field_match(f, r[f], leg) if r[f] else (f in TIME_FIELDS or not self._listed(f, leg))
                       for f in FIELDS)]

    def groups_at(self, t):
        """The timeframe groups (those fare_leg_rules.txt uses) that Unix time t falls in."""
        return tuple(g for g in self._groups if self.cal.in_group(g, t))

    def price_key(self, from_station, to_station, t_from, t_to, category, passes):
        return (from_station, to_station, self.groups_at(t_from) if self._groups else (),
                self.groups_at(t_to) if self._groups else (), category, tuple(passes))

    def make_leg(self, from_station, to_station, t_from, t_to):
        return {"from_areas": self.areas(from_station), "to_areas": self.areas(to_station) if to_station else set(),
                "network_id": self.network(from_station), "t_from": t_from, "t_to": t_to}

    def price_leg(self, leg, category, passes=()):
        """(amount, rule, product row) for the leg, or (None, None, None) if no rule prices it."""
        best = None
        for r in self.leg_rules(leg):
            if r["fare_product_id"] in passes:
                amt, row = self.product_amount(r["fare_product_id"], category)
                return 0, r, row or {"fare_product_id": r["fare_product_id"], "line": None}
            amt, row = self.product_amount(r["fare_product_id"], category)
            if amt is None:
                continue
            k = (amt, r["line"])
            if best is None or k < best[0]:
                best = (k, r, row)
        if best is None:
            return None, None, None
        return best[0][0], best[1], best[2]

    def max_fare(self, station, t, category):
        """The highest fare of any journey from `station` starting at t (incomplete journeys):
        over every area as destination, and a destination in no area."""
        best = (None, None, None)
        for dest in list(self.table["areas"]) + [None]:
            leg = self.make_leg(station, dest, t, t)
            amt, r, row = self.price_leg(leg, category)
            if amt is not None and (best[0] is None or amt > best[0]):
                best = (amt, r, row)
        return best

    # ------------------------------------------------------------------ transfers
    def _transfer_rule(self, prev, cur, first, count):
        prev_g = prev["leg_rule"]["leg_group_id"] if prev.get("leg_rule") else ""
        cur_g = cur["leg_rule"]["leg_group_id"] if cur.get("leg_rule") else ""
        # empty from/to_leg_group_id: every leg group the column does not list (GTFS reference)
        cand = [r for r in self.table["transfer_rules"]
                if all((r[f] == v) if r[f] else (v not in self._tcolumns[f])
                       for f, v in (("from_leg_group_id", prev_g), ("to_leg_group_id", cur_g)))]
        out = []
        for r in cand:
            if r["from_leg_group_id"] == r["to_leg_group_id"] and r["transfer_count"] not in (None, -1) \
                    and count + 1 > r["transfer_count"]:
                continue
            if r["duration_limit"] is not None:
                dt = r["duration_limit_type"]
                a = first["entry"]["t"] if dt in (0, 1) else first["exit"]["t"]
                b = cur["exit"]["t"] if dt in (0, 3) else cur["entry"]["t"]
                if b - a > r["duration_limit"]:
                    continue
            out.append(r)
        # "If a sub-journey matches multiple records with different transfer_counts, then the rule
        # with the minimum transfer_count that is greater than or equal to the current transfer
        # count of the sub-journey is to be selected" (GTFS reference); -1 (no limit) ranks last
        counted = [r for r in out if r["transfer_count"] is not None]
        if len({r["transfer_count"] for r in counted}) > 1:
            best = min(r["transfer_count"] if r["transfer_count"] != -1 else float("inf") for r in counted)
            out = [r for r in out if r["transfer_count"] is None
                   or (r["transfer_count"] if r["transfer_count"] != -1 else float("inf")) == best]
        return out

    # ------------------------------------------------------------------ the whole account
    def rate(self, taps, creds, now):
        """Price one account's taps.

        taps: dicts gate, seq, t, cti (bytes), station, direction ("entry"/"exit"/"both").
        creds: {cti: {"account", "product", "rider_category"}}.
        Returns (journeys, pending): journeys in time order, each a dict with kind ("complete",
        "incomplete", "unmatched_exit"), entry/exit taps, cti, category, fare, leg_rule, product,
        transfer, cap, charged and explain; pending = entry taps whose journey may still end.
        A tap with "frozen": True (settled under another pricing regime: docs/fares.md "Settled
        is final") still pairs, but no journey containing it is priced and it is never pending."""
        journeys, pending = pair(taps, self.cfg["max_journey_s"], now)
        if any(tp.get("frozen") for tp in taps):
            journeys = [j for j in journeys if not any(tp is not None and tp.get("frozen")
                                                       for tp in (j["entry"], j["exit"]))]
            pending = [tp for tp in pending if not tp.get("frozen")]
        for j in journeys:
            c = creds.get(j["cti"]) or {}
            cat = c.get("rider_category") or self.cfg["default_rider_category"] or ""
            j["category"] = cat
            passes = self.passes(c)
            j["leg_rule"] = j["product"] = j["transfer"] = j["cap"] = None
            notes = []
            unplaced = [tp for tp in (j["entry"], j["exit"]) if tp is not None and not tp.get("station")]
            j["unpriced"] = bool(unplaced)
            if unplaced:
                # a gate with no registered place (offgate gate place): the rider is not charged
                # for the operator's missing configuration; settlement flags it
                amt, rule, row = 0, None, None
                notes.append("gate %s has no station registered" % ", ".join(str(tp["gate"]) for tp in unplaced))
            elif j["kind"] == "complete":
                key = self.price_key(j["entry"]["station"], j["exit"]["station"], j["entry"]["t"], j["exit"]["t"],
                                     cat, passes)
                hit = self._memo.get(key)
                if hit is None:
                    leg = self.make_leg(j["entry"]["station"], j["exit"]["station"], j["entry"]["t"], j["exit"]["t"])
                    hit = self._memo[key] = self.price_leg(leg, cat, passes)
                amt, rule, row = hit
                if amt is None:
                    leg = self.make_leg(j["entry"]["station"], j["exit"]["station"], j["entry"]["t"], j["exit"]["t"])
                    matched = self.leg_rules(leg)
                    if matched:
                        notes.append("fare_leg_rules.txt line %d matches %s -> %s but fare product %s has no row for "
                                     "rider category %s on offgate's fare media"
                                     % (matched[0]["line"], j["entry"]["station"], j["exit"]["station"],
                                        matched[0]["fare_product_id"], cat or "-"))
                    else:
                        notes.append("no fare_leg_rules.txt row prices %s -> %s"
                                     % (j["entry"]["station"], j["exit"]["station"]))
                    amt = 0
                elif rule["fare_product_id"] in passes:
                    notes.append("covered by pass %s" % rule["fare_product_id"])
                elif row is not None and row["rider_category_id"] not in (cat, ""):
                    notes.append("no %s product for rider category %s: category %s's fare"
                                 % (rule["fare_product_id"], cat, row["rider_category_id"]))
            elif j["kind"] == "incomplete":
                if self.cfg["incomplete_fare"] == "max":
                    key = ("max",) + self.price_key(j["entry"]["station"], None, j["entry"]["t"], j["entry"]["t"], cat, ())
                    hit = self._memo.get(key)
                    if hit is None:
                        hit = self._memo[key] = self.max_fare(j["entry"]["station"], j["entry"]["t"], cat)
                    amt, rule, row = hit
                    notes.append("incomplete: maximum fare from %s" % j["entry"]["station"])
                    if amt is None:
                        amt = 0
                else:
                    amt, rule, row = self.cfg["incomplete_fare"], None, None
                    notes.append("incomplete: configured fare")
            else:
                amt, rule, row = self.cfg["unmatched_exit_fare"], None, None
                notes.append("exit with no entry")
            if amt < 0:  # a negative product (the reference allows them for discounts) is no leg fare
                notes.append("negative fare %d charged as 0" % amt)
                amt = 0
            j["fare"] = amt
            if rule is not None:
                j["leg_rule"] = {"line": rule["line"], "leg_group_id": rule["leg_group_id"],
                                 "fare_product_id": rule["fare_product_id"], "rule_priority": rule["rule_priority"]}
                j["product"] = rule["fare_product_id"]
            j["charge"] = amt
            j["notes"] = notes
        complete = [j for j in journeys if j["kind"] == "complete"]
        self._joins(complete, creds)
        self._transfers(complete)
        self._caps(journeys)
        for j in journeys:
            j["explain"] = explain(j)
        return journeys, pending

    def passes(self, cred):
        """The fare_product_ids a credential ({"product": offgate product number}) has paid for."""
        return (self.cfg["products"].get(str(cred.get("product")), {}) or {}).get("passes", ())

    # ------------------------------------------------------------------ joined legs
    def _same_stop(self, station, stop_id):
        """True if a gate's station is stop_id, its parent station, or a stop of it."""
        par = self.table["parent_station"]
        return station == stop_id or par.get(station) == stop_id or par.get(stop_id) == station \
            or (par.get(station) is not None and par.get(station) == par.get(stop_id))

    def _join_rule(self, prev, cur):
        """The first fare_leg_join_rules.txt row joining journey `prev` to the next one `cur`: the
        networks of their entry stations, prev's exit stop and cur's entry stop (the rule's, or
        the same station when it names none), within max_journey_s of the first entry."""
        for r in self.table.get("join_rules", ()):
            if self.network(prev["entry"]["station"]) != r["from_network_id"] \
                    or self.network(cur["entry"]["station"]) != r["to_network_id"]:
                continue
            a, b = prev["exit"]["station"], cur["entry"]["station"]
            if r["from_stop_id"]:
                if not (self._same_stop(a, r["from_stop_id"]) and self._same_stop(b, r["to_stop_id"])):
                    continue
            elif not self._same_stop(a, b):
                continue
            return r
        return None

    def _joins(self, legs, creds):
        """fare_leg_join_rules.txt: consecutive journeys a join rule matches are one effective fare
        leg, priced from the first entry to the last exit (the reference: departure area and start
        time of the first leg, arrival area and end time of the last). The first journey keeps its
        own fare; each joined one is charged what the effective leg costs beyond the fares of the
        journeys before it in the chain (never below 0), and is no transfer."""
        if not self.table.get("join_rules"):
            return
        head, paid = None, 0
        for prev, cur in zip([None] + legs[:-1], legs):
            r = None
            if prev is not None and not prev.get("unpriced") and not cur.get("unpriced"):
                start = head or prev
                if cur["exit"]["t"] - start["entry"]["t"] <= self.cfg["max_journey_s"]:
                    r = self._join_rule(prev, cur)
            if r is None:
                head, paid = cur, cur["fare"]
                continue
            passes = self.passes(creds.get(cur["cti"]) or {})
            leg = self.make_leg(head["entry"]["station"], cur["exit"]["station"], head["entry"]["t"], cur["exit"]["t"])
            amt, rule, row = self.price_leg(leg, cur["category"], passes)
            if amt is None:
                head, paid = cur, cur["fare"]
                continue
            amt = max(0, amt)
            cur["fare"] = cur["charge"] = max(0, amt - paid)
            paid += cur["fare"]
            cur["joined"] = {"line": r["line"], "from": head["entry"]["station"], "fare": amt}
            cur["leg_rule"] = {"line": rule["line"], "leg_group_id": rule["leg_group_id"],
                               "fare_product_id": rule["fare_product_id"], "rule_priority": rule["rule_priority"]}
            cur["product"] = rule["fare_product_id"]
            cur["notes"] = [n for n in cur["notes"] if not n.startswith("no fare_leg_rules.txt row")] + [
                "joined to the journey before by fare_leg_join_rules.txt line %d: %s -> %s is one leg, %d"
                % (r["line"], head["entry"]["station"], cur["exit"]["station"], amt)]

    def _transfers(self, legs):
        if not self.table["transfer_rules"]:
            return
        first = None
        count = 0
        prev = None
        for cur in legs:
            if cur.get("joined") and prev is not None:
                prev = cur  # part of the effective leg before: no transfer, its leg group goes on
                continue
            if prev is not None and self.cal.week(prev["t"]) != self.cal.week(cur["t"]):
                prev = None  # no transfer across the start of a service week (settle.py re-rates by week)
            if prev is not None and first is not None:
                rules = self._transfer_rule(prev, cur, first, count)
                best = None
                for r in rules:
                    ab = 0
                    if r["fare_product_id"]:
                        ab, _ = self.product_amount(r["fare_product_id"], cur["category"])
                        if ab is None:
                            continue
                    t = r["fare_transfer_type"]
                    # type 2 (AB) replaces the first leg's fare only; on a later transfer of the
                    # sub-journey it adds like type 0 ("S + BC", the reference's 3-leg table)
                    charge = ab if t == 0 else ab + cur["fare"] if t == 1 else ab - prev["charge"] if count == 0 else ab
                    charge = max(0, charge)
                    if best is None or (charge, r["line"]) < (best[0], best[1]["line"]):
                        best = (charge, r, ab)
                if best is not None:
                    cur["charge"] = best[0]
                    cur["transfer"] = {"line": best[1]["line"], "fare_transfer_type": best[1]["fare_transfer_type"],
                                       "fare_product_id": best[1]["fare_product_id"], "amount": best[2],
                                       "from_leg_group_id": best[1]["from_leg_group_id"],
                                       "to_leg_group_id": best[1]["to_leg_group_id"]}
                    count += 1
                    prev = cur
                    continue
            first, count, prev = cur, 0, cur

    def cap_for(self, category):
        return self.caps.get(category) or self.caps.get("*")

    def _caps(self, journeys):
        day_tot, week_tot = {}, {}
        for j in journeys:
            j["charged"] = j["charge"]
            counts = j["kind"] == "complete" or (j["kind"] == "incomplete" and self.cfg["incomplete_counts_toward_caps"])
            cap = self.cap_for(j["category"])
            j["service_date"] = self.cal.service_date(j["t"]).isoformat()
            if not counts or cap is None:
                continue
            dk = (j["category"], j["service_date"])
            wk = (j["category"], self.cal.week(j["t"]).isoformat())
            left, kind = None, None
            if cap.get("daily") is not None:
                left, kind = cap["daily"] - day_tot.get(dk, 0), "daily"
            if cap.get("weekly") is not None:
                w = cap["weekly"] - week_tot.get(wk, 0)
                if left is None or w < left:
                    left, kind = w, "weekly"
            charged = j["charge"] if left is None else max(0, min(j["charge"], left))
            if charged < j["charge"]:
                j["cap"] = {"kind": kind, "amount": cap[kind], "rider_category_id": j["category"],
                            "reduction": j["charge"] - charged}
            j["charged"] = charged
            day_tot[dk] = day_tot.get(dk, 0) + charged
            week_tot[wk] = week_tot.get(wk, 0) + charged


def pair(taps, max_journey_s, now):
    """(journeys, pending) from one account's taps (module docstring, step 1)."""
    taps = sorted(taps, key=tap_key)
    by_cred = {}
    for tp in taps:
        by_cred.setdefault(bytes(tp["cti"]), []).append(tp)
    journeys = []
    loose_entries, loose_exits, entries_all = [], [], []
    for cti, lst in by_cred.items():
        open_e = None
        for tp in lst:
            d = tp["direction"] or "both"
            if open_e is not None and tp["t"] - open_e["t"] > max_journey_s:
                loose_entries.append(open_e)
                open_e = None
            if d == "entry" or (d == "both" and open_e is None):
                if open_e is not None:
                    loose_entries.append(open_e)  # another entry: the first journey never ended
                open_e = tp
                entries_all.append(tp)
            elif open_e is not None:
                journeys.append(_journey("complete", open_e, tp))
                open_e = None
            else:
                loose_exits.append(tp)
        if open_e is not None:
            loose_entries.append(open_e)
    # by account: an entry of one credential ended by an exit of another, no entry between
    entries_all.sort(key=tap_key)
    loose_entries.sort(key=tap_key)
    loose_exits.sort(key=tap_key)
    used = set()
    left_exits = []
    for x in loose_exits:
        match = None
        for e in loose_entries:
            k = tap_key(e)
            if k in used or bytes(e["cti"]) == bytes(x["cti"]) or not (e["t"] <= x["t"] <= e["t"] + max_journey_s) \
                    or tap_key(e) >= tap_key(x):
                continue
            if any(tap_key(e) < tap_key(o) < tap_key(x) for o in entries_all):
                continue
            match = e  # the latest eligible entry wins (loop keeps the last)
        if match is not None:
            used.add(tap_key(match))
            j = _journey("complete", match, x)
            j["paired_by"] = "account"
            journeys.append(j)
        else:
            left_exits.append(x)
    pending = []
    for e in loose_entries:
        if tap_key(e) in used:
            continue
        if now - e["t"] <= max_journey_s:
            pending.append(e)
        else:
            journeys.append(_journey("incomplete", e, None))
    for x in left_exits:
        journeys.append(_journey("unmatched_exit", None, x))
    journeys.sort(key=lambda j: tap_key(j["entry"] or j["exit"]))
    return journeys, pending


def _journey(kind, entry, exit_):
    first = entry or exit_
    return {"kind": kind, "entry": entry, "exit": exit_, "cti": bytes(first["cti"]), "t": first["t"],
            "key": (first["gate"], first["seq"]), "paired_by": "credential" if kind == "complete" else None}


def explain(j):
    """One line naming what made the charge."""
    parts = []
    if j["kind"] == "complete":
        parts.append("%s -> %s" % (j["entry"]["station"], j["exit"]["station"]))
    elif j["kind"] == "incomplete":
        parts.append("%s -> ? (no exit)" % j["entry"]["station"])
    else:
        parts.append("? -> %s (no entry)" % j["exit"]["station"])
    lr = j.get("leg_rule")
    if lr:
        parts.append("fare_leg_rules.txt line %d%s: %s %d" % (lr["line"], " (%s)" % lr["leg_group_id"] if lr["leg_group_id"] else "",
                                                               lr["fare_product_id"], j["fare"]))
    else:
        parts.append("fare %d" % j["fare"])
    tr = j.get("transfer")
    if tr:
        parts.append("transfer fare_transfer_rules.txt line %d (type %d%s): %d"
                     % (tr["line"], tr["fare_transfer_type"], ", %s" % tr["fare_product_id"] if tr["fare_product_id"] else "",
                        j["charge"]))
    cap = j.get("cap")
    if cap:
        parts.append("%s cap %d (rider category %s): -%d" % (cap["kind"], cap["amount"], cap["rider_category_id"] or "-",
                                                            cap["reduction"]))
    parts += j.get("notes", [])
    parts.append("charged %d" % j["charged"])
    return "; ".join(parts)
