"""Bulk ingest and settlement (issue #13) give the same results as record-by-record: double use
flagged as if each record had been checked when it was stored, whichever path a batch takes
(COPY straight into ledger_records, or staged); bulk charges equal to one charge at a time.
SQLite always, PostgreSQL when OFFGATE_TEST_PG_URL is set."""
import random
import shutil

from offgate_host.backoffice.backoffice import BackOffice
from offgate_host.ledger.ledger import ZERO32, chain_next

from ledgerhelp import NOW, issue, world  # noqa: F401  (world: the SQLite/PostgreSQL fixture)


def _chain(recs):
    prev = ZERO32
    for r in recs:
        r["chain"] = prev = chain_next(prev, r)
    return recs


def test_double_use_matches_a_record_by_record_model(world):  # noqa: F811
    """Random batches on three gates: fresh ascending runs (the COPY path), overlaps with stored
    records, reorders and gaps (the staged path); credentials and counters drawn from a small
    pool so double use is common, also inside one batch. The flags and deny lists must be what
    checking each record against everything stored before it gives."""
    bo, led = world
    rnd = random.Random(13)
    ctis = [bytes([i + 1]) * 8 for i in range(3)]
    gates = {g: _chain([{"seq": s + 1, "t": NOW + s, "cti": rnd.choice(ctis) if s % 4 else None,
                         "ctr": rnd.randrange(1, 6), "decision": "OPEN" if s % 4 else "DENY",
                         "reason": 0 if s % 4 else 14, "missed": 0} for s in range(60)]) for g in (1, 2, 3)}
    for g in gates:
        led.enroll_gate(g, b"\x04" + bytes([g]) * 64)
    stored, want, pos = {}, [], {g: 0 for g in gates}
    while any(pos[g] < 60 for g in gates):
        g = rnd.choice([g for g in gates if pos[g] < 60])
        n = rnd.randrange(1, 12)
        lo = max(0, pos[g] - rnd.choice((0, 0, 0, 3)))          # sometimes again over stored ones
        batch = gates[g][lo:pos[g] + n]
        if len(batch) > 2 and rnd.random() < 0.25:               # sometimes out of order
            batch = batch[:-2] + [batch[-1], batch[-2]]
        if len(batch) > 3 and rnd.random() < 0.2:                # sometimes with a gap inside
            batch = batch[:1] + batch[2:]
        exp_deny = []
        for r in batch:                                          # the model: one record at a time
            if (g, r["seq"]) in stored:
                continue
            if r["decision"] == "OPEN":
                others = sorted(k for k, v in stored.items() if v == (r["cti"], r["ctr"]))
                if others:
                    want.append((g, r["seq"], others[0]))
                    exp_deny.append(r["cti"])
            stored[(g, r["seq"])] = (r["cti"], r["ctr"]) if r["decision"] == "OPEN" else None
        res = led.ingest(g, batch, now=NOW)
        assert sorted(res["deny"]) == sorted(exp_deny)
        pos[g] = max(pos[g], max(r["seq"] for r in batch))
    got = sorted((f["gate"], f["seq"], (f["other_gate"], f["other_seq"])) for f in led.fraud()
                 if f["kind"] == "double_use")
    assert got == sorted(want) and len(want) > 20
    assert len(led.records()) == sum(1 for g in gates for r in gates[g] if (g, r["seq"]) in stored)


def test_bulk_charges_equal_one_at_a_time(tmp_path):
    """charge_trips over many trips (holds used up, a released hold, a credential without a hold
    left, trips already charged, one (gate, seq) twice) returns and stores exactly what charging
    them one by one does."""
    bo = BackOffice(tmp_path / "a")
    bo.init_issuer("t", valid_from=NOW - 86400)
    c1 = issue(bo, "x", balance=3000, cap=700)
    c2 = issue(bo, "x", cap=400, valid=60)
    c3 = issue(bo, "y", balance=900, cap=300)
    bo.release_expired_holds(now=NOW + 120)                      # c2's hold released
    bo.charge_trip(1, 3, c1, NOW, 250, now=NOW)                  # charged before (a crash repaired)
    bo.close()
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    rnd = random.Random(5)
    trips = [(rnd.choice((1, 2)), s, rnd.choice((c1, c2, c3)), NOW + s, rnd.choice((100, 250, 400)))
             for s in range(1, 40)]
    trips.insert(10, trips[4])                                   # the same (gate, seq) again
    one, bulk = BackOffice(tmp_path / "a"), BackOffice(tmp_path / "b")
    r_one = [one.charge_trip(*t, now=NOW + 200) for t in trips]
    r_bulk = bulk.charge_trips(trips, now=NOW + 200)
    assert r_bulk == r_one and sum(r is None for r in r_one) >= 2 and any(r and r["overdrawn"] for r in r_one)
    for q in ("SELECT * FROM charges ORDER BY gate, seq", "SELECT * FROM holds ORDER BY cti",
              "SELECT * FROM accounts ORDER BY id"):
        assert [tuple(r) for r in one.db.execute(q)] == [tuple(r) for r in bulk.db.execute(q)]
    one.close()
    bulk.close()
