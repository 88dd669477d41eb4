"""Journey settlement throughput: N taps (default 100,000) paired into journeys, priced by the
zakroczym GTFS-Fares v2 table with daily and weekly caps, charged to the accounts (docs/fares.md).
Reference in the same run: the flat fare per passage (the ledger without a fare table) on the same
taps. SQLite always; PostgreSQL too when --pg URL (or OFFGATE_TEST_PG_URL) is given. Prints JSON.

    python bench/fares_bench.py [--taps 100000] [--riders 2000] [--pg postgresql://...]

Taps: each rider makes entry/exit pairs between the feed's three areas (entry and exit gates at
one stop of each), ~3 journeys a day over the days needed; 2 % of entries have no exit
(incomplete journeys, maximum fare). Ingested straight into the ledger (chained records per gate,
not timed with the settlement), then one `settle` is timed.
"""
import argparse
import json
import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ZAK = ROOT.parent / "shared" / "gtfs" / "zakroczym"
if not ZAK.is_dir():
    ZAK = Path("/work/shared/gtfs/zakroczym")

from offgate_host.wire import keys  # noqa: E402
from offgate_host.backoffice.backoffice import BackOffice  # noqa: E402
from offgate_host.fares import store  # noqa: E402
from offgate_host.fares.feed import read_feed  # noqa: E402
from offgate_host.wire.formats import parse_credential  # noqa: E402
from offgate_host.ledger.ledger import ZERO32, Ledger, chain_next  # noqa: E402

STOPS = {"1": "100", "2": "117", "3": "120"}
CONFIG = {"caps": [{"rider_category_id": "*", "daily": 1200, "weekly": 4500}], "max_journey_s": 7200}
T0 = 1780290000  # Mon 2026-06-01 ~07:00 Europe/Warsaw


def build_taps(n, riders, seed=1):
    rnd = random.Random(seed)
    per = max(2, n // riders)
    taps = []  # (gate, t, rider)
    for r in range(riders):
        t = T0 + rnd.randrange(0, 3600)
        k = 0
        while k < per:
            a, b = rnd.choice("123"), rnd.choice("123")
            taps.append((10 + int(a), t, r))
            k += 1
            if k < per and rnd.random() > 0.02:
                taps.append((20 + int(b), t + rnd.randrange(600, 3000), r))
                k += 1
            t += rnd.choice((3 * 3600, 4 * 3600, 14 * 3600))
    taps.sort(key=lambda x: x[1])
    return taps[:n]


def setup(bo, led, taps, riders, with_fares):
    for a in "123":
        for g, d in ((10 + int(a), "entry"), (20 + int(a), "exit")):
            led.enroll_gate(g, b"\x04" + bytes([g]) * 64)
            led.set_place(g, STOPS[a], d, now=T0 - 86400)
    bo.init_issuer("bench", valid_from=T0 - 86400, valid_days=400)
    ctis = []
    with bo.db:
        pass
    for r in range(riders):
        acct = "r%05d" % r
        bo.create_account(acct, balance=10 ** 7)
        c = bo.issue_credential(acct, keys.pub_bytes(keys.generate()), zones=[1], valid_seconds=86400 * 60,
                                now=T0 - 3600)
        ctis.append(parse_credential(c)["cti"])
    if with_fares:
        store.add_version(led.db, ZAK, read_feed(ZAK), CONFIG)
    chains = {}
    batches = {}
    for g, t, r in taps:
        seq, prev = chains.get(g, (0, ZERO32))
        rec = {"seq": seq + 1, "t": t, "cti": ctis[r], "ctr": seq + 1, "decision": "OPEN", "reason": 0, "missed": 0}
        rec["chain"] = chain_next(prev, rec)
        chains[g] = (seq + 1, rec["chain"])
        batches.setdefault(g, []).append(rec)
    t0 = time.perf_counter()
    for g, recs in batches.items():
        for i in range(0, len(recs), 200):
            led.ingest(g, recs[i:i + 200], now=T0)
    return time.perf_counter() - t0


def _pg_url(base):
    import psycopg
    schema = "fb_" + uuid.uuid4().hex[:10]
    with psycopg.connect(base, autocommit=True) as c:
        c.execute("CREATE SCHEMA %s" % schema)
    return base + ("&" if "?" in base else "?") + "options=-csearch_path%3D" + schema, schema


def run(kind, n, riders, with_fares, pg=None):
    work = Path(tempfile.mkdtemp(prefix="offgate-fares-bench-"))
    schema = None
    if kind == "pg":  # the one database (issue #13): accounts, charges and the ledger on PostgreSQL
        url, schema = _pg_url(pg)
        bo = BackOffice(work / "bo", db=url)
    else:
        bo = BackOffice(work / "bo")
    led = Ledger.for_backoffice(bo)
    taps = build_taps(n, riders)
    ingest_s = setup(bo, led, taps, riders, with_fares)
    now = max(t for _, t, _ in taps) + 86400
    t0 = time.perf_counter()
    s = led.settle(bo, now=now)
    dt = time.perf_counter() - t0
    charged = sum(net for _charge, net in bo.net_charges().values())  # charges and their corrections
    bo.close()
    if schema:
        import psycopg
        with psycopg.connect(pg, autocommit=True) as c:
            c.execute("DROP SCHEMA %s CASCADE" % schema)
    out = {"taps": len(taps), "riders": riders, "settle_s": round(dt, 2), "taps_per_s": round(len(taps) / dt),
           "ingest_s": round(ingest_s, 2), "charged_total_minor": int(charged)}
    if with_fares:
        out.update(journeys=s["journeys"], incomplete=s["incomplete"], capped=s["capped"])
    else:
        out.update(passages=s["trips"])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--taps", type=int, default=100000)
    ap.add_argument("--riders", type=int, default=2000)
    ap.add_argument("--pg", default=os.environ.get("OFFGATE_TEST_PG_URL"))
    a = ap.parse_args()
    res = {"method": __doc__.strip().splitlines()[0] + " Times: wall clock of one Ledger.settle() call "
                     "(back office and ledger on the one database named).",
           "config": {"taps": a.taps, "riders": a.riders, "fare_config": CONFIG, "feed": "zakroczym"}}
    for kind in (["sqlite"] + (["pg"] if a.pg else [])):
        res[kind] = {"fares": run(kind, a.taps, a.riders, True, a.pg),
                     "flat_fare_reference": run(kind, a.taps, a.riders, False, a.pg)}
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
