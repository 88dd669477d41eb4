"""Sync of a large backlog on the simulated gate (issue 12): the smallest heap at which one
`sync_gate` call pulls a whole backlog, and the gate's CPU per 200-record pull.

1. Smallest -X heapsize (4 KiB bisection) for a full sync (handshake, status, pull and ack of the
   whole backlog, time) of a 2,000-record backlog and a 20,000-record one (both in the default
   log: 62 segments of 509 records), on the 64-bit port (.mpy) and the 32-bit build (.mpy, and ROMFS: the bytecode
   outside the heap, as a ROMFS/frozen ESP32 build). Also the batch sizes the gate chose there.
2. x86-64 instructions (callgrind, 32-bit build) per 200-record pull, gate side (batch.build +
   batch.seal) as the gate does it (fast path: viper field, G's comb table; one ephemeral key and
   ECDH per session; unsigned once the session key is bound, and signed), batch.build alone, with a
   fresh ephemeral key and signature per batch, and on the big-int path, baseline (same driver, no
   pull) subtracted; ESP32 estimate at 1.9 cycles/instruction, 240 MHz. From it: gate CPU for a
   20,000-record backlog (95 unsigned + 5 signed pulls) and the link time at 115200 baud.

    python bench/sync_heap.py [--quick]   -> one JSON object on stdout
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "support"))
sys.path.insert(0, str(ROOT / "bench"))

ESP32_CPI = 1.9
ESP32_HZ = 240e6
CG_K = 2


def sync_once(work, bo, n, heap, mp, romfs, settings):
    """True if one sync (as `offgate sync` makes it with default options: sync_with_retries, 3
    retries, each a fresh session) pulls all n records at `heap` KiB, with the batch sizes."""
    from backlog import BacklogGate, backlog_gate_dir
    from offgate_host.ledger.ledger import Ledger
    from offgate_host.ledger.pull import sync_with_retries
    d = work / ("g%d" % time.monotonic_ns())
    cfg = backlog_gate_dir(d, bo, n, gate_id=int(time.monotonic_ns() % 100000) + 100, **settings)
    led = Ledger.for_backoffice(bo)
    g = BacklogGate(cfg, "%dk" % heap, mp=mp, romfs=romfs)
    try:
        g.start()
        s = sync_with_retries(g.transport, bo, led, retries=3)
        sizes = s.get("batch_sizes", [])
        return s["pulled"] >= n, {"batches": s["batches"], "min_batch": min(sizes) if sizes else None,
                                  "max_batch": max(sizes) if sizes else None, "sessions": s["attempts"]}
    except Exception as e:
        return False, {"error": str(e)[:120]}
    finally:
        g.kill()
        shutil.rmtree(d, ignore_errors=True)


def smallest_heap(work, bo, n, mp, romfs, settings, lo=64, hi=320, hint=None):
    """Smallest -X heapsize (KiB, a multiple of 4 in [lo, hi]; hi taken to work) at which a sync of n
    records works twice in a row, with the batch sizes there. `hint`: where the search starts
    (bench/bracket.py: gallops from it, then bisects; the same answer as a plain bisection)."""
    from bracket import smallest_passing

    def works(kib):
        # near the boundary the outcome depends on the heap's layout (fragmentation): a heap counts
        # only if two runs in a row succeed
        ok, i = sync_once(work, bo, n, kib, mp, romfs, settings)
        if ok:
            ok, i = sync_once(work, bo, n, kib, mp, romfs, settings)
        return ok, i

    return smallest_passing(works, lo - 4, hi, 4, hint=hint)


def callgrind_seal(work, mp):
    from backlog import prefill
    from offgate_host.device import simgate
    src = simgate.compile_firmware(mp=mp)
    d = work / "seal"
    d.mkdir()
    prefill(d, 400)
    env = simgate.micropython_env([ROOT / "bench"], mp=mp)

    def one(mode):
        f = work / ("cg.%s.out" % mode)
        dm = work / ("seal-" + mode)  # each run on its own copy of the log (recover() may write)
        shutil.copytree(d, dm)
        r = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + str(f), mp, "-X", "heapsize=256k",
                            str(ROOT / "bench" / "mp_seal.py"), str(dm), mode, str(CG_K)],
                           env=env, capture_output=True, text=True, timeout=1800, cwd=str(ROOT))
        rec = [json.loads(ln) for ln in r.stdout.splitlines() if ln.startswith("{")]
        if r.returncode or not rec:
            return mode, {"error": r.stderr[-400:]}
        total = None
        for ln in open(f, errors="replace"):
            if ln.startswith("summary:") or ln.startswith("totals:"):
                total = int(ln.split()[1])
        return mode, {"ir": total, "sealed_bytes": rec[0]["bytes"]}

    # instruction counts do not depend on what else runs: the runs share the cores
    modes = ("none", "session", "session_signed", "build", "per_seal", "bigint")
    with ThreadPoolExecutor(max_workers=max(1, min(len(modes), os.cpu_count() or 1))) as ex:
        out = dict(ex.map(one, modes))
    for mode in modes:
        if "error" in out[mode]:
            return out[mode]
    res = {"runtime": "32-bit build (" + str(mp) + "), .mpy from " + str(src)}
    for mode in ("session", "session_signed", "build", "per_seal", "bigint"):
        ins = (out[mode]["ir"] - out["none"]["ir"]) / CG_K
        res[mode] = {"instructions_per_200": int(ins), "esp32_ms_per_200": round(ins * ESP32_CPI / ESP32_HZ * 1000, 1),
                     "sealed_bytes": out[mode]["sealed_bytes"]}
    # a 20,000-record backlog in 100 pulls of 200: signed are the session's first, every
    # batch.SIGN_EVERY-th (32) and the final empty one: 5; the other 95 unsigned
    pulls, signed = 100, 1 + 100 // 32 + 1
    ms = (pulls * res["session"]["esp32_ms_per_200"]
          + signed * (res["session_signed"]["esp32_ms_per_200"] - res["session"]["esp32_ms_per_200"]))
    res["amortized_esp32_ms_per_200"] = round(ms / pulls, 1)
    res["gate_cpu_20000_s"] = round(ms / 1000, 1)
    # on the wire per record: the sealed batch over 200 (+ frame and response overhead ~60 bytes per batch)
    wire = (res["session"]["sealed_bytes"] + 60) / 200
    res["wire_bytes_per_record"] = round(wire, 1)
    res["link_s_20000_at_115200"] = round(20000 * wire * 10 / 115200, 1)
    return res


def main():
    quick = "--quick" in sys.argv
    from offgate_host.device import simgate
    from offgate_host.backoffice.backoffice import BackOffice
    from heap32 import romfs_image
    work = Path(tempfile.mkdtemp(prefix="offgate-syncheap-"))
    try:
        bo = BackOffice(work / "bo")
        bo.init_issuer("b", valid_from=int(time.time()) - 86400)
        mp32 = simgate.micropython32_bin()
        variants = [("64-bit .mpy", None, None)]
        if mp32:
            variants += [("32-bit .mpy", mp32, None), ("32-bit ROMFS", mp32, romfs_image(mp32, work))]
        res = {"heap": {}}
        # the default log (62 segments of 509 records: 31,558) holds both backlogs
        backlogs = [(2000, {})] + ([] if quick else [(20000, {})])
        for name, mp, romfs in variants:
            hint = None
            for n, settings in backlogs:  # the larger backlog starts from the smaller one's answer
                t0 = time.time()
                kib, info = smallest_heap(work, bo, n, mp, romfs, settings, hint=hint)
                hint = kib
                res["heap"]["%s, %d records" % (name, n)] = {"min_heapsize_kib": kib, "there": info,
                                                             "seconds": round(time.time() - t0, 1)}
        if mp32 and shutil.which("valgrind"):
            t0 = time.time()
            res["seal"] = callgrind_seal(work, mp32)
            res["seal"]["seconds"] = round(time.time() - t0, 1)
        res["method"] = ("heap: 4 KiB search (bench/bracket.py; the 20,000-record backlog starts from the "
                         "2,000-record answer, same answer as a plain bisection) of -X heapsize at which one sync_gate (two runs in a row) (TCP, the real simulator with "
                         "its sync listener) pulls the whole prefilled backlog; the gate sizes each batch to its free "
                         "heap. seal: callgrind Ir of bench/mp_seal.py (K=%d 200-record build+seal) minus the same "
                         "driver with no pull, / K." % CG_K)
        print(json.dumps(res))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
