"""Gate configuration: defaults, loading from JSON, and validation that names what is wrong.

A gate with a wrong setting must say which one at start-up rather than misbehave at the first scan.
"""
import json

# name: (default, type, minimum). A default of None means the setting is required.
SCHEMA = {
    "gate_id": (None, int, 0),
    "zone": (None, int, 0),
    "max_age_s": (60, int, 1),         # how old a code may be when scanned
    "skew_s": (30, int, 0),            # tolerated clock difference between phone and gate
    "cache_size": (8, int, 0),         # credentials whose issuer signature is already verified (260 B each)
    "replay_slots": (512, int, 16),    # most credentials whose counters the gate remembers (16 B each; 128 held between rushes)
    "max_line": (1024, int, 64),       # longest scanner line accepted
    "line_gap_ms": (300, int, 0),      # a partial line idle this long is dropped (0: never)
    "relay_ms": (500, int, 10),
    "state_dir": ("state", str, None),
    # operation log (docs/oplog.md): 32-byte records in segment files of this size; the default,
    # 4 littlefs blocks of 4 KiB less littlefs' own block pointers, x 62 = 31,558 records in 248
    # blocks (0.97 MiB): 3 days of a 10,000-passage/day gate
    "log_segment_bytes": (16368, int, 128),
    "log_max_segments": (62, int, 1),
    "log_full_policy": ("refuse", str, None),  # when full of unacknowledged records
    # where and which way (docs/fares.md): the GTFS stop_id or area_id of the gate's station, and
    # whether its taps start journeys (entry), end them (exit) or either (both: a bus validator)
    "station": ("", str, None),
    "direction": ("both", str, None),
    # passback (offgate/policy/passback.py): an entry gate refuses a credential that entered here less
    # than passback_s ago (0: off); passback_slots credentials remembered (12 B each)
    "passback_s": (120, int, 0),
    "passback_slots": (128, int, 8),
    # time after a power loss with no trusted clock (offgate.timekeep, docs/security.md "Time")
    "untrusted_time_policy": ("degraded", str, None),
    "degraded_max_s": (86400, int, 0),     # degraded mode lasts at most this long (gate time)
    "degraded_ahead_s": (86400, int, 0),   # how far a code's iat may be ahead of the floor clock
    # no valid deny list (missing, damaged): refuse every code, or admit with the revocations
    # unknown, loudly reported (docs/security.md "Damaged state")
    "deny_list_policy": ("refuse", str, None),
    # how old (since the back office signed it) the deny list may get before it counts as stale,
    # and what a stale list means: "report" (status and boot notes say so) or "refuse" (every code
    # is denied LIST_STALE until a newer list arrives). 0 = no limit.
    "list_max_age_s": (7 * 86400, int, 0),
    "list_stale_policy": ("report", str, None),
}

# Settings limited to a set of values.
CHOICES = {
    "log_full_policy": ("refuse", "admit"),
    "direction": ("entry", "exit", "both"),
    "untrusted_time_policy": ("refuse", "degraded"),
    "deny_list_policy": ("refuse", "admit"),
    "list_stale_policy": ("report", "refuse"),
}


class ConfigError(ValueError):
    pass


def validate(raw):
    """Return a complete config dict from `raw`, or raise ConfigError naming every bad setting."""
    if not isinstance(raw, dict):
        raise ConfigError("config must be a JSON object")
    cfg = {}
    bad = []
    for key, spec in SCHEMA.items():
        default, typ, low = spec
        if key not in raw:
            if default is None:
                bad.append(key + ": missing")
                continue
            cfg[key] = default
            continue
        v = raw[key]
        # bool is an int subclass in CPython: refuse it explicitly for int settings
        if not isinstance(v, typ) or (typ is int and isinstance(v, bool)):
            bad.append("%s: expected %s, got %r" % (key, typ.__name__, v))
            continue
        if low is not None and v < low:
            bad.append("%s: must be >= %d, got %r" % (key, low, v))
            continue
        if key in CHOICES and v not in CHOICES[key]:
            bad.append("%s: must be one of %s, got %r" % (key, "/".join(CHOICES[key]), v))
            continue
        cfg[key] = v
    for key in raw:
        if key not in SCHEMA:
            cfg[key] = raw[key]  # board-specific settings pass through untouched
    if bad:
        raise ConfigError("bad gate config: " + "; ".join(bad))
    return cfg


def read_json(path):
    """The raw JSON object of a config file, or ConfigError saying what is wrong with the file."""
    try:
        with open(path) as f:
            return json.load(f)
    except OSError as e:
        raise ConfigError("cannot read config %s: %s" % (path, e))
    except ValueError as e:
        raise ConfigError("config %s is not valid JSON: %s" % (path, e))


def load(path):
    """The validated config of the JSON file at `path`; a relative state_dir is taken relative to
    the file's own directory (not the process's current directory)."""
    cfg = validate(read_json(path))
    cfg["state_dir"] = resolve(path, cfg["state_dir"])
    return cfg


def resolve(path, rel):
    """`rel` (a path named in the config file at `path`) relative to that file's directory."""
    if rel.startswith("/"):
        return rel
    i = path.rfind("/")
    if i < 0:
        return rel  # the file is in the current directory
    base = path[:i] or "/"
    while rel.startswith("./"):
        rel = rel[2:]
    if rel in ("", "."):
        return base
    return base.rstrip("/") + "/" + rel
