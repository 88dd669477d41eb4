// Runs offgate firmware code on the 32-bit MicroPython webassembly port under Node.js.
//
// The ESP32's MicroPython is a 32-bit build (31-bit small ints); the unix port the other tests use
// is 64-bit (63-bit small ints), so int-width bugs would hide there. This port
// (@micropython/micropython-webassembly-pyscript, pinned in package.json) is wasm32, like the ESP32.
// It has no viper/native emitter, no cryptolib, no `machine` and no littlefs (its FS is an in-memory
// Emscripten MEMFS): firmware paths needing those must use their fallbacks here.
//
//   node run.mjs probe                         runtime facts only (the "WASM32 {...}" line)
//   node run.mjs test MODULE...                mptest.main(MODULES) over tests/firmware/mp/test_*.py
//   node run.mjs script FILE [DATA...]         run FILE (Python) with DATA files copied to /data/;
//                                              FILE sees ARGV = [FILE, "/data/<name>"...] (this port has no sys.argv)
//
// Options (before the mode): --heap BYTES (initial GC heap; this port grows its heap on demand,
// so it is not an ESP32 heap limit -- the unix-port tests keep that check), --pystack WORDS.
//
// Every mode first prints one line "WASM32 <json>" (sys.maxsize, small-int width evidence,
// which optional features exist) so the caller can assert it really is a 32-bit build.
// Files land in the wasm FS as: /offgate/fw/offgate/**/*.py (firmware sources), /offgate/tests/*.py
// (firmware test modules and helpers); sys.path = ["/offgate/tests", "/offgate/fw", ...].
// Exit status: 0 ok, 1 test failures (mptest's "N failed" > 0), 2 a Python exception escaped,
// 3 usage / setup error.
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "..", "..");
const FW_SRC = path.join(ROOT, "firmware", "offgate");
const FW_TESTS = path.join(ROOT, "tests", "firmware", "mp");

function usage(msg) {
  process.stderr.write((msg ? msg + "\n" : "") +
    "usage: node run.mjs [--heap BYTES] [--pystack WORDS] (probe | test MODULE... | script FILE [DATA...])\n");
  process.exitCode = 3;
}

const argv = process.argv.slice(2);
let heapsize = 1024 * 1024;
let pystack = 8 * 1024;
while (argv.length && argv[0].startsWith("--")) {
  const opt = argv.shift();
  const val = Number(argv.shift());
  if (!Number.isInteger(val) || val <= 0) { usage("bad value for " + opt); process.exit(3); }
  if (opt === "--heap") heapsize = val;
  else if (opt === "--pystack") pystack = val;
  else { usage("unknown option " + opt); process.exit(3); }
}
const mode = argv.shift();
if (!["probe", "test", "script"].includes(mode) || (mode !== "probe" && !argv.length)) {
  usage(mode ? "bad mode or missing arguments: " + mode : "missing mode");
  process.exit(3);
}

// Unbuffered byte output straight to our stdout/stderr (keeps interleaving as MicroPython wrote it).
const mp = await loadMicroPython({
  heapsize,
  pystack,
  linebuffer: false,
  stdout: (data) => process.stdout.write(data),
  stderr: (data) => process.stderr.write(data),
});
const FS = mp.FS;

function mkdirs(p) {
  let cur = "";
  for (const part of p.split("/").filter(Boolean)) {
    cur += "/" + part;
    try { FS.mkdir(cur); } catch (e) { /* exists */ }
  }
}

function copyPy(srcDir, dstDir, recurse) {
  mkdirs(dstDir);
  let n = 0;
  for (const ent of fs.readdirSync(srcDir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (ent.isDirectory()) {
      if (recurse && ent.name !== "__pycache__") n += copyPy(path.join(srcDir, ent.name), dstDir + "/" + ent.name, true);
      continue;
    }
    if (!ent.name.endsWith(".py")) continue;
    FS.writeFile(dstDir + "/" + ent.name, fs.readFileSync(path.join(srcDir, ent.name)));
    n++;
  }
  return n;
}

if (copyPy(FW_SRC, "/offgate/fw/offgate", true) === 0) { usage("no firmware sources in " + FW_SRC); process.exit(3); }
copyPy(FW_TESTS, "/offgate/tests");
mkdirs("/tmp");  // fwutil.scratch_dir() makes its directories under /tmp (MEMFS here)
mkdirs("/data");

function py(code) {
  try {
    mp.runPython(code);
    return true;
  } catch (e) {
    // PythonError: its message is the MicroPython traceback
    process.stdout.write("\nUNCAUGHT " + String(e && e.message ? e.message : e) + "\n");
    return false;
  }
}

// Runtime facts. Small ints are immediate objects (no allocation): two equal values made at run
// time are `is`-identical iff they fit in a small int. On a 32-bit build the largest is 2**30-1.
const PROBE = `
import sys, json, gc
def _feat(name):
    try:
        __import__(name)
        return True
    except ImportError:
        return False
def _lfs():
    try:
        import vfs
    except ImportError:
        import os as vfs
    return hasattr(vfs, "VfsLfs2") or hasattr(vfs, "VfsLfs1")
def _emitter(kind):
    try:
        exec("@micropython.%s\\ndef _f(x):\\n    return x\\n" % kind)
        return True
    except SyntaxError:
        return False
_k = int("536870912")  # 2**29, made at run time (no compile-time constant folding)
_a, _b = (_k - 1) * 2 + 1, (_k - 1) * 2 + 1    # 2**30 - 1: small-int arithmetic, no overflow
_c, _d = _k * 2, _k * 2                        # 2**30: overflows a 31-bit small int -> boxed
_e, _f = -_k * 2, -_k * 2                      # -2**30: still small
_g, _h = -_k * 2 - 1, -_k * 2 - 1              # -2**30 - 1: boxed
print("WASM32 " + json.dumps({
    "implementation": sys.implementation.name,
    "version": ".".join(str(v) for v in sys.implementation.version[:3]),
    "machine": getattr(sys.implementation, "_machine", ""),
    "platform": sys.platform,
    "maxsize": sys.maxsize,
    "smallint_2p30m1_immediate": _a is _b,
    "smallint_2p30_immediate": _c is _d,
    "smallint_m2p30_immediate": _e is _f,
    "smallint_m2p30m1_immediate": _g is _h,
    "viper": _emitter("viper"),
    "native": _emitter("native"),
    "cryptolib": _feat("cryptolib"),
    "machine_module": _feat("machine"),
    "littlefs": _lfs(),
    "mem_free": gc.mem_free(),
}))
del _k, _a, _b, _c, _d, _e, _f, _g, _h
sys.path[:0] = ["/offgate/tests", "/offgate/fw"]
`;

let rc = 0;
if (!py(PROBE)) {
  rc = 2;
} else if (mode === "test") {
  const names = JSON.stringify(argv);
  if (!py(`import mptest\n_offgate_rc = mptest.main(${names})\n`)) rc = 2;
  else rc = mp.globals.get("_offgate_rc") ? 1 : 0;
} else if (mode === "script") {
  const file = argv.shift();
  for (const d of argv) FS.writeFile("/data/" + path.basename(d), fs.readFileSync(d));
  const code = fs.readFileSync(file, "utf8");
  FS.writeFile("/offgate/tests/__script__.py", code);
  const args = JSON.stringify([file, ...argv.map((d) => "/data/" + path.basename(d))]);
  if (!py(`_offgate_rc = 0\n` +
          `try:\n    exec(open("/offgate/tests/__script__.py").read(), {"__name__": "__main__", "ARGV": ${args}})\n` +
          `except SystemExit as e:\n    _offgate_rc = e.value if isinstance(e.value, int) else (e.value is not None)\n`)) rc = 2;
  else rc = mp.globals.get("_offgate_rc") ? 1 : 0;
}
process.exitCode = rc;
