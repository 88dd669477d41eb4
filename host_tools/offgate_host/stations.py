"""Which station each gate stands in: the operator's own map, kept in the ledger database.

Statistics (stats.py) count passages per station and receipts (receipts.py) name the station of
each trip. A gate with no entry is its own station, named "gate N". Table `gate_stations`
(SQLite or PostgreSQL, through the ledger's adapter).
"""

SCHEMA = """
CREATE TABLE IF NOT EXISTS gate_stations (
    gate     BIGINT PRIMARY KEY,
    station  TEXT NOT NULL
);
"""


def _ensure(led):
    led.db.ensure("stations", SCHEMA)


def default_name(gate) -> str:
    return "gate %d" % int(gate)


def set_station(led, gate, station) -> None:
    """Put gate `gate` (int) in station `station` (non-empty text). Raises ValueError."""
    if isinstance(gate, bool) or not isinstance(gate, int) or gate < 0:
        raise ValueError("gate id must be a non-negative integer, got %r" % (gate,))
    if not isinstance(station, str) or not station.strip():
        raise ValueError("station name must be non-empty text")
    _ensure(led)
    led.db.execute("INSERT INTO gate_stations (gate, station) VALUES (?, ?) "
                   "ON CONFLICT (gate) DO UPDATE SET station = excluded.station", (gate, station.strip()))
    led.db.commit()


def station_map(led) -> dict:
    """{gate: station name} for every mapped gate."""
    _ensure(led)
    return {int(r["gate"]): r["station"] for r in led.db.rows("SELECT gate, station FROM gate_stations")}


def station_of(mapping: dict, gate) -> str:
    return mapping.get(int(gate)) or default_name(gate)
