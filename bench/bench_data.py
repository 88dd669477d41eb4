"""Host side of the benchmark: build the inputs the MicroPython driver (bench/mp_scan.py) reads.

A data directory holds a gate state directory as a real gate has it (trust store, deny list,
config) plus the scanner lines to feed:

    gate.json      the gate config (+ "bench_now": the fixed clock the driver decides at)
    trust.cbor     trust store exported by a BackOffice
    deny.bin       deny list with `deny_count` revoked ids (none of the benchmarked riders)
    first.txt      one QR text per line, each from a different rider/credential (cache cold)
    returning.txt  one rider's codes: line 1 is the warm-up scan that fills the cache, then new
                   codes (counter +1 each) for the same credential
    verify.txt     "pub65hex msghex sighex" per line: the rider signatures of first.txt codes,
                   i.e. real Sig_structure messages and P1363 signatures

Everything is made with the host package (offgate_host), the same way `offgate demo` does.
"""
import json
import os
import time
from pathlib import Path

import cbor2
from offgate_host.wire import formats, keys
from offgate_host.backoffice.backoffice import BackOffice
from offgate_host.device.simgate import write_gate_dir

GATE_ID = 101
ZONE = 1


def _sig_structure(code: bytes):
    """(Sig_structure bytes, 64-byte signature) of a COSE_Sign1 code (RFC 9052 §4.4)."""
    obj = cbor2.loads(code)
    if isinstance(obj, cbor2.CBORTag):
        obj = obj.value
    protected, _unprotected, payload, sig = obj
    msg = cbor2.dumps(["Signature1", protected, b"", payload])
    return msg, sig


def build(work, n_first=40, n_returning=40, n_verify=20, deny_count=100, now=None):
    """Create the data directory `work`/data; returns (data dir, info dict)."""
    work = Path(work)
    now = int(time.time()) if now is None else int(now)
    bo = BackOffice(work / "backoffice")
    bo.init_issuer("offgate-bench", valid_from=now - 86400)
    bo.create_account("acct-bench", balance=100000)

    riders = []
    for _ in range(max(n_first, n_verify) + 1):
        k = keys.generate()
        cred = bo.issue_credential("acct-bench", keys.pub_bytes(k), zones=[ZONE], product=1, now=now)
        riders.append((k, cred))
    for _ in range(deny_count):
        bo.deny(os.urandom(8))

    data = work / "data"
    write_gate_dir(data, gate_id=GATE_ID, zone=ZONE, trust=bo.trust_bytes(), deny=bo.deny_bytes(),
                   max_age_s=60, skew_s=30)
    cfg_path = data / "gate.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["bench_now"] = now
    cfg_path.write_text(json.dumps(cfg, indent=1))

    first = []
    verify = []
    for i, (k, cred) in enumerate(riders[1:]):
        code = formats.make_auth_code(k, cred, iat=now, ctr=1)
        if i < n_first:
            first.append(formats.qr_text(code))
        if i < n_verify:
            msg, sig = _sig_structure(code)
            verify.append("%s %s %s" % (keys.pub_bytes(k).hex(), msg.hex(), sig.hex()))
    rk, rcred = riders[0]
    returning = [formats.qr_text(formats.make_auth_code(rk, rcred, iat=now, ctr=c))
                 for c in range(1, n_returning + 2)]
    (data / "first.txt").write_text("\n".join(first) + "\n")
    (data / "returning.txt").write_text("\n".join(returning) + "\n")
    (data / "verify.txt").write_text("\n".join(verify) + "\n")
    info = {"now": now, "n_first": n_first, "n_returning": n_returning, "n_verify": n_verify,
            "deny_count": deny_count, "typical_qr_text": returning[1], "verify": verify}
    return data, info


# --------------------------------------------------------------------------- running the driver

BENCH_DIR = Path(__file__).resolve().parent


def compile_driver():
    """Compile the firmware (as SimGate does) and bench/mp_scan.py to .mpy; return the env to run them.
    The driver runs compiled, like the gate's own entry point, so no compiler garbage lands on the
    128 KB heap before the measurement."""
    import subprocess
    from offgate_host.device import simgate
    out = simgate.repo_root() / "build" / "bench-mpy"
    out.mkdir(parents=True, exist_ok=True)
    src = BENCH_DIR / "mp_scan.py"
    mpy = out / "mp_scan.mpy"
    tmp = mpy.with_name(mpy.name + ".tmp%d" % os.getpid())  # atomic: a test may run beside `make bench`
    r = subprocess.run([simgate.mpy_cross_bin(), "-s", "mp_scan.py", "-o", str(tmp), str(src)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("mpy-cross failed on bench/mp_scan.py: %s" % r.stderr.strip())
    os.replace(tmp, mpy)
    return simgate.micropython_env(extra_path=[out])


def driver_cmd(data, heap, *args):
    from offgate_host.device import simgate
    return [simgate.micropython_bin(), "-X", "heapsize=" + heap, "-m", "mp_scan", str(data), *map(str, args)]


def run_driver(env, data, heap, *args, timeout=300):
    """Run the driver; return (exit code, [JSON records], stderr)."""
    import subprocess
    from offgate_host.device import simgate
    r = subprocess.run(driver_cmd(data, heap, *args), env=env, cwd=str(simgate.repo_root()), capture_output=True,
                       text=True, timeout=timeout)
    recs = []
    for ln in r.stdout.splitlines():
        ln = ln.strip()
        if ln.startswith("{"):
            recs.append(json.loads(ln))
    return r.returncode, recs, r.stderr
