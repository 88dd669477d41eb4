"""10,000 scans in a row on the simulated gate at -X heapsize=128k (the issue's memory criterion):
every code decided, heap in use after each scan, the peak, and fragmentation (the largest free
block) at checkpoints. Riders are a realistic mix: a few frequent riders (returning: their
credential and its 2^128 key multiple are cached) and many occasional ones (first-seen, or seen so
long ago that the cache has let them go), so the credential cache fills and churns.

On the 32-bit build (../shared/tools/micropython32, the ESP32 stand-in) when it is there, at the
device's 128k; else on the 64-bit port at its 128k-equivalent, 160k.

    python bench/soak_128k.py [--scans N] [--riders R] [--heap H] [--micropython PATH]   -> one JSON object
"""
import argparse
import json
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GC_BLOCK = 32  # bytes per GC block on the 64-bit unix port (16 on the ESP32)


def build(work, n_scans, n_riders, seed=5):
    from offgate_host.backoffice.backoffice import BackOffice
    from offgate_host.device.simgate import write_gate_dir
    from offgate_host.wallet import Wallet
    now = int(time.time())
    bo = BackOffice(work / "bo")
    bo.init_issuer("soak", valid_from=now - 86400)
    bo.create_account("a", balance=10 ** 9)
    wallets = []
    for i in range(n_riders):
        w = Wallet.create(work / ("w%d.json" % i))
        w.set_credential(bo.issue_credential("a", w.pub65, zones=[1], now=now))
        wallets.append(w)
    rnd = random.Random(seed)
    frequent = max(1, n_riders // 10)
    ctr = [0] * n_riders
    lines = []
    for _ in range(n_scans):  # 70 % of scans by the 10 % frequent riders
        i = rnd.randrange(frequent) if rnd.random() < 0.7 else rnd.randrange(n_riders)
        ctr[i] += 1
        lines.append(Wallet.qr_text(wallets[i].code(now, ctr[i])))
    gate_dir = work / "gate"
    # max_age_s: freshness is tested elsewhere, a long run must not go stale. Default log: the
    # driver acknowledges it every ACK_EVERY scans, as a sync would (an unsynced gate's log fills)
    write_gate_dir(gate_dir, gate_id=1, zone=1, trust=bo.trust_bytes(), deny=bo.deny_bytes(),
                   max_age_s=3600)
    codes = work / "codes.txt"
    codes.write_text("".join(ln + "\r\n" for ln in lines))
    return gate_dir, codes


def device_runtime():
    """(binary, heap): the 32-bit build at the device's 128k when it is there (the ESP32
    stand-in: heap targets are stated for it), else the 64-bit port at its 128k-equivalent."""
    from offgate_host.device import simgate
    mp = simgate.micropython32_bin()
    if mp:
        return mp, simgate.DEVICE_HEAP
    return simgate.default_micropython_bin(), simgate.HEAP_64BIT


def run(n_scans=10000, n_riders=300, heap=None, every=1000, mp=None):
    from offgate_host.device.simgate import micropython_env, word_bits
    if mp is None:
        mp, dheap = device_runtime()
        heap = heap or dheap
    gc_block = 16 if word_bits(mp) == 32 else 32
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        gate_dir, codes = build(work, n_scans, n_riders)
        t0 = time.time()
        r = subprocess.run([mp, "-X", "heapsize=" + heap, "-m", "mp_soak", str(gate_dir),
                            str(codes), str(every)], capture_output=True, text=True, timeout=3600,
                           env=micropython_env([ROOT / "bench"], mp=mp), cwd=str(gate_dir))
        secs = time.time() - t0
    checkpoints, end, cur = [], None, None
    for ln in r.stdout.splitlines():
        if ln.startswith("CHK "):
            cur = json.loads(ln[4:])
            checkpoints.append(cur)
        elif ln.startswith("END "):
            end = json.loads(ln[4:])
        elif cur is not None:
            m = re.search(r"max free sz: (\d+)", ln)
            if m:
                cur["largest_free_block_bytes"] = int(m.group(1)) * gc_block
    if r.returncode != 0 or end is None:
        return {"status": "failed", "exit": r.returncode, "stderr": r.stderr[-2000:]}
    frag = [1 - c["largest_free_block_bytes"] / c["free"] for c in checkpoints if c.get("largest_free_block_bytes")]
    return {
        "status": "ok", "heap": heap, "micropython": "32-bit" if gc_block == 16 else "64-bit", "scans": end["scans"], "riders": n_riders, "seconds": round(secs, 1),
        "opened": end["opened"], "denied": end["denied"],
        "first_seen_scans": end["scans"] - end["cache_hits"], "returning_scans": end["cache_hits"],
        "heap_in_use_after_setup_bytes": end["setup_used"],
        "max_heap_in_use_between_scans_bytes": end["max_used_between_scans"],
        "min_free_between_scans_bytes": end["min_free_between_scans"],
        "fragmentation_max": round(max(frag), 3) if frag else None,
        "largest_free_block_min_bytes": min((c["largest_free_block_bytes"] for c in checkpoints
                                             if "largest_free_block_bytes" in c), default=None),
        "checkpoints": checkpoints,
        "method": "gate.build() as sim_main wires it (config defaults), every code through Gate.scan, then "
                  "gc.collect() and Gate.idle() as Gate.run does between scans; the operation log is "
                  "acknowledged every 1,000 scans as a sync would (its default 32 segments hold 2,048 records). Heap after gc.collect() after each scan "
                  "(the peak inside a scan is in results.json 'heap': in use after setup + what a scan needs); fragmentation = 1 - largest free block / free heap at checkpoints "
                  "(mem_info 'max free sz' x %d-byte GC blocks)." % gc_block,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scans", type=int, default=10000)
    ap.add_argument("--riders", type=int, default=300)
    ap.add_argument("--heap", default=None, help="default: 128k on the 32-bit build, 160k on the 64-bit port")
    ap.add_argument("--micropython", default=None, help="default: the 32-bit build if present")
    a = ap.parse_args()
    r = run(a.scans, a.riders, a.heap, mp=a.micropython)
    print(json.dumps(r))
    return 0 if r["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
