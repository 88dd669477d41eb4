"""Money that adds up (issue #13): caps and holds, credit, overdraft flags, top-ups and adjustments
with an audit trail, a statement that reconciles; property tests that the books always balance."""
import time

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offgate_host.wire import keys
from offgate_host.backoffice.backoffice import BackOffice, BackOfficeError, IssueRefused
from offgate_host.cli import main
from offgate_host.ledger.ledger import Ledger

from ledgerhelp import make_records

NOW = int(time.time())


def pub():
    return keys.pub_bytes(keys.generate())


@pytest.fixture
def bo(tmp_path):
    b = BackOffice(tmp_path / "bo")
    b.init_issuer("t", valid_from=NOW - 86400)
    yield b
    b.close()


def books_balance(b, account):
    """The invariants: the statement ends at the balance; every hold's use is what its charges
    took from it; a hold never uses more than it holds."""
    a = b.get_account(account)
    st_ = b.statement(account)
    assert (st_[-1]["balance"] if st_ else 0) == a["balance"]
    audit = sum(m["amount"] for m in st_ if m["kind"] in ("opening", "top-up", "adjustment", "credit"))
    trips = sum(-m["amount"] for m in st_ if m["kind"] in ("trip", "correction"))
    assert audit - trips == a["balance"]
    for h in b.holds(account):
        assert 0 <= h["used"] <= h["amount"]
        if h["state"] == "held":  # after its release a refund goes straight back to the balance
            used = b.db.execute("SELECT COALESCE(SUM(from_hold), 0) FROM charges WHERE cti = ?",
                                (h["cti"],)).fetchone()[0] + b.db.execute(
                "SELECT COALESCE(SUM(from_hold), 0) FROM charge_corrections WHERE cti = ?", (h["cti"],)).fetchone()[0]
            assert h["used"] == used


def test_default_cap_and_never_above_cover(bo):
    bo.create_account("a", balance=1500, credit=300)
    c1 = bo.credential(_cti(bo.issue_credential("a", pub(), zones=[1], now=NOW)))
    assert c1["cap"] == 1000 and bo.coverable("a") == 800  # 1500 + 300 - 1000
    c2 = bo.credential(_cti(bo.issue_credential("a", pub(), zones=[1], now=NOW)))
    assert c2["cap"] == 800 and bo.coverable("a") == 0  # the default, cut to what is left
    with pytest.raises(IssueRefused):
        bo.issue_credential("a", pub(), zones=[1], now=NOW)
    bo.create_account("b", balance=5000)
    with pytest.raises(BackOfficeError, match="more than account 'b' can cover"):
        bo.issue_credential("b", pub(), zones=[1], now=NOW, cap=99999)
    bo.set_default_cap(300)
    assert bo.credential(_cti(bo.issue_credential("b", pub(), zones=[1], now=NOW)))["cap"] == 300
    with pytest.raises(BackOfficeError):
        bo.set_default_cap(0)


def _cti(cred):
    from offgate_host.wire.formats import parse_credential
    return parse_credential(cred)["cti"]


def test_settlement_below_credit_limit_is_flagged_and_denied(bo):
    """The issue's case: a credential used far past its cap no longer drives the account silently
    to -874,750: each charge past the credit limit is an overdraft fraud flag and a deny."""
    bo.create_account("a", balance=1000, credit=200)
    cti = _cti(bo.issue_credential("a", pub(), zones=[1], now=NOW, valid_seconds=3600))
    led = Ledger.for_backoffice(bo)
    led.enroll_gate(1, b"\x04" + bytes(64))
    led.ingest(1, make_records(8, cti=cti))  # 8 x 250 = 2000 > 1000 cap, > 1200 cover
    s = led.settle(bo, now=NOW + 10)
    assert s["trips"] == 8 and s["charged"] == 2000
    kinds = [f["kind"] for f in led.fraud()]
    assert kinds.count("overdraft") == 4  # balances -250, -500, -750, -1000: past the limit -200
    assert "cap_exceeded" in kinds and cti in bo.deny_list()
    assert bo.get_account("a")["balance"] == -1000
    with pytest.raises(IssueRefused):  # no new credential while overdrawn
        bo.issue_credential("a", pub(), zones=[1], now=NOW)
    books_balance(bo, "a")
    led.close()


def test_flat_settlement_never_posts_behind_the_last_and_the_statement_only_grows(bo):
    """Issue 13 (QA): a tap synced late and settled with a host clock stepped back is posted after
    the lines already on the statement (its tap time is its own field); no running balance moves."""
    bo.create_account("a", balance=5000, now=NOW)
    cti = _cti(bo.issue_credential("a", pub(), zones=[1], now=NOW, valid_seconds=86400, cap=2000))
    led = Ledger.for_backoffice(bo)
    led.enroll_gate(1, b"\x04" + bytes(64))
    led.enroll_gate(2, b"\x04" + bytes([2]) * 64)
    led.ingest(1, make_records(2, cti=cti, t0=NOW + 100))
    assert led.settle(bo, now=NOW + 1000)["trips"] == 2
    first = bo.statement("a")
    led.ingest(2, make_records(1, cti=cti, ctr0=9, t0=NOW + 50))   # tapped earlier, synced late
    assert led.settle(bo, now=NOW + 500)["trips"] == 1                # the clock stepped back
    st_ = bo.statement("a")
    assert st_[:len(first)] == first
    assert st_[-1]["kind"] == "trip" and st_[-1]["tap"] == NOW + 50 and st_[-1]["t"] > NOW + 1000
    books_balance(bo, "a")
    led.close()


def test_an_adjustment_cannot_take_what_holds_reserve(bo):
    """QA8: an adjustment took money a live credential's hold reserved; the rider's next trip,
    within the cap, was then flagged overdraft and the credential denied."""
    bo.create_account("a", balance=1500, now=NOW)
    bo.issue_credential("a", pub(), zones=[1], now=NOW, valid_seconds=3600, cap=1000)
    with pytest.raises(BackOfficeError, match="holds reserve \\(1000; 500 can be adjusted\\)"):
        bo.adjust("a", -1250, "chargeback")
    assert bo.get_account("a")["balance"] == 1500
    assert bo.adjust("a", -500, "chargeback")["balance"] == 1000 and bo.coverable("a") == 0
    books_balance(bo, "a")


def test_a_settlement_clock_far_ahead_is_refused_and_changes_nothing(bo):
    """QA8: `settle --now` 30+ days ahead of anything the back office knows released every live
    hold as expired and dated every later posting after it (settled is final). Refused like a
    signing time that far ahead, unless forced; nothing moves."""
    from offgate_host.backoffice.backoffice import ClockRefused
    bo.create_account("a", balance=5000, now=NOW)
    bo.issue_credential("a", pub(), zones=[1], now=NOW, valid_seconds=7 * 86400, cap=2000)
    led = Ledger.for_backoffice(bo)
    with pytest.raises(ClockRefused, match="days ahead of the newest time"):
        led.settle(bo, now=NOW + 40 * 86400)
    assert [h["state"] for h in bo.holds("a")] == ["held"] and bo.coverable("a") == 3000
    assert led.settle(bo, now=NOW + 60)["released"] == 0       # a plausible time still settles
    assert led.settle(bo, now=NOW + 40 * 86400, force_time=True)["released"] == 1  # checked by hand
    books_balance(bo, "a")
    led.close()


def test_a_clock_stepped_back_posts_trips_after_the_account_lines(bo):
    """QA8: settled with a clock behind the account's opening, the trips came above "opening" on
    the statement (posted before the account existed). Settlement posts after every line the back
    office has posted."""
    bo.create_account("a", balance=3000, now=NOW)
    cti = _cti(bo.issue_credential("a", pub(), zones=[1], now=NOW, valid_seconds=86400, cap=1000))
    led = Ledger.for_backoffice(bo)
    led.enroll_gate(1, b"\x04" + bytes(64))
    led.ingest(1, make_records(2, cti=cti, t0=NOW + 60))
    s = led.settle(bo, now=NOW - 86400)
    assert s["trips"] == 2 and s["time"] > NOW, s
    kinds = [m["kind"] for m in bo.statement("a")]
    assert kinds[0] == "opening" and kinds[-2:] == ["trip", "trip"], kinds
    books_balance(bo, "a")
    led.close()


def test_a_line_posted_ahead_does_not_release_live_holds(bo):
    """QA9: a top-up made while the host clock was 200 days ahead pushed the next settlement's
    time past it, and that settlement released every live credential's hold as expired. Lines
    are still posted after it; what has expired is judged by the clock."""
    bo.create_account("a", balance=3000, now=NOW)
    bo.create_account("b", balance=100, now=NOW)
    _cti(bo.issue_credential("a", pub(), zones=[1], now=NOW, valid_seconds=86400, cap=1000))
    bo.top_up("b", 100, reason="clock ahead", now=NOW + 200 * 86400)
    led = Ledger.for_backoffice(bo)
    s = led.settle(bo, now=NOW + 60)
    assert s["released"] == 0 and bo.outstanding_holds("a") == 1000, s
    assert led.settle(bo, now=NOW + 2 * 86400)["released"] == 1  # expired by the clock: released
    led.close()


def test_adjust_checks_again_as_it_writes(bo, monkeypatch):
    """QA9: two adjustments at once both passed a check made before either wrote (the balance went
    below the credit limit). The UPDATE checks again: a check made on stale figures (here the holds
    as if none) changes nothing."""
    bo.create_account("a", balance=1000, now=NOW)
    bo.issue_credential("a", pub(), zones=[1], now=NOW, valid_seconds=86400, cap=1000)
    monkeypatch.setattr(bo, "outstanding_holds", lambda account_id: 0)  # what a racing reader saw
    with pytest.raises(BackOfficeError, match="changed while adjusting"):
        bo.adjust("a", -500, "stale check")
    assert bo.get_account("a")["balance"] == 1000 and [m["kind"] for m in bo.statement("a")] == ["opening", "hold"]


def test_topup_adjust_audit_trail_and_statement(bo):
    bo.create_account("a", balance=500, credit=100, now=NOW)
    bo.top_up("a", 700, by="kasia", reason="cash, receipt 17", now=NOW)
    bo.adjust("a", -200, "refund of a double top-up", by="olek", now=NOW)
    with pytest.raises(BackOfficeError, match="below the credit limit"):
        bo.adjust("a", -1200, "too much")
    with pytest.raises(BackOfficeError, match="reason is required"):
        bo.adjust("a", 5, "  ")
    with pytest.raises(BackOfficeError):
        bo.top_up("a", 0)
    with pytest.raises(BackOfficeError):
        bo.top_up("a", 10 ** 13)
    bo.update_account("a", credit=400, reason="trusted rider", by="olek", now=NOW)
    cti = _cti(bo.issue_credential("a", pub(), zones=[1], now=NOW, valid_seconds=60, cap=300))
    bo.charge_trip(1, 1, cti, NOW + 1, 250, now=NOW + 2)
    bo.release_expired_holds(now=NOW + 3600)
    kinds = [m["kind"] for m in bo.statement("a")]
    assert kinds == ["opening", "top-up", "adjustment", "credit", "hold", "trip", "release"], kinds
    st_ = bo.statement("a")
    assert [m["amount"] for m in st_] == [500, 700, -200, 0, 0, -250, 0]
    assert st_[-1]["balance"] == 750 == bo.get_account("a")["balance"]
    assert st_[4]["hold"] == 300 and st_[6]["hold"] == -50
    assert "kasia" in st_[1]["detail"] and "receipt 17" in st_[1]["detail"]
    books_balance(bo, "a")


def test_cli_topup_adjust_show(tmp_path):
    r = CliRunner()
    d = ["--data", str(tmp_path / "bo")]
    assert r.invoke(main, ["init", *d]).exit_code == 0
    assert r.invoke(main, ["account", "create", "a", "--balance", "100", *d]).exit_code == 0
    res = r.invoke(main, ["account", "topup", "a", "400", *d])
    assert res.exit_code == 2 and "--reason" in res.output  # the audit trail needs a reason
    res = r.invoke(main, ["account", "topup", "a", "400", "--reason", "card 4411", "--by", "ewa", *d])
    assert res.exit_code == 0 and "balance 500" in res.output, res.output
    res = r.invoke(main, ["account", "adjust", "a", "--reason", "goodwill", *d, "--", "-50"])
    assert res.exit_code == 0 and "balance 450" in res.output, res.output
    res = r.invoke(main, ["account", "adjust", "a", "--reason", "x", *d, "--", "-5000"])
    assert res.exit_code == 1 and res.stderr.startswith("offgate: ") and "credit limit" in res.stderr
    res = r.invoke(main, ["account", "show", "a", *d])
    assert res.exit_code == 0 and "closing balance 450 = the account's balance 450" in res.output, res.output
    assert "posted (UTC)" in res.output and "tap (UTC)" in res.output  # posting order, tap time apart
    assert all(len(line) <= 200 for line in res.output.splitlines())
    res = r.invoke(main, ["config", "default-cap", "300", *d])
    assert res.exit_code == 0 and "default cap: 300" in res.output
    res = r.invoke(main, ["account", "show", "nobody", *d])
    assert res.exit_code == 1 and "unknown account" in res.stderr


def test_cli_settle_says_when_the_clock_is_behind_the_last_settlement(tmp_path):
    r = CliRunner()
    d = ["--data", str(tmp_path / "bo")]
    assert r.invoke(main, ["init", *d]).exit_code == 0
    res = r.invoke(main, ["settle", "--now", str(NOW + 1000), *d])
    assert res.exit_code == 0 and "settlement time" not in res.output, res.output
    # QA: "50250 charged (46250 beyond caps)" read as two counts; it is money, and part of a whole
    assert "0 charged in all (minor units), 0 of it beyond credential caps" in res.output, res.output
    res = r.invoke(main, ["settle", "--now", str(NOW), *d])
    assert res.exit_code == 0 and "settlement time %d: after the previous" % (NOW + 1001) in res.output, res.output


# --------------------------------------------------------------------------- property tests
OPS = st.lists(st.one_of(
    st.tuples(st.just("issue"), st.one_of(st.none(), st.integers(0, 3000))),
    st.tuples(st.just("trip"), st.integers(0, 900)),
    st.tuples(st.just("journeys"), st.lists(st.integers(0, 900), max_size=4)),
    st.tuples(st.just("topup"), st.integers(1, 3000)),
    st.tuples(st.just("adjust"), st.integers(-3000, 3000)),
    st.tuples(st.just("credit"), st.integers(0, 2000)),
    st.tuples(st.just("release"), st.integers(0, 7200)),
), max_size=25)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(balance=st.integers(0, 5000), credit=st.integers(0, 2000), ops=OPS)
def test_books_always_balance(tmp_path_factory, balance, credit, ops):
    """Whatever happens to an account (credentials, trips, re-rated journeys, top-ups,
    adjustments, credit changes, expiries), the statement ends at the balance, holds are used
    exactly by the charges drawn from them, no credential is issued for more than the account
    can cover, and every charge that leaves the account below its credit limit says so."""
    b = BackOffice(tmp_path_factory.mktemp("p") / "bo")
    b.db.execute("PRAGMA synchronous = OFF")  # a throwaway database: no fsync per transaction
    b.init_issuer("t", valid_from=NOW - 86400)
    b.create_account("a", balance=balance, credit=credit)
    ctis, seq, t = [], 0, NOW
    try:
        for op, arg in ops:
            t += 60
            if op == "issue":
                cover = b.coverable("a")
                try:
                    cti = _cti(b.issue_credential("a", pub(), zones=[1], now=t, cap=arg, valid_seconds=3600))
                except BackOfficeError:
                    assert cover < b.min_balance() or (arg is not None and arg > cover)
                    continue
                assert 0 <= b.credential(cti)["cap"] <= cover
                ctis.append(cti)
            elif op == "trip" and ctis:
                seq += 1
                c = b.charge_trip(1, seq, ctis[seq % len(ctis)], t, arg, now=t)
                a = b.get_account("a")
                assert c["overdrawn"] == (a["balance"] < -a["credit"])
            elif op == "journeys" and ctis:
                charges = [(2, i + 1, ctis[i % len(ctis)], NOW + i, amt) for i, amt in enumerate(arg)]
                res = b.set_journey_charges("a", NOW, charges, now=t)
                a = b.get_account("a")
                if a["balance"] < -a["credit"]:
                    assert all(c["overdrawn"] == (c["delta"] > 0) for c in res)
            elif op == "topup":
                b.top_up("a", arg, reason="t")
            elif op == "adjust" and arg:
                a = b.get_account("a")
                try:
                    b.adjust("a", arg, "p")
                except BackOfficeError:  # below the credit limit, or into what the holds reserve
                    assert a["balance"] + arg < -a["credit"] or \
                        a["balance"] + a["credit"] + arg < b.outstanding_holds("a")
            elif op == "credit":
                b.update_account("a", credit=arg, reason="p")
            elif op == "release":
                b.release_expired_holds(now=t + arg)
            books_balance(b, "a")
    finally:
        b.close()


def test_journey_charges_report_the_credentials_running_charged_total(bo):
    # set_journey_charges reads a capped credential's total once and keeps it by the deltas it
    # writes (not one query per charge): each charge's charged_total is the total after it, as
    # charged_total() reads it, through new charges, corrections and a refund
    bo.create_account("a", balance=100000)
    cti = _cti(bo.issue_credential("a", pub(), zones=[1], now=NOW, valid_seconds=86400, cap=2000))
    other = _cti(bo.issue_credential("a", pub(), zones=[1], now=NOW, valid_seconds=86400, cap=5000))
    bo.charge_trip(9, 1, cti, NOW + 1, 150, now=NOW + 1)  # a flat charge before: part of the total
    first = [(1, 1, cti, NOW + 10, 400), (1, 2, other, NOW + 20, 300), (1, 3, cti, NOW + 30, 700)]
    again = [(1, 1, cti, NOW + 10, 250), (1, 2, other, NOW + 20, 300), (1, 3, cti, NOW + 30, 900),
             (1, 4, cti, NOW + 40, 500)]
    for charges, now in ((first, NOW + 100), (again, NOW + 200)):
        seen = {}
        for c in bo.set_journey_charges("a", NOW + 5, charges, now=now, regime=1):
            seen.setdefault(c["cap"], []).append(c["charged_total"])
        assert seen[2000][-1] == bo.charged_total(cti) and seen[5000][-1] == bo.charged_total(other)
    assert seen[2000] == [150 + 250 + 700, 150 + 250 + 900, 150 + 250 + 900 + 500]
    assert bo.charged_total(cti) == 1800 and bo.charged_total(other) == 300
