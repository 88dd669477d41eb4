"""`offgate report`: date range, gate and station filters, the operator's time zone, passages and
denials per hour, revenue per product and station, CSV and JSON export, 80 columns."""
import csv
import io
import json

from click.testing import CliRunner

from offgate_host.wire import keys
from offgate_host.backoffice.backoffice import BackOffice
from offgate_host.cli import main
from offgate_host.wire.formats import parse_credential
from offgate_host.ledger.ledger import Ledger

from ledgerhelp import make_records

T0 = 1798761600  # 2027-01-01 00:00 UTC = 01:00 in Warsaw


def test_report_filters_time_zone_revenue_and_exports(tmp_path):
    r = CliRunner()
    d = ["--data", str(tmp_path / "bo")]
    assert r.invoke(main, ["init", "--valid-from", str(T0 - 86400), *d]).exit_code == 0
    with BackOffice(tmp_path / "bo", create=False) as bo, Ledger.for_backoffice(bo) as led:
        bo.create_account("a", balance=100000)
        ctis = [parse_credential(bo.issue_credential("a", keys.pub_bytes(keys.generate()), zones=[1], product=p,
                                                     now=T0 - 60, valid_seconds=3 * 86400))["cti"] for p in (1, 2)]
        led.set_fare(2, 400)
        for gate, station in ((1, "Central"), (2, "Harbour")):
            led.enroll_gate(gate, b"\x04" + bytes(64))
            led.set_place(gate, station, "both", now=T0 - 100)
        # gate 1: 3 OPEN (product 1) at 00:10, 00:20, 00:30 UTC; 1 DENY at 01:10 UTC
        recs = make_records(3, cti=ctis[0], t0=T0 + 600)
        recs[1]["t"], recs[2]["t"] = T0 + 1200, T0 + 1800
        from offgate_host.ledger.ledger import ZERO32, chain_next
        prev = ZERO32
        for x in recs:
            x["chain"] = prev = chain_next(prev, x)
        deny = make_records(1, start_seq=4, prev=prev, cti=None, decision="DENY", t0=T0 + 4200)
        led.ingest(1, recs + deny)
        led.ingest(2, make_records(2, cti=ctis[1], t0=T0 + 86400 + 60))  # the next day, product 2
        led.settle(bo, now=T0 + 2 * 86400, force_time=True)  # a fixed day in 2027, not the host clock
    res = r.invoke(main, ["report", "--tz", "Europe/Warsaw", *d])
    assert res.exit_code == 0, res.output
    out = res.output
    assert all(len(line) <= 80 for line in out.splitlines())
    assert "2027-01-01 01:00          3        0" in out and "2027-01-01 02:00          0        1" in out
    assert "Central" in out and "Harbour" in out
    js = json.loads(r.invoke(main, ["report", "--format", "json", "--tz", "Europe/Warsaw", *d]).output)
    assert {x["product"]: (x["trips"], x["revenue"]) for x in js["revenue_by_product"]} == {1: (3, 750), 2: (2, 800)}
    assert {x["station"]: x["revenue"] for x in js["revenue_by_station"]} == {"Central": 750, "Harbour": 800}
    assert sum(x["count"] for x in js["denials"]) == 1
    # filters: a day in the operator's zone, a gate, a station
    day = json.loads(r.invoke(main, ["report", "--format", "json", "--from", "2027-01-02", "--to", "2027-01-02",
                                     "--tz", "UTC", *d]).output)
    assert [(g["gate"], g["passages"]) for g in day["by_gate"]] == [(2, 2)]
    assert [x["product"] for x in day["revenue_by_product"]] == [2]
    g1 = json.loads(r.invoke(main, ["report", "--format", "json", "--gate", "1", *d]).output)
    assert [g["gate"] for g in g1["by_gate"]] == [1] and g1["hourly"][0]["hour"].startswith("2027-01-01T00:00")
    st = json.loads(r.invoke(main, ["report", "--format", "json", "--station", "Harbour", *d]).output)
    assert [g["station"] for g in st["by_gate"]] == ["Harbour"]
    rows = list(csv.reader(io.StringIO(r.invoke(main, ["report", "--format", "csv", *d]).output)))
    assert rows[0] == ["section", "hour", "passages", "denials"]
    assert {row[0] for row in rows} >= {"hourly", "by_gate", "revenue_by_product", "revenue_by_station"}
    for bad in (["--tz", "Mars/Olympus"], ["--from", "yesterday"], ["--from", "2027-01-03", "--to", "2027-01-01"]):
        res = r.invoke(main, ["report", *bad, *d])
        assert res.exit_code == 2 and res.stderr.startswith("offgate: "), (bad, res.output)
    assert r.invoke(main, ["report", "--details", *d]).exit_code == 0
