"""Flash / deploy / provisioning as data: the exact esptool and mpremote command sequences, each
mpremote command checked against mpremote's own argument parsers, and the deploy run end to end
against a stand-in gate (tests/support/fakes/standin_device.py: the unix-port MicroPython with a littlefs
image as its flash) that executes the very snippets mpremote would send. Provisioning makes the
device key on the stand-in, the host reads the public key and registers the gate."""
import argparse
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from mpbridge import ROOT
from offgate_host.wire import keys
from offgate_host.device import deploy
from offgate_host.backoffice.backoffice import BackOffice, BackOfficeError
from offgate_host.cli import main as cli
from offgate_host.device.simgate import micropython_bin, micropython_env

PORT = "/dev/ttyUSB0"
STANDIN = ROOT / "tests" / "support" / "fakes" / "standin_device.py"


def mpremote_parse(argv):
    """Parse an mpremote command line with mpremote's own parsers, without running anything."""
    from mpremote import main as mp
    mp.prepare_command_expansions(type("NoUserConfig", (), {"commands": {}})())  # built-in shortcuts only
    assert argv[0] == "mpremote"
    rest = list(argv[1:])
    parsed = []
    while rest:
        mp.do_command_expansion(rest)
        cmd = rest.pop(0)
        _handler, parser_func = mp._COMMANDS[cmd]
        p = parser_func()
        p.add_argument("next_command", nargs=argparse.REMAINDER)
        a = p.parse_args(rest)
        parsed.append((cmd, a))
        rest = a.next_command
    return parsed


@pytest.fixture(scope="module")
def built():
    return deploy.build("esp32_devkitc")


@pytest.fixture
def office(tmp_path):
    bo = BackOffice(tmp_path / "bo")
    bo.init_issuer("t")
    bo.export_trust(tmp_path / "trust.cbor")
    bo.export_deny(tmp_path / "deny.bin")
    return bo, tmp_path / "trust.cbor", tmp_path / "deny.bin"


def test_flash_plan_exact():
    fw = ROOT / "board_configs" / "sim.json"  # any existing file stands for the image here
    steps = deploy.flash_plan("esp32_devkitc", PORT, fw)
    assert [s.argv for s in steps] == [
        ["esptool", "--chip", "esp32", "--port", PORT, "erase-flash"],
        ["esptool", "--chip", "esp32", "--port", PORT, "--baud", "460800", "write-flash", "-z", "0x1000", str(fw)]]
    s3 = deploy.flash_plan("esp32_s3_devkitc", PORT, fw, erase=False)
    assert [s.argv for s in s3] == [["esptool", "--chip", "esp32s3", "--port", PORT, "--baud", "460800",
                                     "write-flash", "-z", "0x0", str(fw)]]
    with pytest.raises(deploy.DeployError, match="micropython.org/download/ESP32_GENERIC/"):
        deploy.flash_plan("esp32_devkitc", PORT, None)
    with pytest.raises(deploy.DeployError, match="not found"):
        deploy.flash_plan("esp32_devkitc", PORT, "/nonexistent.bin")
    with pytest.raises(deploy.DeployError, match="simulator"):
        deploy.flash_plan("sim", PORT, fw)
    # esptool 5 knows these commands and options
    from esptool import main as _  # noqa: F401  (importable: the pinned esptool is installed)
    r = subprocess.run([str(Path(micropython_bin()).parent / "esptool"), "write-flash", "--help"], capture_output=True,
                       text=True)
    assert r.returncode == 0 and "--compress" in r.stdout


def test_deploy_plan_exact(built, office):
    bo, trust, deny = office
    stage = built / "stage-test"
    steps = deploy.deploy_plan("esp32_devkitc", PORT, 7, 2, trust, deny, stage=stage)
    c = ["mpremote", "connect", PORT]
    assert [s.name for s in steps] == ["check", "mkdir", "copy offgate", "copy esp32gate", "copy main.py", "config",
                                       "trust", "deny", "provision", "reset"]
    assert steps[0].argv == c + ["exec", deploy.CHECK_SNIPPET]
    assert steps[1].argv == c + ["exec", deploy.mkdir_snippet(["/state", "/log"])]
    assert steps[2].argv == c + ["fs", "cp", "-r", str(built / "offgate"), ":"]
    assert steps[3].argv == c + ["fs", "cp", "-r", str(built / "esp32gate"), ":"]
    assert steps[4].argv == c + ["fs", "cp", str(ROOT / "firmware" / "main.py"), ":main.py"]
    assert steps[5].argv == c + ["fs", "cp", str(stage / "gate.json"), ":gate.json"]
    assert steps[6].argv == c + ["fs", "cp", str(trust), ":/state/trust.cbor"]
    assert steps[7].argv == c + ["fs", "cp", str(deny), ":/state/deny.bin"]
    assert steps[8].argv == c + ["exec", deploy.provision_snippet("/state")]
    assert steps[9].argv == c + ["reset"]
    g = json.loads((stage / "gate.json").read_text())
    assert g["gate_id"] == 7 and g["zone"] == 2 and g["board"] == "esp32_devkitc"
    # every step is a valid mpremote command line
    for s in steps:
        parsed = mpremote_parse(s.argv)
        assert parsed[0][0] == "connect" and parsed[0][1].device == [PORT]
        if s.argv[3] == "fs":
            assert parsed[1][0] == "fs" and parsed[1][1].command == ["cp"]
            assert parsed[1][1].recursive == ("-r" in s.argv)
    # the private key never leaves the gate: the snippet prints only the public key
    assert "public_bytes()" in deploy.provision_snippet("/state") and "_d" not in deploy.provision_snippet("/state")
    # frozen firmware: no package copies
    fz = deploy.deploy_plan("esp32_devkitc", PORT, 7, 2, trust, None, stage=stage, frozen=True, provision=False)
    assert [s.name for s in fz] == ["check", "mkdir", "copy main.py", "config", "trust", "reset"]
    with pytest.raises(deploy.DeployError, match="rxbuf|gate_id|zone"):
        deploy.deploy_plan("esp32_devkitc", PORT, -1, 2, trust, stage=stage)


def test_cli_dry_run(built, office, tmp_path):
    bo, trust, deny = office
    r = CliRunner().invoke(cli, ["deploy", "--data", str(tmp_path / "bo"), "--board", "esp32_devkitc", "--port", PORT,
                                 "--gate-id", "9", "--zone", "1", "--dry-run"])
    assert r.exit_code == 0, r.output
    lines = [x for x in r.output.splitlines() if x.startswith("mpremote ")]
    assert len(lines) == 13 and all(x.startswith("mpremote connect %s " % PORT) for x in lines)  # + tables, root.pub, batch.pub
    assert lines[-1] == "mpremote connect %s reset" % PORT
    r = CliRunner().invoke(cli, ["provision", "--data", str(tmp_path / "bo"), "--board", "esp32_devkitc", "--port",
                                 PORT, "--gate-id", "9", "--dry-run"])
    assert r.exit_code == 0 and r.output.startswith("mpremote connect %s exec " % PORT), r.output
    r = CliRunner().invoke(cli, ["board", "flash", "--board", "esp32_devkitc", "--port", PORT, "--dry-run"])
    assert r.exit_code != 0 and "micropython.org/download" in r.output


class StandIn:
    """Runs mpremote command lines against the stand-in gate; records them."""

    def __init__(self, image):
        self.image = str(image)
        self.calls = []

    def dev(self, *args):
        r = subprocess.run([micropython_bin(), "-X", "heapsize=2m", str(STANDIN), self.image, *args],
                           capture_output=True, text=True, env=micropython_env(), timeout=120)
        return r.returncode, r.stdout, r.stderr

    def __call__(self, argv):
        self.calls.append(list(argv))
        assert argv[:3] == ["mpremote", "connect", PORT], argv
        rest = argv[3:]
        if rest[0] == "exec":
            return self.dev("exec", rest[1])
        if rest[:2] == ["fs", "cp"]:
            if rest[2] == "-r":
                src = Path(rest[3])
                assert rest[4] == ":"
                return self.dev("cpr", str(src), "/" + src.name)
            return self.dev("cp", rest[2], rest[3][1:] if rest[3].startswith(":/") else "/" + rest[3][1:])
        if rest == ["reset"]:
            return 0, "", ""
        if rest[:2] == ["romfs", "deploy"]:  # the stand-in's ROMFS partition: the image, kept
            self.romfs = rest[2]
            return 0, "", ""
        raise AssertionError("unexpected command %r" % argv)


def test_deploy_and_provision_against_standin(built, office, tmp_path):
    bo, trust, deny = office
    dev = StandIn(tmp_path / "flash.img")
    steps = deploy.deploy_plan("esp32_devkitc", PORT, 7, 2, trust, deny, stage=tmp_path / "stage")
    res = deploy.run_plan(steps, runner=dev)  # chip check skipped: the stand-in is not an ESP32
    assert dev.calls == [s.argv for s in steps]  # exactly the planned commands, in order
    pub = res["pub"]
    assert len(pub) == 65 and pub[0] == 4
    keys.pub_from_bytes(pub)  # a valid P-256 point
    # what landed on the gate's flash
    _, names, _ = dev.dev("ls", "/")
    assert {"offgate", "esp32gate", "main.py", "gate.json", "state", "log"} <= set(names.split())
    _, st, _ = dev.dev("ls", "/state")
    assert set(st.split()) == {"trust.cbor", "deny.bin", "device.key"}
    _, out, _ = dev.dev("exec", "import json;print(json.load(open('/gate.json'))['gate_id'])")
    assert out.strip() == "7"
    # the deployed config passes the gate's own boot check, on the gate's filesystem
    _, out, err = dev.dev("exec", "from esp32gate.app import load_config\nc,e=load_config('gate.json')\nprint(e or 'OK')")
    assert out.strip() == "OK", out + err
    # register in the back office; provisioning again returns the same key (kept on the gate)
    g = deploy.register(bo, 7, pub, "esp32_devkitc")
    assert g["pub"] == pub and [x["gate_id"] for x in bo.gates()] == [7]
    again = deploy.run_plan(deploy.provision_plan(PORT, "/state"), runner=dev)
    assert again["pub"] == pub
    deploy.register(bo, 7, pub, "esp32_devkitc")  # idempotent
    # a re-flashed gate (new key) is refused unless replaced
    other = keys.pub_bytes(keys.generate())
    with pytest.raises(BackOfficeError, match="already registered"):
        deploy.register(bo, 7, other, "esp32_devkitc")
    assert deploy.register(bo, 7, other, "esp32_devkitc", replace=True)["pub"] == other
    with pytest.raises(BackOfficeError, match="bad device key"):
        bo.register_gate(8, b"\x04" + bytes(64), "esp32_devkitc")


def test_device_check():
    ok = deploy.CHECK_MARK + ' {"mpy": 11014, "machine": "Generic ESP32 module with ESP32", "version": [1, 29, 0]}'
    assert deploy.check_device(ok, "esp32")["version"] == [1, 29, 0]
    old = deploy.CHECK_MARK + ' {"mpy": 10757, "machine": "ESP32 module with ESP32", "version": [1, 19, 1]}'
    with pytest.raises(deploy.DeployError, match="1.19.1"):
        deploy.check_device(old, "esp32")
    s3 = deploy.CHECK_MARK + ' {"mpy": 11014, "machine": "Generic ESP32S3 module with ESP32S3", "version": [1, 29, 0]}'
    with pytest.raises(deploy.DeployError, match="esp32"):
        deploy.check_device(s3, "esp32")
    assert deploy.check_device(s3, "esp32s3")
    with pytest.raises(deploy.DeployError, match="no answer"):
        deploy.check_device("Traceback ...", "esp32")
    # a locked gate (production) fails at the check step with the safe-mode hint
    with pytest.raises(deploy.DeployError, match="safe mode"):
        deploy.run_plan([deploy.Step("check", ["mpremote", "connect", PORT, "exec", deploy.CHECK_SNIPPET])],
                        runner=lambda argv: (1, "", "mpremote: could not enter raw repl"), chip="esp32")
    # the check snippet itself runs on MicroPython and reports this unix port's mpy version
    r = subprocess.run([micropython_bin(), "-c", deploy.CHECK_SNIPPET], capture_output=True, text=True,
                       env=micropython_env())
    info = json.loads(deploy.parse_mark(r.stdout, deploy.CHECK_MARK))
    assert info["mpy"] & 0xFF == 6 and (info["mpy"] >> 8) & 3 >= 3


def test_every_writer_installs_the_same_gate_files(built, office, tmp_path):
    """One table of gate files (offgate_host.device.gatefiles): `offgate gate init` (a simulated gate's
    directory) and `offgate deploy` (the stand-in board, through the CLI's staging) write the same
    files with the same bytes, every one the table lists; the firmware reads them under the same
    names, and sync writes only files of the table."""
    import synchelp  # noqa: F401  (the firmware on sys.path)
    from offgate import statedir
    from offgate.sync import admin
    from offgate_host.device import gatefiles
    from offgate_host.cli.board import _gate_files
    bo, _, _ = office
    data = str(tmp_path / "bo")
    r = CliRunner().invoke(cli, ["gate", "init", "--data", data, str(tmp_path / "sim"), "--gate-id", "7", "--zone", "2"])
    assert r.exit_code == 0, r.output
    sim = tmp_path / "sim"
    want = set(gatefiles.FROM_BACKOFFICE) | set(gatefiles.MADE_ON_GATE) | {gatefiles.CONFIG}
    assert {p.name for p in sim.iterdir()} == want

    stage = tmp_path / "stage"
    trust, deny, files = _gate_files(data, "esp32_devkitc", None, None, stage)
    steps = deploy.deploy_plan("esp32_devkitc", PORT, 8, 2, trust, deny, stage=stage, files=files)
    assert [s.name for s in steps][6:11] == ["trust", "tables", "deny", "root key", "batch key"]
    dev = StandIn(tmp_path / "flash.img")
    deploy.run_plan(steps, runner=dev)
    _, st, _ = dev.dev("ls", "/state")
    assert set(st.split()) == set(gatefiles.FROM_BACKOFFICE) | set(gatefiles.MADE_ON_GATE)
    for name in gatefiles.FROM_BACKOFFICE:  # byte for byte what the simulated gate got
        _, out, err = dev.dev("exec", "import binascii;print(binascii.hexlify(open('/state/%s','rb').read()).decode())"
                              % name)
        assert bytes.fromhex(out.strip()) == (sim / name).read_bytes(), name + err
    # the firmware's names are the table's
    assert (statedir.ROOT_PUB, statedir.BATCH_PUB, statedir.SYNC_STATE) == (
        gatefiles.ROOT_PUB, gatefiles.BATCH_PUB, gatefiles.SYNC_STATE)
    assert set(admin.UPLOADS.values()) | {gatefiles.TRUST, gatefiles.SYNC_STATE} == set(gatefiles.WRITTEN_BY_SYNC)


def test_romfs_deploy(built, office, tmp_path):
    """`offgate deploy --romfs`: the firmware goes as one ROMFS image (`mpremote romfs deploy`, a
    valid mpremote command line) instead of package copies; on the 32-bit build with that image as
    its ROMFS (MICROPY_ROMFS) the firmware imports from /rom, outside the heap."""
    from mpbridge import MP32
    bo, trust, deny = office
    steps = deploy.deploy_plan("esp32_devkitc", PORT, 7, 2, trust, deny, stage=tmp_path / "stage", romfs=True,
                               provision=False)
    assert [s.name for s in steps][:4] == ["check", "mkdir", "romfs", "copy main.py"]
    parsed = mpremote_parse(steps[2].argv)
    assert parsed[1][0] == "romfs" and parsed[1][1].command == ["deploy"]
    dev = StandIn(tmp_path / "flash.img")
    deploy.run_plan(steps, runner=dev)
    img = Path(dev.romfs)
    from mpremote.romfs import VfsRomWriter
    assert img.read_bytes().startswith(VfsRomWriter.ROMFS_HEADER)
    if MP32 is None:
        pytest.skip("the 32-bit build (ROMFS) is not here")
    env = dict(micropython_env(mp=MP32), MICROPY_ROMFS=str(img), MICROPYPATH="/rom")
    r = subprocess.run([MP32, "-c", "import offgate, offgate.codec.cbor, offgate.gate;print(offgate.__file__)"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0 and r.stdout.strip().startswith("/rom/offgate"), r.stdout + r.stderr


def test_board_build_never_wipes_an_operators_directory(built, office, tmp_path, monkeypatch):
    """QA: `board build --out ''` (or `.`) replaced the current directory by the build. Only a
    previous build (its build.json) is replaced; a path under a file is one line, not a traceback;
    `deploy --build DIR` installs a build made elsewhere, and no build there is refused before
    anything is staged under it."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    monkeypatch.chdir(mine)
    for out in ("", ".", str(mine)):
        r = CliRunner().invoke(cli, ["board", "build", "esp32_devkitc", "--out", out])
        assert r.exit_code != 0 and len(r.output.strip().splitlines()) == 1, r.output
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"] and (mine / "notes.txt").read_text() == "keep"
    (tmp_path / "afile").write_text("x")
    r = CliRunner().invoke(cli, ["board", "build", "esp32_devkitc", "--out", str(tmp_path / "afile" / "sub")])
    assert r.exit_code == 1 and "cannot write the build" in r.output and "Traceback" not in r.output, r.output
    base = ["deploy", "--data", str(tmp_path / "bo"), "--board", "esp32_devkitc", "--port", PORT, "--gate-id", "9",
            "--zone", "1", "--dry-run"]
    r = CliRunner().invoke(cli, base + ["--build", str(mine)])
    assert r.exit_code == 1 and "no build in" in r.output and not (mine / "stage").exists(), r.output
    r = CliRunner().invoke(cli, base)  # ./build/esp32_devkitc here: none
    assert r.exit_code == 1 and "offgate board build esp32_devkitc" in r.output and not (mine / "build").exists()
    r = CliRunner().invoke(cli, base + ["--build", str(built)])
    assert r.exit_code == 0 and str(built) in r.output, r.output
