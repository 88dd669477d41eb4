"""Offgate's own fare settings: what GTFS-Fares v2 does not say (docs/fares.md, "Fare config").

GTFS has no capping, no journey pairing and no incomplete-journey rule, so these are the
operator's settings, kept with each fare table version (a JSON object, all keys optional):

  timezone            IANA zone fares are reckoned in (default: the feed's agency_timezone, else UTC)
  service_day_start   "HH:MM" local time a service day starts (default "04:30", as TfL): a tap at
                      01:00 belongs to the previous day's cap
  max_journey_s       seconds an exit may follow its entry (default 10800); later = incomplete
  incomplete_fare     "max" (the highest fare from the entry station, default) or minor units
  incomplete_counts_toward_caps   default false
  unmatched_exit_fare minor units charged for an exit with no entry (default 0: flagged only)
  network_id          the route network of every gate's legs (fare_leg_rules.network_id), default "";
                      one of the feed's networks (networks.txt, routes.network_id) if it defines any
  station_networks    {station: network_id} overriding network_id per station (same check)
  fare_media_ids      fare media whose products apply to offgate codes (default: media of type 4,
                      mobile app, and products without a medium; if the feed has no type-4 medium,
                      every medium, the cheapest product chosen)
  products            {"<offgate product number>": {"passes": [fare_product_id, ...]}}: fare
                      products a credential of that product has already paid for (legs priced
                      with one of them cost 0)
  default_rider_category  rider_category_id for credentials without one (default: the feed's
                      is_default_fare_category=1, else none)
  caps                [{"rider_category_id": "0" or "*", "daily": minor units, "weekly": minor units}]
"""
import json
import re
import zoneinfo
from ..errors import OffgateError

DEFAULTS = {
    "timezone": None,
    "service_day_start": "04:30",
    "max_journey_s": 10800,
    "incomplete_fare": "max",
    "incomplete_counts_toward_caps": False,
    "unmatched_exit_fare": 0,
    "network_id": "",
    "station_networks": {},
    "fare_media_ids": None,
    "products": {},
    "default_rider_category": None,
    "caps": [],
}


class FareConfigError(OffgateError, ValueError):
    pass


def _minor(name, v, allow_none=False):
    if v is None and allow_none:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise FareConfigError("fare config %s: must be a non-negative integer (minor units), got %r" % (name, v))
    return v


def validate(raw, table=None):
    """A complete fare config from `raw` (dict), checked against the fare table (dict from
    feed.read_feed) when given. Raises FareConfigError naming the setting."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise FareConfigError("fare config must be a JSON object")
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        raise FareConfigError("fare config: unknown setting(s) %s" % ", ".join(unknown))
    cfg = dict(DEFAULTS)
    cfg.update(raw)
    tz = cfg["timezone"] or (table or {}).get("timezone") or "UTC"
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise FareConfigError("fare config timezone: unknown time zone %r" % tz) from None
    cfg["timezone"] = tz
    m = re.match(r"^([01]\d|2[0-3]):([0-5]\d)$", str(cfg["service_day_start"]))
    if not m:
        raise FareConfigError("fare config service_day_start: must be HH:MM, got %r" % cfg["service_day_start"])
    cfg["day_start_s"] = int(m.group(1)) * 3600 + int(m.group(2)) * 60
    mj = cfg["max_journey_s"]
    if isinstance(mj, bool) or not isinstance(mj, int) or mj <= 0:
        raise FareConfigError("fare config max_journey_s: must be a positive integer (seconds), got %r" % mj)
    if cfg["incomplete_fare"] != "max":
        _minor("incomplete_fare", cfg["incomplete_fare"])
    if not isinstance(cfg["incomplete_counts_toward_caps"], bool):
        raise FareConfigError("fare config incomplete_counts_toward_caps: must be true or false")
    _minor("unmatched_exit_fare", cfg["unmatched_exit_fare"])
    if not isinstance(cfg["network_id"], str) or not isinstance(cfg["station_networks"], dict):
        raise FareConfigError("fare config network_id must be a string, station_networks an object")
    nets = (table or {}).get("networks") or {}
    if nets:
        # the feed defines its networks (networks.txt or routes.network_id): a gate's must be one
        for where, n in [("network_id", cfg["network_id"])] + [("station_networks[%r]" % k, v)
                                                               for k, v in sorted(cfg["station_networks"].items())]:
            if not isinstance(n, str) or (n and n not in nets):
                raise FareConfigError("fare config %s: unknown network_id %r (the feed's networks: %s)"
                                      % (where, n, ", ".join(sorted(nets))))
    products = {p["fare_product_id"] for p in (table or {}).get("fare_products", [])}
    media = (table or {}).get("fare_media", {})
    if cfg["fare_media_ids"] is not None:
        if not isinstance(cfg["fare_media_ids"], list) or not all(isinstance(x, str) for x in cfg["fare_media_ids"]):
            raise FareConfigError("fare config fare_media_ids: must be a list of fare_media_id strings")
        for x in cfg["fare_media_ids"]:
            if table is not None and x not in media:
                raise FareConfigError("fare config fare_media_ids: unknown fare_media_id %r" % x)
    if not isinstance(cfg["products"], dict):
        raise FareConfigError("fare config products: must be an object {product number: {passes: [...]}}")
    for k, v in cfg["products"].items():
        if not re.match(r"^\d+$", str(k)) or not isinstance(v, dict) or not isinstance(v.get("passes", []), list):
            raise FareConfigError("fare config products[%r]: must be {\"passes\": [fare_product_id, ...]}" % k)
        for p in v.get("passes", []):
            if table is not None and p not in products:
                raise FareConfigError("fare config products[%r]: unknown fare_product_id %r" % (k, p))
    cats = (table or {}).get("rider_categories", {})
    if cfg["default_rider_category"] is None:
        cfg["default_rider_category"] = next((c for c, v in sorted(cats.items()) if v["default"]), None)
    elif table is not None and cfg["default_rider_category"] not in cats:
        raise FareConfigError("fare config default_rider_category: unknown rider_category_id %r"
                              % cfg["default_rider_category"])
    if not isinstance(cfg["caps"], list):
        raise FareConfigError("fare config caps: must be a list")
    seen = set()
    for i, c in enumerate(cfg["caps"]):
        if not isinstance(c, dict) or set(c) - {"rider_category_id", "daily", "weekly"}:
            raise FareConfigError("fare config caps[%d]: must be {rider_category_id, daily, weekly}" % i)
        cat = str(c.get("rider_category_id", "*"))
        if table is not None and cat != "*" and cat not in cats:
            raise FareConfigError("fare config caps[%d]: unknown rider_category_id %r" % (i, cat))
        if cat in seen:
            raise FareConfigError("fare config caps[%d]: a second cap for rider category %r" % (i, cat))
        seen.add(cat)
        _minor("caps[%d].daily" % i, c.get("daily"), allow_none=True)
        _minor("caps[%d].weekly" % i, c.get("weekly"), allow_none=True)
    return cfg


def load(path):
    """The raw fare config object from a JSON file; FareConfigError if unreadable."""
    try:
        with open(path) as f:
            return json.load(f)
    except OSError as e:
        raise FareConfigError("cannot read fare config %s: %s" % (path, e.strerror or e)) from None
    except ValueError as e:
        raise FareConfigError("fare config %s is not valid JSON: %s" % (path, e)) from None


def raw_of(cfg):
    """The settings of a validated config as the operator would write them (no derived keys)."""
    return {k: cfg[k] for k in DEFAULTS}
