"""Versioned fare tables and priced journeys in the ledger database (SQLite or PostgreSQL).

Each `offgate fares load` of a changed feed or config adds a version (never overwrites one): the
parsed GTFS fare table and the offgate fare config, as JSON, with the feed's digest; loading the
newest version's feed and config again adds nothing. Settlement uses the newest version;
every journey records the version it was priced with, so a statement can always say which fare
table charged it.
"""
import json
import time

def add_version(db, source, table, cfg_raw, now=None):
    """Store a new fare table version, even one equal to the newest (load() checks); returns its number."""
    cur = db.execute("INSERT INTO fare_tables (loaded, source, digest, fare_table, config) VALUES (?, ?, ?, ?, ?)"
                     + (" RETURNING version" if db.kind == "pg" else ""),
                     (int(time.time() if now is None else now), str(source), table["digest"],
                      json.dumps(table, sort_keys=True), json.dumps(cfg_raw, sort_keys=True)))
    v = cur.fetchone()[0] if db.kind == "pg" else cur.lastrowid
    db.commit()
    return int(v)


def load(db, source, table, cfg_raw, now=None):
    """What `offgate fares load` stores: (version, created). A fare table or config that differs
    from the newest version's is a new version; the same as the newest's (a second load of the same
    feed, from any path) stores nothing and gives (newest version, False)."""
    r = db.one("SELECT version, fare_table, config FROM fare_tables ORDER BY version DESC LIMIT 1")
    if r is not None and json.loads(r["fare_table"]) == table and json.loads(r["config"]) == cfg_raw:
        return int(r["version"]), False
    return add_version(db, source, table, cfg_raw, now), True


def versions(db):
    return db.rows("SELECT version, loaded, source, digest FROM fare_tables ORDER BY version")


def active(db, version=None):
    """(version, fare table dict, raw config dict) of the newest (or the given) version, or None."""
    if version is None:
        r = db.one("SELECT version, fare_table, config FROM fare_tables ORDER BY version DESC LIMIT 1")
    else:
        r = db.one("SELECT version, fare_table, config FROM fare_tables WHERE version = ?", (version,))
    if r is None:
        return None
    return int(r["version"]), json.loads(r["fare_table"]), json.loads(r["config"])
