"""Money across pricing regimes (issue #13, docs/fares.md "Settled is final"): the flat fare, then
a fare table, then another version; settlements interrupted. A settled charge never changes: a
re-rating is a correction line with its reason; balance = the statement's lines; every printed
figure is the balance change."""
import random
from collections import Counter

import pytest
from hypothesis import given, settings, strategies as st

from offgate_host.backoffice.backoffice import BackOffice
from offgate_host.ledger.ledger import Ledger

from offgate_host.fares import settle as fare_settle
from offgate_host.fares import store
from offgate_host.fares.feed import read_feed

from test_fares import W, ZAK, World, _zak_world, at, world  # noqa: F401  (world: the fixture)

_ZAK = read_feed(ZAK)


def _lines(bo, account):
    """The statement's lines that move money, as (kind, amount, detail): what may never change."""
    return [(m["kind"], m["amount"], m["detail"]) for m in bo.statement(account)]


def _kept(old, new):
    """Every line of the earlier statement is still there, unchanged (lines sort by time, so new
    ones may come between)."""
    return not (Counter(old) - Counter(new))


def _books(bo, account):
    st = bo.statement(account)
    assert st[-1]["balance"] == bo.get_account(account)["balance"]
    return st


def _settle(w, now):
    """Settle; the printed change must be exactly the balance change of all accounts."""
    before = sum(a["balance"] for a in w.bo.list_accounts())
    s = w.led.settle(w.bo, now=now)
    after = sum(a["balance"] for a in w.bo.list_accounts())
    assert before - after == s["charged"], s
    return s


def test_flat_then_fare_table_keeps_settled_charges(world):
    """The newcomer's run: trips charged flat, a fare table loaded, settle again."""
    w = world
    _zak_world(w)
    cti = w.cred("rider")
    t = at(W, 2026, 6, 1, 8)
    w.tap(10, t, cti)              # 100 -> 120 (area 1 -> 3)
    w.tap(22, t + 1200, cti)
    w.sync_all()
    s = _settle(w, t + 4000)        # flat: 250 per passage
    assert s["charged"] == 500 and "journeys" not in s
    old = _lines(w.bo, "rider")
    store.add_version(w.led.db, ZAK, _ZAK, {})
    w.tap(10, t + 3600, cti)       # a second ride, priced by the table
    w.tap(22, t + 4800, cti)
    w.sync_all()
    s = _settle(w, t + 86400)
    assert s["journeys"] == 1 and s["charged"] == 500  # zakroczym 1 -> 3 single fare
    new = _lines(w.bo, "rider")
    assert _kept(old, new)    # nothing settled before changed, no line lost its amount
    _books(w.bo, "rider")
    assert w.bo.get_account("rider")["balance"] == 100000 - 1000
    s = _settle(w, t + 86400)       # and again: nothing
    assert s["charged"] == 0 and _lines(w.bo, "rider") == new


def test_exit_after_a_flat_entry_is_not_charged_again(world):
    """An entry charged flat, its exit synced after the table was loaded: the journey was paid."""
    w = world
    _zak_world(w)
    cti = w.cred("rider")
    t = at(W, 2026, 6, 1, 8)
    w.tap(10, t, cti)
    w.tap(22, t + 1200, cti)
    w.sync(10)
    _settle(w, t + 600)
    store.add_version(w.led.db, ZAK, _ZAK, {})
    w.sync(22)
    s = _settle(w, t + 86400)
    assert s["charged"] == 0 and s["unmatched_exits"] == 0
    assert w.bo.get_account("rider")["balance"] == 100000 - 250
    _books(w.bo, "rider")


def test_new_version_does_not_reprice_the_old_versions_journeys(world):
    w = world
    _zak_world(w)
    cti = w.cred("rider")
    store.add_version(w.led.db, ZAK, _ZAK, {"max_journey_s": 7200})
    t = at(W, 2026, 6, 1, 8)
    w.tap(12, t, cti)               # entry in area 3, no exit synced: incomplete, maximum fare
    w.sync_all()
    s = _settle(w, t + 8000)
    assert s["incomplete"] == 1 and s["charged"] == 500
    old = _lines(w.bo, "rider")
    store.add_version(w.led.db, ZAK, _ZAK, {"max_journey_s": 7200, "incomplete_fare": 900})
    w.tap(21, t + 1200, cti)        # the late exit arrives under version 2: the v1 charge stands
    w.tap(10, t + 9000, cti)
    w.tap(21, t + 9600, cti)        # a new ride under version 2: area 1 -> 2, 400
    w.sync_all()
    s = _settle(w, t + 86400)
    assert s["version"] == 2 and s["charged"] == 400 and s["journeys"] == 1
    assert _kept(old, _lines(w.bo, "rider"))
    assert w.bo.get_account("rider")["balance"] == 100000 - 900
    _books(w.bo, "rider")


def test_same_version_rerating_is_a_correction_line(world):
    """Within one version a late exit still refunds the maximum fare down to the real fare, as a
    correction line with its reason; the original charge line keeps its amount."""
    w = world
    _zak_world(w)
    cti = w.cred("rider")
    store.add_version(w.led.db, ZAK, _ZAK, {"max_journey_s": 7200})
    t = at(W, 2026, 6, 1, 8)
    w.tap(12, t, cti)
    w.tap(21, t + 1200, cti)
    w.sync(12)
    _settle(w, t + 8000)
    old = _lines(w.bo, "rider")
    assert [ln[:2] for ln in old if ln[0] == "trip"] == [("trip", -500)]
    w.sync(21)
    s = _settle(w, t + 9000)
    assert s["charged"] == -100
    new = _lines(w.bo, "rider")
    assert _kept(old, new)
    corr = [ln for ln in new if ln[0] == "correction"]
    assert len(corr) == 1 and corr[0][1] == 100 and "re-rated by fare table version 1" in corr[0][2]
    assert w.charges() == {(12, 1): 400}
    _books(w.bo, "rider")


# ---------------------------------------------------------------------------- property (seeded)
STOPS = {"1": "100", "2": "117", "3": "120"}


@pytest.mark.parametrize("seed", range(6))
def test_random_taps_across_random_fare_loads_keep_the_books(world, seed):
    """Random taps of two accounts synced in random pieces, settled at random times (some
    settlements interrupted after their first account), with the flat fare first and fare table
    versions loaded at random moments: after each settlement every account's balance equals its
    statement, the printed change equals the balance change, and no earlier statement line
    changed."""
    _random_run(world, random.Random(seed))


@settings(max_examples=12, deadline=None)
@given(st.randoms(use_true_random=False))
def test_property_books_balance_across_fare_loads(tmp_path_factory, rnd):
    """The same, with hypothesis drawing the run (SQLite; the seeded runs above cover both)."""
    bo = BackOffice(tmp_path_factory.mktemp("reg") / "bo")
    bo.init_issuer("t", valid_from=at(W, 2026, 1, 1, 0))
    led = Ledger.for_backoffice(bo)
    try:
        _random_run(World(bo, led), rnd)
    finally:
        led.close()
        bo.close()


def _random_run(w, rnd):
    _zak_world(w)
    ctis = {"a": [w.cred("a"), w.cred("a")], "b": [w.cred("b")]}
    t = at(W, 2026, 6, 1, 5)
    plan = []
    for _ in range(rnd.randint(10, 30)):
        t += rnd.randint(120, 4 * 3600)
        acct = rnd.choice("ab")
        plan.append((rnd.choice([10, 11, 12, 20, 21, 22]), t, rnd.choice(ctis[acct])))
    seen = {"a": [], "b": []}
    versions = 0
    for i, (g, tt, c) in enumerate(plan):
        w.tap(g, tt, c)
        if rnd.random() < 0.3:
            w.sync(rnd.choice(sorted(w.gates)))
        if rnd.random() < 0.15 and versions < 3:
            cfg = rnd.choice([{}, {"max_journey_s": 7200}, {"incomplete_fare": 700},
                              {"caps": [{"rider_category_id": "*", "daily": 1200}]}])
            store.add_version(w.led.db, ZAK, _ZAK, cfg)
            versions += 1
        if rnd.random() < 0.35:
            now = tt + rnd.randint(0, 3 * 3600)
            if versions and rnd.random() < 0.3:
                _interrupted_settle(w, now)
            _settle(w, now)
            for acct in seen:
                lines = _lines(w.bo, acct)
                assert _kept(seen[acct], lines)
                seen[acct] = lines
                _books(w.bo, acct)
    w.sync_all()
    _settle(w, t + 86400)
    s = _settle(w, t + 86400)
    assert s["charged"] == 0
    for acct in seen:
        assert _kept(seen[acct], _lines(w.bo, acct))
        _books(w.bo, acct)


def _interrupted_settle(w, now):
    """A fare settlement that dies after its first chunk's money and marks (one account per chunk)."""
    real, calls = fare_settle._apply, []

    def dying(*a, **k):
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*a, **k)
    chunk = fare_settle.CHUNK_ACCOUNTS
    fare_settle._apply, fare_settle.CHUNK_ACCOUNTS = dying, 1
    try:
        before = sum(a["balance"] for a in w.bo.list_accounts())
        try:
            w.led.settle(w.bo, now=now)
        except KeyboardInterrupt:
            w.led.db.rollback()
        for a in w.bo.list_accounts():
            _books(w.bo, a["id"])
        assert sum(a["balance"] for a in w.bo.list_accounts()) <= before + 10 ** 6
    finally:
        fare_settle._apply, fare_settle.CHUNK_ACCOUNTS = real, chunk
