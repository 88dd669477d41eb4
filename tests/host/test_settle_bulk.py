"""Settlement's bulk paths (issue #13, PostgreSQL speed): set_journey_charges_many reads once and
writes once for a whole chunk of accounts, and must give exactly what charging one account at a
time gives (money rules of docs/fares.md); Database.insert_new skips conflicts and counts the rows
it inserted; a failure after the bulk writes leaves nothing half-committed. SQLite and PostgreSQL."""
import pytest

from offgate_host.wire import keys
from offgate_host.wire.formats import parse_credential

from ledgerhelp import NOW, backoffice_on


@pytest.fixture(params=["sqlite", "postgresql"])
def bo(request, tmp_path):
    b = backoffice_on(request.param, tmp_path / "bo")
    b.init_issuer("t", valid_from=NOW - 86400)
    yield b
    b.close()


def _account(bo, name, balance, caps):
    bo.create_account(name, balance=balance, credit=100)
    return [parse_credential(bo.issue_credential(name, keys.pub_bytes(keys.generate()), zones=[1], now=NOW,
                                                 valid_seconds=86400, cap=cap))["cti"] for cap in caps]


def _rounds(gate, ctis):
    a, b = ctis
    # new charges; then re-rated (a difference, a journey gone: refunded, a new one); the third
    # round takes the account below its credit limit (overdrawn flags)
    return [[(gate, 1, a, NOW + 10, 400), (gate, 2, b, NOW + 20, 300), (gate, 3, a, NOW + 30, 700)],
            [(gate, 1, a, NOW + 10, 250), (gate, 3, a, NOW + 30, 900), (gate, 4, b, NOW + 40, 500)],
            [(gate, 1, a, NOW + 10, 250), (gate, 3, a, NOW + 30, 900), (gate, 4, b, NOW + 40, 500),
             (gate, 5, a, NOW + 50, 2000)]]


def _state(bo, name, ctis):
    a = bo.get_account(name)
    holds = {h["cti"]: (h["amount"], h["used"], h["state"]) for h in bo.holds(name)}
    return (a["balance"], [holds[c] for c in ctis], sorted(v for v in bo.net_charges(name).values()),
            [bo.charged_total(c) for c in ctis])


def test_many_accounts_at_once_equal_one_at_a_time(bo):
    caps = (1200, 800)
    together = {n: _account(bo, n, 2000, caps) for n in ("m1", "m2", "m3")}
    alone = {n: _account(bo, n, 2000, caps) for n in ("s1", "s2", "s3")}
    gate = {n: g for g, n in enumerate(sorted(together) + sorted(alone), start=1)}
    seen = []
    for r in range(3):
        res_many = bo.set_journey_charges_many([(n, NOW, _rounds(gate[n], together[n])[r]) for n in sorted(together)],
                                               now=NOW + 100 * (r + 1), regime=1)
        res_one = [bo.set_journey_charges(n, NOW, _rounds(gate[n], alone[n])[r], now=NOW + 100 * (r + 1), regime=1)
                   for n in sorted(alone)]
        strip = [[{k: v for k, v in c.items() if k != "account"} for c in res] for res in res_many]
        assert strip == [[{k: v for k, v in c.items() if k != "account"} for c in res] for res in res_one]
        seen += [c for res in res_many for c in res]
    assert any(c["overdrawn"] for c in seen) and any(c.get("vanished") for c in seen)
    assert any(c["charged_total"] is not None and c["charged_total"] > c["cap"] for c in seen)  # over its cap
    for m, s in zip(sorted(together), sorted(alone)):
        assert _state(bo, m, together[m]) == _state(bo, s, alone[s])


def test_one_account_twice_in_a_call_sees_its_first_entry(bo):
    ctis = _account(bo, "a", 5000, (3000, 2000))
    first, second = _rounds(1, ctis)[:2]
    res = bo.set_journey_charges_many([("a", NOW, first), ("a", NOW, second)], now=NOW + 100, regime=1)
    assert sum(c["delta"] for c in res[0]) == 1400
    assert sum(c["delta"] for c in res[1]) == 1650 - 1400
    assert _state(bo, "a", ctis)[0] == 5000 - 1650


def test_insert_new_counts_only_new_rows(bo):
    from offgate_host.ledger.ledger import Ledger
    led = Ledger.for_backoffice(bo)
    cti = bytes(8)
    row = ("cap_exceeded", cti, 0, 1, 1, None, None, "d", NOW)
    with led.db:
        assert led.flag_fraud_many([row, row[:4] + (2,) + row[5:]]) == 2
        assert led.flag_fraud_many([row, row[:4] + (3,) + row[5:], row[:4] + (3,) + row[5:]]) == 1
        assert led.note_anomalies([(1, 1, "no_place", "d", NOW), (1, 1, "no_place", "d", NOW)]) == 1
    assert led.db.execute("SELECT COUNT(*) FROM ledger_fraud").fetchone()[0] == 3


def test_a_failure_after_the_bulk_writes_commits_nothing(bo):
    ctis = _account(bo, "a", 5000, (3000, 2000))
    before = _state(bo, "a", ctis)
    with pytest.raises(RuntimeError):
        with bo.db:
            bo.set_journey_charges_many([("a", NOW, _rounds(1, ctis)[0])], now=NOW + 100, regime=1)
            assert _state(bo, "a", ctis) != before  # written, in the open transaction
            raise RuntimeError("settlement interrupted")
    assert _state(bo, "a", ctis) == before
    assert bo.db.execute("SELECT COUNT(*) FROM charges").fetchone()[0] == 0
