"""Ledger ingest and settlement of N (default 100,000) pulled records, as a sync delivers them
(batches of 200, one transaction each), on SQLite and, with --pg URL (or OFFGATE_TEST_PG_URL), on
PostgreSQL; beside a bare COPY of the same rows into an unindexed table of the same columns in the
same run (the floor ingest is measured against; also into a table with ledger_records' indexes),
in text and in binary COPY format (ingest writes binary).
Settlement here is the flat fare per passage (the issue's figure); bench/fares_bench.py times the
fares path. Prints JSON; seconds.

    python bench/ledger_bench.py [--records 100000] [--pg postgresql://...]

Records: 80 % OPEN over 500 credentials (counters rising), 20 % DENY, one gate, chain-linked
(ledger.chain_next), like bench/sync_bench.py but without the gate side (build, seal, open), so
the numbers are the ledger's own.
"""
import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

from offgate_host.wire import keys
from offgate_host.backoffice.backoffice import BackOffice
from offgate_host.wire.formats import parse_credential
from offgate_host.ledger.ledger import ZERO32, Ledger, chain_next

BATCH = 200
_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def backend_cpu(pid):
    """CPU seconds (user + system) of process `pid` so far: a PostgreSQL backend on this machine
    (/proc); None when it cannot be read (a server elsewhere). With the client's own CPU time this
    is the work done, far less sensitive to the machine's load than the wall time."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TCK
    except (OSError, ValueError, IndexError):
        return None


class CPU:
    """Client and server (backend `pid`, or none) CPU seconds spent between start() and stop()."""

    def __init__(self, pid=None):
        self.pid = pid

    def start(self):
        self.c0, self.s0 = time.process_time(), backend_cpu(self.pid) if self.pid else None
        return self

    def stop(self):
        s1 = backend_cpu(self.pid) if self.pid else None
        out = {"client": round(time.process_time() - self.c0, 2)}
        if self.s0 is not None and s1 is not None:
            out["server"] = round(s1 - self.s0, 2)
            out["total"] = round(out["client"] + out["server"], 2)
        return out


def make_records(n, ctis, t0):
    out, prev = [], ZERO32
    for i in range(n):
        opens = i % 5 != 0
        r = {"seq": i + 1, "t": t0 + i, "cti": ctis[i % len(ctis)] if opens else None,
             "ctr": (i // len(ctis) + 1) if opens else 0, "decision": "OPEN" if opens else "DENY",
             "reason": 0 if opens else 14, "missed": 0}
        r["chain"] = prev = chain_next(prev, r)
        out.append(r)
    return out


def pg_schema_url(url):
    import psycopg
    schema = "bench_" + uuid.uuid4().hex[:10]
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("CREATE SCHEMA %s" % schema)
    sep = "&" if "?" in url else "?"
    return url + sep + "options=-csearch_path%3D" + schema, schema


def bare_copy(url, recs, now, indexed=False, binary=False):
    """COPY the same rows, in the same batches (one transaction each), into a table with
    ledger_records' columns: unindexed (the floor the issue names) or, indexed=True, with
    ledger_records' two indexes ((gate, seq, t) unique, (cti, ctr) of OPEN passages): what
    storing them costs the server before any of the ledger's own work. binary=True: a binary
    COPY (as ingest now makes), else text. Returns (seconds, CPU seconds {client, server, total})."""
    import psycopg
    from offgate_host.ledger.ledger import RECORD_TYPES
    table = "bare_records%s%s" % ("_indexed" if indexed else "", "_binary" if binary else "")
    with psycopg.connect(url) as c:
        c.execute("CREATE TABLE %s (gate BIGINT, seq BIGINT, t BIGINT, cti BYTEA, ctr BIGINT, "
                  "decision TEXT, reason INTEGER, missed BIGINT, chain BYTEA, chain_ok INTEGER, ingested BIGINT, "
                  "station TEXT, direction TEXT)" % table)
        if indexed:
            c.execute("CREATE UNIQUE INDEX ON %s (gate, seq, t)" % table)
            c.execute("CREATE INDEX ON %s (cti, ctr) WHERE decision = 'OPEN'" % table)
        c.commit()
        cpu = CPU(c.info.backend_pid).start()
        t = time.perf_counter()
        for i in range(0, len(recs), BATCH):
            with c.cursor() as cur:
                with cur.copy("COPY %s FROM STDIN%s" % (table, " (FORMAT BINARY)" if binary else "")) as cp:
                    if binary:
                        cp.set_types(RECORD_TYPES)
                    for r in recs[i:i + BATCH]:
                        cp.write_row((1, r["seq"], r["t"], r["cti"], r["ctr"], r["decision"], r["reason"], 0,
                                      r["chain"], 1, now, None, None))
            c.commit()
        return time.perf_counter() - t, cpu.stop()


def setup(path, db, now, n_creds):
    """A back office on its one database (`db`: None = its own SQLite file, or a PostgreSQL URL)
    with one account and `n_creds` credentials; returns (back office, credential ids)."""
    bo = BackOffice(path, db=db)
    bo.init_issuer("bench", valid_from=now - 86400)
    bo.create_account("bench", balance=10 ** 12)
    ctis = [parse_credential(bo.issue_credential("bench", keys.pub_bytes(keys.generate()), zones=[1],
                                                 valid_seconds=86400 * 30, now=now - 3600, cap=10 ** 6))["cti"]
            for _ in range(n_creds)]
    return bo, ctis


def run(label, recs, bo, now, gate):
    led = Ledger.for_backoffice(bo)  # the one database: ledger and accounts on one connection
    led.enroll_gate(gate, b"\x04" + bytes(64))
    pid = led.db.conn.info.backend_pid if led.db.kind == "pg" else None
    cpu = CPU(pid).start()
    t = time.perf_counter()
    for i in range(0, len(recs), BATCH):
        led.ingest(gate, recs[i:i + BATCH], now=now)
    ingest = time.perf_counter() - t
    ingest_cpu = cpu.stop()
    cpu.start()
    t = time.perf_counter()
    s = led.settle(bo, now=now)
    settle = time.perf_counter() - t
    settle_cpu = cpu.stop()
    out = {"backend": label, "records": len(recs), "ingest_s": round(ingest, 3), "settle_s": round(settle, 3),
           "ingest_plus_settle_s": round(ingest + settle, 3), "ingest_records_per_s": round(len(recs) / ingest),
           "ingest_cpu_s": ingest_cpu, "settle_cpu_s": settle_cpu,
           "trips_settled": s["trips"], "fraud_flags": s["fraud"],
           "settlement": "flat fare per passage (no fare table loaded; bench/fares_bench.py times the fares path)"}
    led.close()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100000)
    ap.add_argument("--pg", default=os.environ.get("OFFGATE_TEST_PG_URL"))
    ap.add_argument("--credentials", type=int, default=500)
    a = ap.parse_args()
    now = int(time.time())
    res = {}
    with tempfile.TemporaryDirectory() as d:
        bo, ctis = setup(Path(d) / "bo", None, now, a.credentials)
        recs = make_records(a.records, ctis, now - a.records)
        res["sqlite"] = run("sqlite", recs, bo, now, 1)
        bo.close()
        if a.pg:
            url, schema = pg_schema_url(a.pg)
            bo, ctis = setup(Path(d) / "bo-pg", url, now, a.credentials)
            recs = make_records(a.records, ctis, now - a.records)
            res["postgresql"] = run("postgresql", recs, bo, now, 1)
            bo.close()
            pg = res["postgresql"]
            for k, kw in (("", {}), ("_indexed", {"indexed": True}), ("_binary", {"binary": True}),
                          ("_indexed_binary", {"indexed": True, "binary": True})):
                secs, cpu = bare_copy(url, recs, now, **kw)
                pg["bare_copy%s_s" % k] = round(secs, 3)
                pg["bare_copy%s_cpu_s" % k] = cpu
                pg["ingest_vs_bare_copy" + k] = round(pg["ingest_s"] / secs, 2)
                if cpu.get("total") and "total" in pg["ingest_cpu_s"]:  # (0: too few records to count)
                    # the same ratio in CPU seconds (client + server): the load moves it far less
                    pg["ingest_vs_bare_copy%s_cpu" % k] = round(pg["ingest_cpu_s"]["total"] / cpu["total"], 2)
            import psycopg
            with psycopg.connect(a.pg, autocommit=True) as c:
                c.execute("DROP SCHEMA %s CASCADE" % schema)
    res["targets"] = {"postgresql_ingest_plus_settle_s": 3.0, "postgresql_ingest_vs_bare_copy": 2.0}
    json.dump(res, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
