"""Sync throughput for a gate holding N (default 100,000) records: pull (build + seal on the gate
side, run here under CPython), open (decrypt + verify), ingest (chain-verified), acknowledge, then
settle. SQLite always, PostgreSQL too when --pg URL (or OFFGATE_TEST_PG_URL) is given. Prints JSON.

    python bench/sync_bench.py [--records 100000] [--pg postgresql://...]

The records are made by the firmware's own OpLog (so the chain and layout are the gate's), in one
credential-heavy mix: 80 % OPEN over 500 credentials, 20 % DENY. Also times OpLog.recover() on the
full log and after a torn tail (a cut mid-record).
"""
import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "firmware"))
sys.path.insert(0, str(ROOT / "tests" / "support"))

import synchelp  # noqa: E402  (FakeGate, LoopTransport; honours OFFGATE_SYNC_STUBS)
from offgate.sync import session  # noqa: E402
from offgate.log.oplog import OpLog  # noqa: E402
from offgate_host.wire import keys  # noqa: E402
from offgate_host.backoffice.backoffice import BackOffice  # noqa: E402
from offgate_host.ledger.ledger import Ledger  # noqa: E402
from offgate_host.ledger.pull import sync_gate  # noqa: E402


def make_gate(work, bo, n, ctis, gate_id):
    g = synchelp.FakeGate(work / "gate", gate_id, bo)
    g.oplog = OpLog(str(work / "gate" / "biglog"), segment_bytes=65536, max_segments=(n // 1023) + 2)
    g.oplog.recover()
    t0 = time.perf_counter()
    now = int(time.time()) - n
    for i in range(n):
        if i % 5:
            g.oplog.append(now + i, ctis[i % len(ctis)], i // len(ctis) + 1, "OPEN", 0)
        else:
            g.oplog.append(now + i, None, 0, "DENY", 14)
    return g, time.perf_counter() - t0


def run(url, label, n, work, bo, ctis):
    g, t_append = make_gate(work / label, bo, n, ctis, 9 if label == "sqlite" else 10)
    led = Ledger(url)
    srv = session.SyncServer(g.port())
    timings = {"open": 0.0, "ingest": 0.0}
    from offgate_host.sync.batch import open_batch as real_open

    def timed_open(*a, **kw):  # sync_gate passes session=
        t = time.perf_counter()
        r = real_open(*a, **kw)
        timings["open"] += time.perf_counter() - t
        return r
    orig_ingest = led.ingest

    def timed_ingest(*a, **kw):
        t = time.perf_counter()
        r = orig_ingest(*a, **kw)
        timings["ingest"] += time.perf_counter() - t
        return r
    led.ingest = timed_ingest
    t0 = time.perf_counter()
    s = sync_gate(synchelp.LoopTransport(srv), bo, led, open_batch=timed_open, push=False, set_time=False)
    t_sync = time.perf_counter() - t0
    t0 = time.perf_counter()
    st = led.settle(bo)
    t_settle = time.perf_counter() - t0
    led.close()
    assert s["new"] == n, s
    return {"db": label, "records": n, "append_s": round(t_append, 2), "sync_s": round(t_sync, 2),
            "sync_records_per_s": round(n / t_sync), "open_s": round(timings["open"], 2),
            "ingest_s": round(timings["ingest"], 2), "ingest_records_per_s": round(n / timings["ingest"]),
            "gate_side_s": round(t_sync - timings["open"] - timings["ingest"], 2),
            "batches": s["batches"], "settle_s": round(t_settle, 2), "settled_trips": st["trips"],
            "settle_trips_per_s": round(st["trips"] / t_settle) if t_settle else None}


def recovery(n, work):
    log = OpLog(str(work / "rec"), segment_bytes=65536, max_segments=(n // 1023) + 2)
    log.recover()
    for i in range(n):
        log.append(1800000000 + i, b"\x01" * 8, i + 1, "OPEN", 0)
    log.close()
    t0 = time.perf_counter()
    OpLog(str(work / "rec"), segment_bytes=65536, max_segments=(n // 1023) + 2).recover()
    clean = time.perf_counter() - t0
    segs = sorted(p for p in (work / "rec").iterdir() if p.suffix == ".seg")
    with open(segs[-1], "ab") as f:
        f.write(b"\x4f" + os.urandom(30))  # a torn record at the tail
    t0 = time.perf_counter()
    r = OpLog(str(work / "rec"), segment_bytes=65536, max_segments=(n // 1023) + 2).recover()
    return {"recover_clean_s": round(clean, 3), "recover_after_cut_s": round(time.perf_counter() - t0, 3),
            "cut": r["cut"], "head": r["head"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100000)
    ap.add_argument("--pg", default=os.environ.get("OFFGATE_TEST_PG_URL"))
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="offgate-syncbench-"))
    bo = BackOffice(work / "bo")
    bo.init_issuer("bench", valid_from=int(time.time()) - 86400 * 2)
    bo.create_account("bench", balance=10 ** 12)
    from offgate_host.wire.formats import parse_credential
    ctis = [parse_credential(bo.issue_credential("bench", keys.pub_bytes(keys.generate()), zones=[1],
                                                 now=int(time.time()) - a.records - 10))["cti"] for _ in range(500)]
    out = {"bench": "sync", "results": [run(str(work / "ledger.db"), "sqlite", a.records, work, bo, ctis)]}
    if a.pg:
        import psycopg
        with psycopg.connect(a.pg, autocommit=True) as c:
            c.execute("DROP SCHEMA IF EXISTS syncbench CASCADE")
            c.execute("CREATE SCHEMA syncbench")
        url = a.pg + ("&" if "?" in a.pg else "?") + "options=-csearch_path%3Dsyncbench"
        out["results"].append(run(url, "postgresql", a.records, work, bo, ctis))
    out["oplog_recovery"] = recovery(a.records, work)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
