"""Fares as transit systems charge them (docs/fares.md): GTFS-Fares v2 fare tables (feed), offgate's
fare settings (config), the pure fare engine (engine: journeys, leg rules, transfers, caps),
versioned storage in the ledger database (store) and journey settlement (settle)."""
