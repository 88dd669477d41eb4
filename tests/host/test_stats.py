"""Masked aggregate statistics (stats.py, docs/stats.md): three back offices with real ledgers end to
end, exact totals, refused tampered / replayed / wrong-round submissions, a missing party failing
the round, the re-run, and a party's masked vector alone passing as random bytes.
Runs on SQLite always and on PostgreSQL when OFFGATE_TEST_PG_URL is set (CI sets it)."""
import json
import math
import struct

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import ec

from offgate_host.wire import keys
from offgate_host.ledger import stats, stations
from offgate_host.backoffice.backoffice import BackOffice
from offgate_host.cli import main as cli_main
from offgate_host.wire.formats import parse_credential
from offgate_host.ledger.ledger import ZERO32, Ledger, chain_next
from ledgerhelp import NOW, PG_URL, _pg_url_with_schema

START = (NOW // 3600 - 48) * 3600   # a whole hour, two days back
HOURS = 4
STATIONS = ["Central", "Harbour", "Airport"]
PRODUCTS = [1, 2]


def _ledger(bo, kind):
    if kind == "sqlite":
        return Ledger.for_backoffice(bo)
    if not PG_URL:
        pytest.skip("OFFGATE_TEST_PG_URL not set (CI sets it; see .ci/run)")
    return Ledger(_pg_url_with_schema()[0])


class Operator:
    """One back office with its ledger: gates in stations, riders of two products, passages."""

    def __init__(self, tmp_path, name, kind, seed):
        self.name = name
        self.bo = BackOffice(tmp_path / name)
        self.bo.init_issuer(name, valid_from=NOW - 5 * 86400)
        self.led = _ledger(self.bo, kind)
        self.bo.create_account("acct", balance=100000)
        self.ctis = {}
        for product in PRODUCTS + [9]:   # product 9 is outside the common index
            cred = self.bo.issue_credential("acct", keys.pub_bytes(keys.generate()), zones=[1], product=product,
                                            valid_seconds=5 * 86400, now=NOW - 4 * 86400)
            self.ctis[product] = parse_credential(cred)["cti"]
        self.expected = [0] * (len(STATIONS) * HOURS * len(PRODUCTS))
        # gate g of this operator stands in station g % 3; gate 99 is in a station nobody indexes
        base = 100 * seed
        for i in range(3):
            stations.set_station(self.led, base + i, STATIONS[i])
        stations.set_station(self.led, base + 99, "Depot")
        self.gates = [base, base + 1, base + 2, base + 99]
        x = seed
        per_gate = {g: [] for g in self.gates}
        for k in range(60 + 10 * seed):
            x = (x * 1103515245 + 12345) % (1 << 31)
            g = self.gates[x % 4]
            product = [1, 2, 9][(x >> 4) % 3]
            hour = (x >> 8) % (HOURS + 1) - (1 if (x >> 12) % 5 == 0 else 0)  # some passages outside the window
            t = START + hour * 3600 + (x >> 16) % 3600
            decision = "OPEN" if (x >> 20) % 7 else "DENY"
            per_gate[g].append((t, product, decision))
            if decision == "OPEN" and 0 <= hour < HOURS and g != base + 99 and product in PRODUCTS:
                c = stats.cell_of({"hours": HOURS, "products": PRODUCTS}, g - base, hour, PRODUCTS.index(product))
                self.expected[c] += 1
        for g, events in per_gate.items():
            self.led.enroll_gate(g, b"\x04" + bytes([g % 256]) * 64)
            prev, recs = ZERO32, []
            for seq, (t, product, decision) in enumerate(sorted(events), start=1):
                r = {"seq": seq, "t": t, "cti": self.ctis[product], "ctr": seq, "decision": decision,
                     "reason": 0 if decision == "OPEN" else 14, "missed": 0}
                r["chain"] = prev = chain_next(prev, r)
                recs.append(r)
            self.led.ingest(g, recs)

    def party(self):
        return stats.party_info(self.bo, self.name)

    def close(self):
        self.led.close()
        self.bo.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def region(request, tmp_path):
    ops = [Operator(tmp_path, n, request.param, i + 1) for i, n in enumerate(("metro", "bus", "tram"))]
    agg_bo = BackOffice(tmp_path / "region")
    agg = _ledger(agg_bo, request.param)
    yield ops, agg
    for o in ops:
        o.close()
    agg.close()
    agg_bo.close()


def _round(rid, ops):
    return stats.new_round(rid, [o.party() for o in ops], {"start": START, "hours": HOURS, "stations": STATIONS,
                                                          "products": PRODUCTS})


def test_three_operators_publish_exact_totals(region):
    ops, agg = region
    spec = _round("2026-w48", ops)
    subs = [stats.submit(o.bo, o.led, spec) for o in ops]
    for o, s in zip(ops, subs):
        counts, outside = stats.count_cells(o.bo, o.led, spec)
        assert counts == o.expected and outside > 0
        opened = stats.open_submission(spec, s)
        assert opened["party"] == o.name
        assert list(struct.unpack("<%dQ" % len(counts), opened["vector"])) != counts  # masked
        assert stats.submit(o.bo, o.led, spec) == s   # asked again: the stored bytes, same masks
    res = stats.aggregate(agg, spec, subs)
    want = [sum(o.expected[c] for o in ops) for c in range(len(ops[0].expected))]
    assert [c["count"] for c in res["cells"]] == want and res["total"] == sum(want) > 0
    assert res["cells"][stats.cell_of(spec["index"], 1, 2, 1)] == dict(
        station="Harbour", hour=START + 2 * 3600, product=2, count=want[stats.cell_of(spec["index"], 1, 2, 1)])
    sup = stats.aggregate(agg, _round("2026-w48b", ops), [stats.submit(o.bo, o.led, _round("2026-w48b", ops))
                                                          for o in ops], min_count=3)
    assert all(c["count"] is None for c, w in zip(sup["cells"], want) if 0 < w < 3)
    assert sup["suppressed"] == sum(1 for w in want if 0 < w < 3)


def test_tampered_replayed_and_wrong_round_submissions_are_refused(region):
    ops, agg = region
    r1, r2 = _round("r1", ops), _round("r2", ops)
    s1 = [stats.submit(o.bo, o.led, r1) for o in ops]
    s2 = [stats.submit(o.bo, o.led, r2) for o in ops]
    tampered = bytearray(s1[0])
    tampered[-80] ^= 1            # inside the masked vector
    with pytest.raises(stats.StatsError, match="tampered"):
        stats.aggregate(agg, r1, [bytes(tampered)] + s1[1:])
    with pytest.raises(stats.StatsError, match="not this round"):
        stats.aggregate(agg, r2, [s1[0]] + s2[1:])      # last round's submission offered again
    with pytest.raises(stats.StatsError, match="second submission"):
        stats.aggregate(agg, r1, s1 + [s1[1]])
    outsider = BackOffice(ops[0].bo.data_dir.parent / "outsider")
    forged = stats.submit(outsider, Ledger.for_backoffice(outsider), stats.new_round(
        "r1", [stats.party_info(outsider, "metro")] + [o.party() for o in ops[1:]], r1["index"]))
    with pytest.raises(stats.StatsError, match="not a party"):
        stats.aggregate(agg, r1, [forged] + s1[1:])
    # none of the refusals changed anything: the genuine round still publishes
    assert stats.aggregate(agg, r1, s1)["total"] > 0
    with pytest.raises(stats.StatsError, match="already published"):
        stats.aggregate(agg, r1, s1)
    r3 = _round("r3", ops)   # a later round: a submission already summed is refused as a replay
    with pytest.raises(stats.StatsError, match="not this round"):
        stats.aggregate(agg, r3, s1)
    # a party never masks two definitions under one round id
    other = stats.new_round("r1", [o.party() for o in ops[:2]], r1["index"])
    with pytest.raises(stats.StatsError, match="never reused"):
        stats.submit(ops[0].bo, ops[0].led, other)


def test_missing_party_fails_the_round_and_it_reruns_without_it(region):
    ops, agg = region
    r = _round("r-full", ops)
    subs = [stats.submit(o.bo, o.led, r) for o in ops[:2]]   # tram does not submit
    with pytest.raises(stats.RoundIncomplete, match="no submission from tram; nothing was unmasked"):
        stats.aggregate(agg, r, subs)
    late = stats.submit(ops[2].bo, ops[2].led, r)
    with pytest.raises(stats.StatsError, match="already failed"):
        stats.aggregate(agg, r, subs + [late])     # a failed round stays failed
    r2 = _round("r-rerun", ops[:2])
    subs2 = [stats.submit(o.bo, o.led, r2) for o in ops[:2]]
    assert [stats.open_submission(r2, s)["vector"] for s in subs2] != \
           [stats.open_submission(r, s)["vector"] for s in subs]   # new round id, new masks
    res = stats.aggregate(agg, r2, subs2)
    assert [c["count"] for c in res["cells"]] == [a + b for a, b in zip(ops[0].expected, ops[1].expected)]


def _chi2_bytes(data):
    n = len(data)
    freq = [0] * 256
    for b in data:
        freq[b] += 1
    e = n / 256
    return sum((f - e) ** 2 / e for f in freq)


def test_a_masked_vector_alone_is_indistinguishable_from_random():
    """Small counts (what a single cell usually holds) masked by one party: every byte value, and
    the top byte of each cell, is as frequent as in random data (chi-square, 255 degrees of
    freedom; 330.5 is the 0.1 % critical value). The unmasked counts fail the same test at once.
    The keys are fixed so the test is deterministic."""
    privs = [ec.derive_private_key(k, ec.SECP256R1()) for k in (0x1234567, 0x2345678, 0x3456789)]
    parties = [{"name": "p%d" % i, "pub": keys.pub_bytes(p).hex()} for i, p in enumerate(privs)]
    spec = stats.new_round("chi2", parties, {"start": START, "hours": 24 * 8, "stations": ["s%d" % i for i in range(16)],
                                             "products": [1, 2]})
    n = stats.n_cells(spec["index"])          # 6144 cells = 49152 bytes
    counts = [(c * 7919) % 13 for c in range(n)]
    masked = stats.masked_vector(counts, stats.mask_vector(privs[0], spec))
    assert _chi2_bytes(masked) < 330.5
    assert _chi2_bytes(masked[7::8]) < 330.5  # the top byte of each uint64 cell
    assert _chi2_bytes(struct.pack("<%dQ" % n, *counts)) > 10000
    # and the masks of all parties cancel in every cell
    total = [sum(v) % stats.MOD for v in zip(*[stats.mask_vector(p, spec) for p in privs])]
    assert total == [0] * n
    # monobit: about half the bits set
    ones = sum(bin(b).count("1") for b in masked)
    bits = 8 * len(masked)
    assert abs(ones - bits / 2) < 4 * math.sqrt(bits / 4)


def test_cli_round_submit_aggregate_and_one_line_errors(tmp_path):
    ops = [Operator(tmp_path, n, "sqlite", i + 1) for i, n in enumerate(("metro", "bus", "tram"))]
    r = CliRunner()
    try:
        pfiles = []
        for o in ops:
            f = tmp_path / (o.name + ".party.json")
            res = r.invoke(cli_main, ["stats", "party", o.name, "--data", str(o.bo.data_dir), "--out", str(f)])
            assert res.exit_code == 0, res.output
            pfiles += ["--party", str(f)]
        rf = tmp_path / "round.json"
        res = r.invoke(cli_main, ["stats", "round", "cli-1", *pfiles, "--start", str(START), "--hours", str(HOURS),
                                  "--stations", ",".join(STATIONS), "--products", "1,2", "--out", str(rf)])
        assert res.exit_code == 0, res.output
        subs = []
        for o in ops:
            sf = tmp_path / (o.name + ".sub.cbor")
            res = r.invoke(cli_main, ["stats", "submit", str(rf), "--data", str(o.bo.data_dir), "--out", str(sf)])
            assert res.exit_code == 0, res.output
            subs.append(str(sf))
        agg = tmp_path / "agg"
        assert r.invoke(cli_main, ["init", "--data", str(agg)]).exit_code == 0  # the aggregator's back office
        res = r.invoke(cli_main, ["stats", "aggregate", str(rf), *subs[:2], "--data", str(agg)])
        assert res.exit_code == 1 and res.output.count("\n") == 1 and "no submission from tram" in res.output
        rf2 = tmp_path / "round2.json"
        res = r.invoke(cli_main, ["stats", "rerun", str(rf), "cli-1", "--without", "tram", "--out", str(rf2)])
        assert res.exit_code == 1 and "new round id" in res.output
        res = r.invoke(cli_main, ["stats", "rerun", str(rf), "cli-2", "--without", "tram", "--out", str(rf2)])
        assert res.exit_code == 0 and "2 parties (metro, bus)" in res.output, res.output
        subs2 = []
        for o in ops[:2]:
            sf = tmp_path / (o.name + ".sub2.cbor")
            assert r.invoke(cli_main, ["stats", "submit", str(rf2), "--data", str(o.bo.data_dir),
                                       "--out", str(sf)]).exit_code == 0
            subs2.append(str(sf))
        out = tmp_path / "totals.json"
        res = r.invoke(cli_main, ["stats", "aggregate", str(rf2), *subs2, "--data", str(agg), "--out", str(out)])
        assert res.exit_code == 0, res.output
        assert json.loads(out.read_text())["total"] == sum(sum(o.expected) for o in ops[:2])
        res = r.invoke(cli_main, ["stats", "aggregate", str(rf), *subs, "--data", str(agg)])
        assert res.exit_code == 1 and res.output.count("\n") == 1 and "already failed" in res.output
        (tmp_path / "bad.json").write_text("{")
        res = r.invoke(cli_main, ["stats", "submit", str(tmp_path / "bad.json"), "--data", str(agg),
                                  "--out", str(tmp_path / "x")])
        assert res.exit_code == 1 and res.output.count("\n") == 1 and "not JSON" in res.output
    finally:
        for o in ops:
            o.close()


def test_three_back_offices_from_their_gates_operation_logs(tmp_path):
    """The counts come from what the gates logged: each operator's gate (the firmware's operation
    log, run in-process as in the sync tests) is synced into that operator's own ledger."""
    from synchelp import FakeGate, LoopTransport
    from offgate.sync import session
    from offgate_host.ledger.pull import sync_gate

    ops, want = [], [0] * (len(STATIONS) * HOURS * len(PRODUCTS))
    spec_index = {"start": START, "hours": HOURS, "stations": STATIONS, "products": PRODUCTS}
    for i, name in enumerate(("metro", "bus", "tram")):
        bo = BackOffice(tmp_path / name)
        bo.init_issuer(name, valid_from=NOW - 5 * 86400)
        bo.create_account("a", balance=100000)
        ctis = {p: parse_credential(bo.issue_credential("a", keys.pub_bytes(keys.generate()), zones=[1], product=p,
                                                        valid_seconds=5 * 86400, now=NOW - 4 * 86400))["cti"]
                for p in PRODUCTS}
        led = Ledger.for_backoffice(bo)
        gid = 10 + i
        stations.set_station(led, gid, STATIONS[i % 2])
        g = FakeGate(tmp_path / (name + "-gate"), gid, bo)
        for k in range(12 + 3 * i):
            p, h = PRODUCTS[k % 2], k % HOURS
            g.log(ctis[p], k + 1, t=START + h * 3600 + 60 * k)
            want[stats.cell_of(spec_index, i % 2, h, k % 2)] += 1
        g.log(ctis[1], 99, "DENY", 14, t=START + 10)   # a denial is not a passage
        assert sync_gate(LoopTransport(session.SyncServer(g.port())), bo, led)["new"] == 13 + 3 * i
        ops.append((name, bo, led))
    spec = stats.new_round("gates-1", [stats.party_info(bo, n) for n, bo, _ in ops], spec_index)
    agg_bo = BackOffice(tmp_path / "region")
    agg = Ledger.for_backoffice(agg_bo)
    res = stats.aggregate(agg, spec, [stats.submit(bo, led, spec) for _, bo, led in ops])
    assert [c["count"] for c in res["cells"]] == want and res["total"] == 12 + 15 + 18
    for _, bo, led in ops + [("region", agg_bo, agg)]:
        led.close()
        bo.close()
