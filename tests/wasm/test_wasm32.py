"""32-bit fidelity: the pure-logic firmware tests on a 32-bit MicroPython.

The gate runs on an ESP32, whose MicroPython is a 32-bit build (31-bit small ints: 2**30 and up are
heap-allocated big ints); the unix port the other tests use is 64-bit, where ints up to 2**62 are
small, so an int-width bug would pass there. This module runs the firmware on the MicroPython
webassembly port (npm `@micropython/micropython-webassembly-pyscript`, pinned in
tests/wasm/package.json; wasm32 = 32-bit, like the ESP32) under Node.js, via tests/wasm/run.mjs.

What runs there:
* the firmware unit-test modules in PURE (tests/firmware/test_*.py) through mptest.py;
* Wycheproof ECDSA P-256/SHA-256 P1363: every case, uncompressed and compressed key, result for result;
* tests/wasm/int_probe.py (CBOR/base45/CRC/clock/replay/deny list at the 2**30/2**31/2**32/2**64
  boundaries) on both the 64-bit unix port and the 32-bit port: outputs must match line for line;
* the decision pipeline (tests/firmware/mp/gate_probe.py) with post-2038 and post-2106 times and
  counters around 2**30..2**32-1, codes made by the host libraries: both ports, same reasons.

That port has no viper/native emitter, no cryptolib, no `machine` and no littlefs (its file system is
an in-memory Emscripten MEMFS), so firmware code there takes its fallbacks; test modules that need
those features are listed in SKIP with the reason (reported as skips). Every test_*.py module must be
in PURE or SKIP: a new one fails with "classify this module for the 32-bit run".

Node.js and npm are required (CI has them): if they are missing these tests FAIL, they do not skip.
`make test` installs the npm package (npm ci --prefix tests/wasm); if it is missing, the first test
here runs that same `npm ci`.
"""
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from mpbridge import FW_TESTS, ROOT, run_micropython

WASM = ROOT / "tests" / "wasm"
RUN = WASM / "run.mjs"
PACKAGE = "@micropython/micropython-webassembly-pyscript"
WYCHEPROOF = Path(__file__).resolve().parents[3] / "shared" / "vectors" / "wycheproof"
WYCHEPROOF_FILE = WYCHEPROOF / "ecdsa_secp256r1_sha256_p1363_test.json"
WYCHEPROOF_COUNT = 262  # numberOfTests of the pinned file

# Firmware test modules that run on the 32-bit port: pure logic (decoders, verification, policy,
# log). Files are fine: /tmp is in the port's in-memory FS.
PURE = {
    "test_base45": "base45 decoder/encoder",
    "test_cbor": "CBOR decoder/encoder",
    "test_config": "config validation, JSON file",
    "test_cose": "COSE_Sign1 parsing + ES256 verification",
    "test_denylist": "deny list file and binary search",
    "test_denydelta": "deny list deltas: streaming merge, 10^5 ids, prefixes",
    "test_ecdsa": "P-256 ECDSA big-int arithmetic",
    "test_oplog": "operation log: hash-chained segment files",
    "test_replay": "replay guard log",
    "test_scanner": "scanner line assembly",
    "test_frames": "sync framing: headers, CRC-32, resync",
    "test_oplog_gate": "the gate's use of the operation log (decision, log, relay order)",
    "test_p256_comb": "fixed-base comb tables for P-256",
    "test_p256_field": "viper fast path absent here: big-int fallback",
    "test_p256_mul": "the gate's own key operations: fast path absent here, big-int fallback",
    "test_credcache": "verified-credential cache, LRU and heap trim",
    "test_passback": "passback table (entry gates) and its place in Gate.scan",
    "test_pulls": "a sync session's batch sizing from the gate's heap",
}
# Firmware test modules NOT run on the 32-bit port, each with the reason (the port lacks viper /
# native code, cryptolib, `machine` and littlefs). Kept explicit: nothing is skipped silently.
SKIP = {
    # "test_example": "needs machine.Pin (hardware)",
    "test_batchrow": "batch imports aesccm, which needs cryptolib (not in the webassembly port)",
}

NODE_MISSING = ("Node.js and npm are required for the 32-bit MicroPython (webassembly) tests; install "
                "Node.js >= 18 with npm (CI has them), then `make test` installs %s" % PACKAGE)


def _pinned_version():
    return json.loads((WASM / "package.json").read_text())["dependencies"][PACKAGE]


_PORT = {}


def wasm_port():
    """Node.js present and the pinned npm package installed (npm ci if not): the version, else the
    calling test FAILS (a plain function, not a fixture: a fixture would make it an error) with the
    reason. Checked once per session."""
    if not _PORT:
        _PORT.update(_check_port())
    if "error" in _PORT:
        pytest.fail(_PORT["error"], pytrace=False)
    return _PORT["version"]


def _check_port():
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        return {"error": NODE_MISSING}
    pkg = WASM / "node_modules" / "@micropython" / "micropython-webassembly-pyscript" / "package.json"
    want = _pinned_version()
    if not pkg.exists() or json.loads(pkg.read_text())["version"] != want:
        r = subprocess.run([npm, "ci", "--prefix", str(WASM), "--no-audit", "--no-fund"],
                           capture_output=True, text=True, timeout=300)
        if r.returncode != 0 or not pkg.exists():
            return {"error": "`npm ci --prefix tests/wasm` failed (it installs %s@%s for the 32-bit tests; "
                             "`make test` runs it too):\n%s%s" % (PACKAGE, want, r.stdout, r.stderr)}
    return {"version": want, "node": node}


def run_wasm(*args, timeout=120):
    """node run.mjs ARGS -> (facts from the WASM32 line, CompletedProcess with that line removed)."""
    r = subprocess.run([_PORT.get("node", "node"), str(RUN), *map(str, args)], capture_output=True, text=True,
                       timeout=timeout, cwd=str(ROOT))
    m = re.search(r"^WASM32 (\{.*\})$", r.stdout, re.M)
    assert m, "run.mjs printed no runtime line (rc %d):\n%s%s" % (r.returncode, r.stdout, r.stderr)
    r.stdout = r.stdout[:m.start()] + r.stdout[m.end() + 1:]
    return json.loads(m.group(1)), r


def assert_32bit(facts):
    assert facts["implementation"] == "micropython" and facts["platform"] == "webassembly", facts
    assert facts["maxsize"] == 2 ** 31 - 1, "not a 32-bit build: sys.maxsize = %d" % facts["maxsize"]
    # 31-bit small ints, exactly like the ESP32: -2**30 .. 2**30-1 immediate, beyond boxed
    assert facts["smallint_2p30m1_immediate"] and facts["smallint_m2p30_immediate"], facts
    assert not facts["smallint_2p30_immediate"] and not facts["smallint_m2p30m1_immediate"], facts


# ---------------------------------------------------------------- the runtime itself

def test_runtime_is_32bit_micropython():
    version = wasm_port()
    facts, r = run_wasm("probe")
    assert r.returncode == 0, r.stdout + r.stderr
    assert_32bit(facts)
    assert facts["version"] == version.split("-")[0], (facts["version"], version)
    # What the port lacks, so firmware there runs its fallback paths (said here, not assumed):
    missing = [k for k in ("viper", "native", "cryptolib", "machine_module", "littlefs") if not facts[k]]
    print("32-bit wasm MicroPython %s (maxsize %d); lacks: %s -> firmware fallbacks exercised"
          % (facts["version"], facts["maxsize"], ", ".join(missing) or "nothing"))


# ---------------------------------------------------------------- firmware unit-test modules

ON_DISK = sorted(p.stem for p in FW_TESTS.glob("test_*.py"))


@pytest.mark.parametrize("module", sorted(set(ON_DISK) | set(PURE) | set(SKIP)))
def test_firmware_module_on_wasm32(module):
    wasm_port()
    if module in PURE and module in SKIP:
        pytest.fail("%s is in both PURE and SKIP of tests/wasm/test_wasm32.py" % module, pytrace=False)
    if module not in ON_DISK:
        pytest.fail("tests/wasm/test_wasm32.py lists %s but tests/firmware/%s.py does not exist" % (module, module),
                    pytrace=False)
    if module in SKIP:
        pytest.skip("not run on the 32-bit wasm port: %s" % SKIP[module])
    if module not in PURE:
        pytest.fail("classify this module for the 32-bit run: tests/firmware/%s.py is in neither PURE "
                    "(runs on the 32-bit wasm port) nor SKIP (with the reason) of tests/wasm/test_wasm32.py"
                    % module, pytrace=False)
    facts, r = run_wasm("test", module)
    assert_32bit(facts)
    out = r.stdout + r.stderr
    m = re.search(r"^(\d+) passed, (\d+) failed$", r.stdout, re.M)
    assert m, "no result line on the 32-bit port:\n" + out
    assert int(m.group(2)) == 0 and r.returncode == 0, "failures on the 32-bit port:\n" + out
    assert int(m.group(1)) > 0, "module ran no test"


# ---------------------------------------------------------------- Wycheproof on 32 bits

def _compress(pub65):
    return bytes([2 | (pub65[64] & 1)]) + pub65[1:33]


def test_wycheproof_p1363_on_wasm32(tmp_path):
    wasm_port()
    assert WYCHEPROOF_FILE.exists(), "Wycheproof vectors missing: expected %s" % WYCHEPROOF_FILE
    data = json.loads(WYCHEPROOF_FILE.read_text())
    expect, lines = {}, []
    for g in data["testGroups"]:
        assert g["sha"] == "SHA-256" and g["publicKey"]["curve"] == "secp256r1"
        pub = bytes.fromhex(g["publicKey"]["uncompressed"])
        for t in g["tests"]:
            tc = t["tcId"]
            for form, key in (("u", pub), ("c", _compress(pub))):
                cid = "%d%s" % (tc, form)
                expect[cid] = (t["result"], t["comment"])
                lines.append("%s %s %s %s" % (cid, key.hex(), t["msg"] or "-", t["sig"] or "-"))
    assert len(expect) == 2 * data["numberOfTests"] == 2 * WYCHEPROOF_COUNT
    cases = tmp_path / "wycheproof_cases.txt"
    cases.write_text("\n".join(lines) + "\n")
    facts, r = run_wasm("script", WASM / "ecdsa_cases.py", cases)
    assert_32bit(facts)
    assert r.returncode == 0, r.stdout + r.stderr
    got = {}
    for line in r.stdout.splitlines():
        f = line.split()
        if f and f[0] in ("R", "E"):
            got[f[1]] = line
    assert ("DONE %d" % len(expect)) in r.stdout, r.stdout[-2000:] + r.stderr
    bad = []
    for cid, (result, comment) in expect.items():
        line = got.get(cid)
        if line is None or not line.startswith("R "):
            bad.append((cid, comment, "verify raised or no result: %r" % line))
            continue
        ok = line.endswith(" 1")
        if result == "acceptable":
            continue  # none in the pinned file; recorded by tests/cross/test_ecdsa_vectors.py's policy
        if ok != (result == "valid"):
            bad.append((cid, comment, "expected %s, got %s" % (result, ok)))
    assert not bad, "32-bit port disagrees with Wycheproof:\n" + "\n".join(map(str, bad))
    assert len(got) == 2 * WYCHEPROOF_COUNT


# ---------------------------------------------------------------- 32-bit vs 64-bit differential

def _both_ports(script, *data):
    """Run a probe script on the 64-bit unix port and the 32-bit wasm port; return both outputs."""
    unix = run_micropython(script, *data, timeout=300)
    assert unix.returncode == 0, "unix port:\n" + unix.stdout + unix.stderr
    facts, wasm = run_wasm("script", script, *data)
    assert_32bit(facts)
    assert wasm.returncode == 0, "wasm port:\n" + wasm.stdout + wasm.stderr
    return unix.stdout.splitlines(), wasm.stdout.splitlines()


def _diff(unix, wasm):
    out = []
    for i in range(max(len(unix), len(wasm))):
        a = unix[i] if i < len(unix) else "<missing>"
        b = wasm[i] if i < len(wasm) else "<missing>"
        if a != b:
            out.append("64-bit unix: %s\n32-bit wasm: %s" % (a, b))
    return out


def test_int_boundaries_same_on_32_and_64_bit():
    wasm_port()
    unix, wasm = _both_ports(WASM / "int_probe.py")
    assert unix and unix[-1].startswith("DONE ") and int(unix[-1].split()[1]) > 300, unix[-5:]
    d = _diff(unix, wasm)
    assert not d, "firmware differs between 64-bit and 32-bit MicroPython:\n" + "\n".join(d[:40])


def _pipeline_cases(work):
    """Host-made world and codes around 2038 (2**31 s) and 2106 (2**32 s), counters to 2**32-1."""
    import cbor2
    from offgate_host.wire import formats
    from offgate_host.backoffice.backoffice import BackOffice
    from offgate_host.wallet import Wallet

    day = 86400
    t31, t32 = 1 << 31, 1 << 32
    bo = BackOffice(work / "bo")
    bo.init_issuer("y2038", valid_from=t31 - 30 * day, valid_days=365 * 80)  # until past 2**32 s
    bo.create_account("a", balance=50000)  # many credentials, each holding the default cap

    def wallet(tag, start, secs, issued=None):
        w = Wallet.create(work / (tag + ".json"))
        w.set_credential(bo.issue_credential("a", w.pub65, zones=[1], valid_from=start, valid_seconds=secs,
                                             now=start if issued is None else issued))
        return w

    def code(w, iat, ctr):
        if 1 <= ctr <= formats.CTR_MAX:
            c = formats.make_auth_code(w.key, w.credential, iat=iat, ctr=ctr)
        else:  # out of the protocol's range: the host library refuses to make it, so sign by hand
            c = formats.sign1(w.key, {1: -7}, cbor2.dumps({1: w.credential, 2: iat, 3: ctr}))
        return formats.qr_text(c).encode()

    cases = []  # (now, line bytes, expected reason)
    first = None
    for i, (start, now) in enumerate(((t31 - 10 * day, t31 - 5), (t31 - 10 * day, t31 + 5),
                                      (t32 - 10 * day, t32 - 5), (t32 - 10 * day, t32 + 5))):
        w = wallet("g%d" % i, start, 20 * day)  # a credential (own cti) per group: counters start afresh
        first = first or w
        for ctr in (1, (1 << 30) - 1, 1 << 30, (1 << 31) - 1, 1 << 31, (1 << 32) - 2):
            cases.append((now, code(w, now, ctr), "OK"))
            cases.append((now, code(w, now, ctr), "REPLAY"))
        cases.append((now, code(w, now, (1 << 31) + 7), "REPLAY"))  # below the highest seen
        cases.append((now, code(w, now, (1 << 32) - 1), "OK"))
        cases.append((now, code(w, now, 1 << 32), "MALFORMED_CODE"))  # ctr past uint32
        cases.append((now, code(w, now, 1 << 33), "MALFORMED_CODE"))
        cases.append((now, code(w, now - 91, 5), "CODE_STALE"))
        cases.append((now, code(w, now + 31, 5), "CODE_FUTURE"))
    e = wallet("edge", t31 - 60, 120, issued=t31 - 3600)  # valid [2**31 - 60, 2**31 + 60): future-dated, so nbf is in it
    for now, want in ((t31 + 59, "OK"), (t31 + 60, "CRED_EXPIRED"), (t31 - 61, "CRED_NOT_YET_VALID"),
                      (t31 - 60, "OK")):
        cases.append((now, code(e, now, 1 + len(cases)), want))
    cases.append((t32 + 5, code(first, t32 + 5, 1 << 31), "CRED_EXPIRED"))
    setup = "SETUP %s %s" % (bo.trust_bytes().hex(), bo.deny_bytes().hex())
    return setup, cases


def test_pipeline_past_2038_same_on_32_and_64_bit(tmp_path):
    wasm_port()
    setup, cases = _pipeline_cases(tmp_path)
    f = tmp_path / "pipeline_cases.txt"
    f.write_text(setup + "\n" + "".join("%d %s\n" % (now, line.hex()) for now, line, _ in cases))
    unix, wasm = _both_ports(WASM / "pipeline_probe.py", f)
    d = _diff(unix, wasm)
    assert not d, "decision pipeline differs between 64-bit and 32-bit MicroPython:\n" + "\n".join(d[:40])
    assert wasm[-1] == "DONE %d" % len(cases), wasm[-5:]
    got = [ln.split(" ", 2)[2] for ln in wasm if ln.startswith("D ")]
    want = [w for _, _, w in cases]
    bad = [(i, cases[i][0], w, g) for i, (w, g) in enumerate(zip(want, got)) if w != g]
    assert len(got) == len(cases) and not bad, "(case, now, expected, got): %s" % bad
