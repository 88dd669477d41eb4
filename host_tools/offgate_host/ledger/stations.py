"""Which station each gate stands in, as statistics, receipts and the dashboard name it.

The one home of a gate's place is the ledger's registry (`ledger_gate_places`, set by
`offgate gate place GATE STATION DIRECTION` or filled in from the gate's own config at its first
sync; docs/fares.md). Each ledger record is stamped at ingest with the station in effect then:
a record is counted at that station (record_station), never at one registered later; a record
from a gate with no place then, and a gate with no place now, is its own station, "gate N".
"""


def default_name(gate) -> str:
    return "gate %d" % int(gate)


def set_station(led, gate, station, direction=None) -> None:
    """Put gate `gate` (int >= 0) in `station` (a GTFS stop_id/area_id or a name), keeping its
    direction (default "both" for a gate with no place yet). Raises ValueError on a bad value."""
    if isinstance(gate, bool) or not isinstance(gate, int) or gate < 0:
        raise ValueError("gate id must be a non-negative integer, got %r" % (gate,))
    if not isinstance(station, str) or not station.strip():
        raise ValueError("station must be non-empty text")
    cur = led.place(gate)
    led.set_place(gate, station.strip(), direction or (cur["direction"] if cur else "both"))


def station_map(led) -> dict:
    """{gate: station} for every gate with a place (its current one)."""
    return {int(p["gate"]): p["station"] for p in led.places()}  # ordered by since: last wins


def station_of(mapping: dict, gate) -> str:
    """Where `gate` is now: its current place in `mapping` (station_map), else "gate N"."""
    return mapping.get(int(gate)) or default_name(gate)


def record_station(gate, stamped) -> str:
    """Where a ledger record was made: the station stamped on it at ingest, else "gate N"."""
    return stamped or default_name(gate)
