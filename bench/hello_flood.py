"""Scan latency on the simulated gate (the real firmware on MicroPython, sync link on TCP) while a
stranger floods the sync port, against the same gate idle in the same run. Prints JSON.

    python bench/hello_flood.py [--scans 60]

Modes: `idle` (reference), `hello` (HELLOs carrying a sniffed operator credential, as fast as the
gate answers: each costs the gate only an on-curve check now; before issue 11 an issuer-key
verification plus a device-key signature) and `auth` (HELLO then a junk AUTH: one ECDH each, at
most 6 then one per second, the rest answered "busy"). Latency is the wall time from sending a
scanner line to reading the gate's report (what a rider waits), median and 95th percentile.
"""
import argparse
import json
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "support"))

import cbor2  # noqa: E402

from mpbridge import free_port  # noqa: E402
from offgate_host.wire import keys  # noqa: E402
from offgate_host.backoffice.backoffice import BackOffice  # noqa: E402
from offgate_host.device.simgate import write_gate_dir  # noqa: E402
from offgate_host.sync.frames import AUTH, HELLO, Deframer, encode_frame# noqa: E402
from offgate_host.device.provision import provision_gate_dir
from offgate_host.wallet import Wallet  # noqa: E402


def flood(port, mode, stop, counts):
    eph = keys.pub_bytes(keys.generate())
    cred = counts["cred"]
    while not stop.is_set():
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(encode_frame(HELLO, cbor2.dumps({1: os.urandom(16), 2: eph, 3: cred})))
            d = Deframer()
            got = []
            while not got:
                got = d.feed(s.recv(65536))
            counts["hello"] += 1
            if mode == "auth":
                s.sendall(encode_frame(AUTH, cbor2.dumps({1: os.urandom(220)})))
                got = []
                while not got:
                    got = d.feed(s.recv(65536))
                counts["auth"] += 1
            s.close()
        except OSError:
            time.sleep(0.01)


def pct(xs, p):
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(len(xs) * p))], 2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scans", type=int, default=60)
    a = ap.parse_args()
    from backlog import SyncSimGate
    now = int(time.time())
    out = {"scans_per_mode": a.scans}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bo = BackOffice(tmp / "bo")
        bo.init_issuer("bench", valid_from=now - 86400)
        bo.create_account("a", balance=10 ** 9)
        w = Wallet.create(tmp / "w.json")
        w.set_credential(bo.issue_credential("a", w.pub65, zones=[1], now=now))
        cfg = write_gate_dir(tmp / "gate", gate_id=1, zone=1, trust=bo.trust_bytes(), deny=bo.deny_bytes(),
                             max_age_s=3600)
        try:
            provision_gate_dir(cfg.parent, bo, gate_id=1)
        except TypeError:  # a tree from before gate enrolment (to measure "before")
            provision_gate_dir(cfg.parent, bo)
        port = free_port()
        g = SyncSimGate(cfg, port).start()
        counts = {"cred": bo.operator_identity()[1], "hello": 0, "auth": 0}
        ctr = 0
        try:
            for mode in ("idle", "hello", "auth"):
                stop = threading.Event()
                counts["hello"] = counts["auth"] = 0
                th = None
                if mode != "idle":
                    th = threading.Thread(target=flood, args=(port, mode, stop, counts), daemon=True)
                    th.start()
                    time.sleep(0.5)
                lat, gate_ms = [], []
                t_start = time.perf_counter()
                for _ in range(a.scans):
                    ctr += 1
                    line = w.qr_text(w.code(int(time.time()), ctr))
                    t0 = time.perf_counter()
                    r = g.scan(line)
                    lat.append((time.perf_counter() - t0) * 1000)
                    gate_ms.append(r.get("ms", 0))
                    assert r["decision"] == "OPEN", r
                secs = time.perf_counter() - t_start
                stop.set()
                if th:
                    th.join(5)
                out[mode] = {"scan_wall_ms_median": pct(lat, 0.5), "scan_wall_ms_p95": pct(lat, 0.95),
                             "scan_gate_ms_median": pct(gate_ms, 0.5),
                             "flood_hellos_per_s": round(counts["hello"] / secs, 1),
                             "flood_auths_per_s": round(counts["auth"] / secs, 1)}
        finally:
            g.kill()
    out["note"] = ("simulated gate, MicroPython unix port, 192k heap; wall time includes the host's pipe; "
                   "compare the modes of one run, not across machines")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
