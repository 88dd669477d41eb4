"""Heap of the gate on the 64-bit PyPI port and on the 32-bit build (the ESP32 stand-in,
../shared/tools/micropython32), firmware from .mpy files and (32-bit) from a ROMFS image.

For each: heap in use after boot and after 5 first-seen scans (gc.mem_alloc() at -X heapsize=128k
and 256k, the driver's own baseline subtracted), free heap left, and the smallest -X heapsize (1 KiB
search, bench/bracket.py) at which the gate boots and opens all 5 codes.

    python bench/heap32.py [--hints JSON]   -> one JSON object on stdout

--hints '{"32-bit .mpy": 100, ...}': where each variant's search starts (bench/run.py passes the
previous results); the answer is the plain bisection's, the hint only saves trials.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "support"))
sys.path.insert(0, str(ROOT / "bench"))


def variants():
    from offgate_host.device import simgate
    out = [("64-bit .mpy", simgate.default_micropython_bin(), None)]
    mp32 = simgate.micropython32_bin()
    if mp32:
        out.append(("32-bit .mpy", mp32, None))
        out.append(("32-bit ROMFS", mp32, "romfs"))
    return out


def romfs_image(mp, work):
    """A ROMFS image of the firmware compiled for `mp` (mpremote.romfs.make_romfs)."""
    from mpremote.romfs import make_romfs
    from offgate_host.device import simgate
    src = simgate.compile_firmware(mp=mp)
    img = work / "firmware.romfs"
    with open(os.devnull, "w") as devnull:
        old = sys.stdout
        sys.stdout = devnull  # make_romfs prints every file
        try:
            img.write_bytes(make_romfs(str(src), mpy_cross=False))
        finally:
            sys.stdout = old
    return img


def run(work, mp, romfs, gate_dir, codes, heap):
    from offgate_host.device import simgate
    env = simgate.micropython_env([ROOT / "bench"], mp=mp)
    if romfs:
        env["MICROPY_ROMFS"] = str(romfs)
        env["MICROPYPATH"] = "/rom:" + str(ROOT / "bench")
    d = work / ("g%d" % time.monotonic_ns())
    shutil.copytree(gate_dir, d)
    cfg = json.loads((d / "gate.json").read_text())
    cfg["state_dir"] = str(d)  # a fresh state per run: no replays from the previous one
    (d / "gate.json").write_text(json.dumps(cfg))
    r = subprocess.run([mp, "-X", "heapsize=%dk" % heap, "-m", "mp_heap", str(d), str(codes)], env=env,
                       capture_output=True, text=True, timeout=300, cwd=str(ROOT))
    shutil.rmtree(d, ignore_errors=True)
    for ln in r.stdout.splitlines():
        if ln.startswith("{"):
            return json.loads(ln)
    return None


def opens(r):
    return bool(r) and r["opened"] == r["of"]


def main():
    from bracket import smallest_passing
    from fieldhelp import NOW, Issuer
    hints = json.loads(sys.argv[sys.argv.index("--hints") + 1]) if "--hints" in sys.argv else {}
    from offgate_host.device.simgate import write_gate_dir
    work = Path(tempfile.mkdtemp(prefix="offgate-heap32-"))
    try:
        iss = Issuer()
        gate_dir = work / "gate"
        write_gate_dir(gate_dir, gate_id=1, zone=1, trust=iss.trust())
        codes = work / "codes.txt"
        codes.write_text("\n".join(iss.code(iss.credential()[1], NOW, 1) for _ in range(5)) + "\n")
        res = {}
        for name, mp, rom in variants():
            romfs = romfs_image(mp, work) if rom else None
            at128 = run(work, mp, romfs, gate_dir, codes, 128)
            at256 = run(work, mp, romfs, gate_dir, codes, 256)
            # smallest in [24, 256] (256 taken to work, as before)
            lo, _ = smallest_passing(lambda k: (opens(run(work, mp, romfs, gate_dir, codes, k)), None), 23, 256,
                                     hint=hints.get(name))
            res[name] = {"at_128k": at128, "at_256k": at256, "min_heapsize_kib": lo,
                         "romfs_image_bytes": romfs.stat().st_size if romfs else None}
        res["method"] = ("bench/mp_heap.py: gate.build as sim_main does (config unloaded), then 5 first-seen codes "
                         "(Verifier.decide, replay, operation log, idle) with gc.collect() after each; in_use = "
                         "gc.mem_alloc() minus the driver's baseline before the first firmware import. min_heapsize: "
                         "1 KiB search of -X heapsize (bench/bracket.py, from the previous result as a hint; the plain "
                         "bisection's answer) at which it boots and all 5 open. ROMFS: the same .mpy "
                         "files in a ROMFS image (MICROPY_ROMFS, bytecode executed in place outside the heap, as a "
                         "ROMFS/frozen ESP32 build).")
        print(json.dumps(res))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
