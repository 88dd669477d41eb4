"""Deny lists at 10^5 ids (issue 12): wire size and gate cost of a delta against the full list, in
the same run; the back office's bulk changes; flash; list size against credential lifetime.

1. Back office (SQLite): `deny_many` of 100,000 ids (one transaction), signing the list, a
   1,000-id change (500 added, 500 removed: bulk add + bulk remove), signing again, making the
   delta. PostgreSQL (OFFGATE_TEST_PG_URL set): the same statements (executemany INSERT .. ON
   CONFLICT DO NOTHING / DELETE in one transaction) on a deny table of the same shape, since the
   back office itself is SQLite-only today.
2. Wire: the full list vs the delta for that change, zlib -9 of the delta, and the delta with its
   ids delta-coded (LEB128 gaps) to show what compression would buy for random 64-bit ids.
   Link time at 115200 baud (10 bits a byte).
3. Gate CPU (callgrind Ir, the 32-bit build if present, firmware .mpy; driver bench/mp_deny.py,
   baseline subtracted): installing the change as a delta (check + streaming merge) vs as a
   full list (whole-file check with SHA-256, what a full install does); both also verify one root
   signature, left out of both. Merge at 20,000 and 100,000 ids gives the slope for a 10^6-id
   estimate. 1,000 look-ups in the 100,000-id list, and the heap they leave.
4. Flash during an install (bytes that exist at once) and the list size as a function of
   credential lifetime (a simulation beside the closed form; assumptions in docs/protocol.md §6).

    python bench/deny_bench.py [--quick]   -> one JSON object on stdout
"""
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "support"))
sys.path.insert(0, str(ROOT / "host_tools"))

ESP32_CPI = 1.9
ESP32_HZ = 240e6
BAUD_BYTES_S = 115200 / 10


def esp32_ms(ir):
    return round(ir * ESP32_CPI / ESP32_HZ * 1000, 1)


def leb128_gaps(ids, L):
    """Sorted ids (their L-byte prefixes, as stored) as LEB128 varints of the gaps between them."""
    out = bytearray()
    prev = 0
    for x in sorted({int.from_bytes(i[:L], "big") for i in ids}):
        g = x - prev
        prev = x
        while True:
            b = g & 0x7F
            g >>= 7
            out.append(b | (0x80 if g else 0))
            if not g:
                break
    return bytes(out)


def backoffice_part(work, n, change):
    from offgate_host.wire import formats
    from offgate_host.backoffice.backoffice import BackOffice
    bo = BackOffice(work / "bo")
    rnd = random.Random(12)
    ids = [rnd.getrandbits(64).to_bytes(8, "big") for _ in range(n)]
    t = time.perf_counter()
    bo.deny_many(ids, "bench bulk add")
    add_s = time.perf_counter() - t
    t = time.perf_counter()
    old = bo.deny_bytes()
    sign_s = time.perf_counter() - t
    base = bo.deny_serial()
    adds = [rnd.getrandbits(64).to_bytes(8, "big") for _ in range(change // 2)]
    removes = rnd.sample(ids, change // 2)
    t = time.perf_counter()
    bo.deny_many(adds, "bench change")
    bo.undeny_many(removes, "bench change")
    change_s = time.perf_counter() - t
    new = bo.deny_bytes()
    t = time.perf_counter()
    delta = bo.deny_delta(base)
    delta_s = time.perf_counter() - t
    assert formats.apply_deny_delta(old, delta, bo.root_pub()) == new
    res = {"ids": n, "bulk_add_100k_s": round(add_s, 2), "sign_list_s": round(sign_s, 2),
           "bulk_change_1000_s": round(change_s, 3), "make_delta_s": round(delta_s, 3)}
    return res, old, new, delta, ids, adds, removes


def postgres_part(n):
    url = os.environ.get("OFFGATE_TEST_PG_URL")
    if not url:
        return {"skipped": "OFFGATE_TEST_PG_URL not set"}
    import psycopg
    rnd = random.Random(13)
    ids = [rnd.getrandbits(64).to_bytes(8, "big") for _ in range(n)]
    with psycopg.connect(url) as c:
        c.execute("DROP TABLE IF EXISTS bench_deny")
        c.execute("CREATE TABLE bench_deny (cti BYTEA PRIMARY KEY, added BIGINT NOT NULL, reason TEXT)")
        c.commit()
        t = time.perf_counter()
        with c.cursor() as cur:
            cur.executemany("INSERT INTO bench_deny (cti, added, reason) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                            [(i, 0, "bench") for i in ids])
        c.commit()
        add_s = time.perf_counter() - t
        t = time.perf_counter()
        with c.cursor() as cur:
            cur.executemany("DELETE FROM bench_deny WHERE cti = %s", [(i,) for i in ids[:n // 2]])
        c.commit()
        rm_s = time.perf_counter() - t
        c.execute("DROP TABLE bench_deny")
        c.commit()
    return {"bulk_add_100k_s": round(add_s, 2), "bulk_remove_50k_s": round(rm_s, 2),
            "note": "the back office's deny statements on a same-shaped PostgreSQL table (psycopg 3 executemany, "
                    "one transaction); the back office itself is SQLite-only today"}


def callgrind(work, mp, d, mode, k=1):
    from offgate_host.device import simgate
    env = simgate.micropython_env([ROOT / "bench"], mp=mp)
    f = work / ("cg.%s.%s.out" % (Path(d).name, mode))
    r = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + str(f), mp or simgate.micropython_bin(),
                        "-X", "heapsize=128k", str(ROOT / "bench" / "mp_deny.py"), str(d), mode, str(k)],
                       env=env, capture_output=True, text=True, timeout=3600, cwd=str(ROOT))
    rec = [json.loads(ln) for ln in r.stdout.splitlines() if ln.startswith("{")]
    if r.returncode or not rec:
        raise RuntimeError((r.stdout + r.stderr)[-600:])
    for ln in open(f, errors="replace"):
        if ln.startswith("summary:") or ln.startswith("totals:"):
            return int(ln.split()[1]), rec[0]
    raise RuntimeError("no callgrind total")


def gate_dir(work, name, old, new, delta):
    d = work / name
    d.mkdir()
    (d / "deny.bin").write_bytes(old)
    (d / "full.bin").write_bytes(new)
    (d / "delta").write_bytes(delta)
    return d


def gate_part(work, files_by_n):
    from offgate_host.device import simgate
    mp = simgate.micropython32_bin()
    simgate.compile_firmware(mp=mp)
    out = {"runtime": "32-bit build (%s), firmware .mpy, -X heapsize=128k" % mp if mp else
           "64-bit unix port (no 32-bit build here), firmware .mpy, -X heapsize=128k"}
    jobs = [(n, mode) for n in files_by_n
            for mode in ("none", "delta", "full") + (("lookup",) if n == max(files_by_n) else ())]
    # instruction counts do not depend on what else runs: the runs share the cores. In one gate dir
    # only the delta run writes (its merged list, "new"); the others read deny.bin / full.bin.
    with ThreadPoolExecutor(max_workers=max(1, min(len(jobs), os.cpu_count() or 1))) as ex:
        got = dict(zip(jobs, ex.map(lambda j: callgrind(work, mp, files_by_n[j[0]], j[1]), jobs)))
    for n in files_by_n:
        base, _ = got[(n, "none")]
        row = {}
        for mode in ("delta", "full") + (("lookup",) if n == max(files_by_n) else ()):
            ir, rec = got[(n, mode)]
            row[mode] = {"instructions": ir - base, "esp32_ms": esp32_ms(ir - base)}
            if mode == "lookup":
                row[mode]["heap_growth_bytes"] = rec["heap_growth_bytes"]
                row[mode]["instructions_per_lookup"] = (ir - base) // 1000
        out["ids_%d" % n] = row
    ns = sorted(files_by_n)
    if len(ns) == 2:
        a, b = (out["ids_%d" % x]["delta"]["instructions"] for x in ns)
        slope = (b - a) / (ns[1] - ns[0])  # instructions per id on the list (the copy)
        est = b + slope * (10 ** 6 - ns[1])
        out["delta_1m_ids_estimate"] = {"instructions": int(est), "esp32_ms": esp32_ms(est),
                                        "method": "linear in list size from the 20,000 and 100,000-id merges"}
    return out


def lifetime_model(rate_per_day=1000, grace_days=1, days=730, seed=1):
    """Deny list size against credential lifetime L (days). Assumptions: `rate_per_day` revocations
    a day (lost phones, fraud, closed accounts: e.g. 0.1 % of a million riders), each of a
    credential at a uniformly random point of its life; the id leaves the list `grace_days` after
    the credential expires (deny_prune_expired). Steady state (Little's law): rate x (L/2 + grace).
    Without expiry pruning the list only grows: rate x days."""
    rnd = random.Random(seed)
    out = []
    for life in (1, 7, 30, 90, 365):
        # simulate: each day `rate` revocations with remaining life U(0, L); count ids still listed at the end
        listed = 0
        for day in range(days):
            for _ in range(rate_per_day // 10):  # 1/10 sample, scaled: the same expectation, 10x faster
                left = days - day - rnd.random()  # time from this revocation to the end of the run
                if rnd.random() * life + grace_days > left:
                    listed += 10
        ids = rate_per_day * (life / 2 + grace_days)
        out.append({"lifetime_days": life, "simulated_ids": listed, "model_ids": int(ids),
                    "list_bytes": int(ids * 8), "flash_during_install_bytes": int(ids * 8 * 2)})
    return {"revocations_per_day": rate_per_day, "grace_days": grace_days, "simulated_days": days,
            "by_lifetime": out, "without_pruning_after_one_year_ids": rate_per_day * 365,
            "assumptions": lifetime_model.__doc__.split("Assumptions: ")[1].replace("\n    ", " ")}


def main():
    quick = "--quick" in sys.argv
    work = Path(tempfile.mkdtemp(prefix="offgate-denybench-"))
    try:
        n = 20000 if quick else 100000
        bo_res, old, new, delta, ids, adds, removes = backoffice_part(work, n, 1000)
        res = {"backoffice_sqlite": bo_res, "backoffice_postgresql": postgres_part(n)}
        from offgate_host.wire import formats
        L = formats.deny_list_info(new)["id_bytes"]
        c = len(adds) + len(removes)
        tail = len(delta) - 32 - L * c  # sig_len, signature, CRC
        res["wire"] = {
            "full_list_bytes": len(new), "delta_bytes": len(delta),
            "delta_zlib9_bytes": len(zlib.compress(delta, 9)),
            "delta_leb128_gaps_bytes": 32 + len(leb128_gaps(adds, L)) + len(leb128_gaps(removes, L)) + tail,
            "full_link_s_115200": round(len(new) / BAUD_BYTES_S, 1),
            "delta_link_s_115200": round(len(delta) / BAUD_BYTES_S, 2),
            "note": "1,000-id change (500 added, 500 removed) to a %d-id list of %d-byte prefixes of random "
                    "cti; the gaps between 500 sorted random %d-bit values take ~%d bits, so zlib saves nothing "
                    "and LEB128 gaps little" % (n, L, 8 * L, 8 * L - 9),
        }
        files = {n: gate_dir(work, "g%d" % n, old, new, delta)}
        if not quick:
            (work / "small").mkdir()
            _, o2, n2, d2, *_ = backoffice_part(work / "small", 20000, 1000)
            files[20000] = gate_dir(work, "g20000", o2, n2, d2)
        if shutil.which("valgrind"):
            res["gate"] = gate_part(work, files)
        else:
            res["gate"] = {"skipped": "no valgrind"}
        from offgate_host.wire import formats
        L = formats.deny_list_info(new)["id_bytes"]
        tail = len(new) - 24 - L * len(formats.deny_list_info(new)["ids"])  # sig_len, signature, CRC
        blocks = lambda b: -(-b // 4096) * 4096  # littlefs stores a file in whole 4 KiB blocks (ESP32)
        lst = 24 + L * 100000 + tail
        lst8 = 24 + 8 * 100000 + tail
        res["flash"] = {
            "id_bytes": L,
            "list_100k_bytes": lst,
            "delta_install_100k_bytes_at_once": blocks(lst) * 2 + blocks(len(delta)),
            "full_install_100k_bytes_at_once": blocks(lst) * 2,
            "delta_install_100k_bytes_at_once_8_byte_ids": blocks(lst8) * 2 + blocks(len(delta)),
            "list_1m_bytes": 24 + L * 10 ** 6 + tail,
            "install_1m_bytes_at_once": blocks(24 + L * 10 ** 6 + tail) * 2 + blocks(len(delta)),
            "target_1mib_met_at_100k": blocks(lst) * 2 + blocks(len(delta)) <= 1 << 20,
            "note": "old list, the received delta and the merged new list exist together until the rename "
                    "(whole 4 KiB blocks); the back office stores %d-byte id prefixes" % L,
        }
        res["lifetime"] = lifetime_model()
        print(json.dumps(res))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
