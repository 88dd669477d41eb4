"""Where the gate's heap goes after boot (issue 12): bench/mp_bootmap.py on the 32-bit build (and
the 64-bit port), firmware from .mpy files, at -X heapsize=256k so nothing is squeezed.

    python bench/bootmap.py [--sim] [--64]   -> one JSON object on stdout (per build: the import
    rows largest first, buffers, qstr pools at start and after boot, totals; at_128k: free heap
    and the largest free block, in GC blocks of 16 bytes (32 on 64-bit), after boot at the device
    heap, 160k on the 64-bit port)
"""
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "support"))
sys.path.insert(0, str(ROOT / "bench"))


def run(mp, gate_dir, sim, heap=256, layout=False):
    from offgate_host.device import simgate
    env = simgate.micropython_env([ROOT / "bench"], mp=mp)
    r = subprocess.run([mp, "-X", "heapsize=%dk" % heap, "-m", "mp_bootmap", str(gate_dir)] + (["sim"] if sim else [])
                       + (["layout"] if layout else []),
                       env=env, capture_output=True, text=True, timeout=300, cwd=str(ROOT))
    out, q, tag, maxfree = None, {}, None, None
    for ln in r.stdout.splitlines():
        if "max free sz:" in ln:
            maxfree = int(ln.rsplit(":", 1)[1])
        elif ln.startswith("QSTR "):
            tag = ln[5:]
        elif ln.startswith("qstr pool:") and tag:
            q[tag] = dict(kv.split("=") for kv in ln[len("qstr pool: "):].replace(" ", "").split(","))
        elif ln.startswith("{"):
            out = json.loads(ln)
    if out is None:
        raise SystemExit("mp_bootmap failed: " + (r.stderr or r.stdout)[-2000:])
    out["max_free_blocks"] = maxfree
    if layout:
        return out
    out["imports"].sort(key=lambda r: -r[1])
    out["qstr"] = q
    return out


def main():
    from fieldhelp import Issuer
    from offgate_host.device import simgate
    from offgate_host.device.simgate import write_gate_dir
    work = Path(tempfile.mkdtemp(prefix="offgate-bootmap-"))
    try:
        iss = Issuer()
        gate_dir = work / "gate"
        write_gate_dir(gate_dir, gate_id=1, zone=1, trust=iss.trust())
        cfg = json.loads((gate_dir / "gate.json").read_text())
        cfg["state_dir"] = str(gate_dir)
        (gate_dir / "gate.json").write_text(json.dumps(cfg))
        res = {}
        builds = [("32-bit .mpy", simgate.micropython32_bin())]
        if "--64" in sys.argv:
            builds.append(("64-bit .mpy", simgate.default_micropython_bin()))
        for name, mp in builds:
            if mp:
                res[name] = run(mp, gate_dir, "--sim" in sys.argv)
                res[name]["at_128k"] = run(mp, gate_dir, "--sim" in sys.argv, 128 if "32" in name else 160, True)
        print(json.dumps(res))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
