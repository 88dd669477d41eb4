"""Board configs: every one valid, every wrong value named (host CLI and the firmware checker on
MicroPython agree), and the whole build (`make mpy`) for every board."""
import copy
import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from mpbridge import ROOT, run_micropython
from offgate_host.device import board as boardmod
from offgate_host.device import deploy
from offgate_host.cli import main as cli
from offgate_host.device.simgate import is_empty_init

BOARDS = sorted(p.stem for p in (ROOT / "board_configs").glob("*.json"))
ESP32_BOARDS = [b for b in BOARDS if b != "sim"]


def raw(name):
    return json.loads((ROOT / "board_configs" / (name + ".json")).read_text())


def test_the_four_boards_exist_and_are_valid():
    assert {"esp32_devkitc", "esp32_wrover", "esp32_s3_devkitc", "sim"} <= set(BOARDS)
    for b in BOARDS:
        r = raw(b)
        assert boardmod.problems(r) == [], b
        assert r["board"] == b
    assert raw("esp32_devkitc")["heap_kb"] == 128 and raw("esp32_devkitc")["psram"] is False
    assert raw("esp32_wrover")["psram"] is True and raw("esp32_s3_devkitc")["chip"] == "esp32s3"


def _set(r, path, value):
    keys = path.split(".")
    d = r
    for k in keys[:-1]:
        d = d[k]
    if value is KeyError:
        del d[keys[-1]]
    else:
        d[keys[-1]] = value


BAD = [  # (board, setting, value, text that must appear in the problem)
    ("esp32_devkitc", "relay.pin", 6, "relay.pin: GPIO 6 is wired to the SPI flash"),
    ("esp32_devkitc", "relay.pin", 34, "relay.pin: GPIO 34 is input-only"),
    ("esp32_devkitc", "relay.pin", 12, "relay.pin: GPIO 12 is a strapping pin"),
    ("esp32_devkitc", "relay.pin", 20, "relay.pin: GPIO 20 does not exist on esp32"),
    ("esp32_devkitc", "relay.pin", "26", "relay.pin: expected a GPIO number"),
    ("esp32_devkitc", "relay.active", 2, "relay.active: must be 0 (active low) or 1"),
    ("esp32_devkitc", "relay.active", KeyError, "relay.active: missing"),
    ("esp32_devkitc", "leds.red", 26, "leds.red: GPIO 26 already used by relay.pin"),
    ("esp32_devkitc", "leds", KeyError, "leds: missing"),
    ("esp32_devkitc", "scanner.uart", 0, "scanner.uart: UART 0 carries the REPL"),
    ("esp32_devkitc", "scanner.baud", 12345, "scanner.baud: GM65 rates are"),
    ("esp32_devkitc", "scanner.rxbuf", 256, "scanner.rxbuf: must be 600..16384, got 256"),
    ("esp32_devkitc", "scanner.rx", KeyError, "scanner.rx: missing"),
    ("esp32_devkitc", "scanner.probe", [9600, 1234], "scanner.probe"),
    ("esp32_devkitc", "scanner.registers", [[19]], "scanner.registers"),
    ("esp32_devkitc", "heap_kb", 512, "heap_kb: an ESP32 without PSRAM gives at most 128"),
    ("esp32_devkitc", "replay_slots", 4096, "replay_slots: 4096 slots take 64 KB"),
    ("esp32_devkitc", "relay_ms", 60000, "relay_ms: at most 10000"),
    ("esp32_devkitc", "watchdog_ms", 500, "watchdog_ms: must be 2000..60000"),
    ("esp32_devkitc", "psram", 1, "psram: expected true or false"),
    ("esp32_devkitc", "gate_id", KeyError, "gate_id: missing"),
    ("esp32_devkitc", "zone", -1, "zone: must be >= 0"),
    ("esp32_devkitc", "chip", "esp8266", "chip: must be one of"),
    ("esp32_devkitc", "arch", "armv7m", "arch: esp32 needs 'xtensawin'"),
    ("esp32_devkitc", "hardening.max_crashes", 0, "hardening.max_crashes: must be 1..100"),
    ("esp32_devkitc", "hardening.detach_repl", "yes", "hardening.detach_repl: expected true or false"),
    ("esp32_devkitc", "sensor.pull", "sideways", "sensor.pull"),
    ("esp32_devkitc", "log.dir", "", "log.dir"),
    ("esp32_wrover", "scanner.rx", 16, "scanner.rx: GPIO 16 is used by the PSRAM"),
    ("esp32_s3_devkitc", "relay.pin", 19, "relay.pin: GPIO 19 is the USB D-/D+ line"),
    ("esp32_s3_devkitc", "relay.pin", 35, "relay.pin: GPIO 35 is used by the PSRAM"),
    ("esp32_s3_devkitc", "buzzer.pin", 23, "buzzer.pin: GPIO 23 does not exist on esp32s3"),
]


@pytest.mark.parametrize("board,setting,value,text", BAD, ids=["%s-%s-%r" % b[:3] for b in BAD])
def test_bad_value_is_named(board, setting, value, text):
    r = raw(board)
    _set(r, setting, value)
    probs = boardmod.problems(r)
    assert any(text in p for p in probs), probs


def test_cli_validate_names_every_problem(tmp_path):
    r = raw("esp32_devkitc")
    _set(r, "relay.pin", 6)
    _set(r, "scanner.rxbuf", 256)
    _set(r, "zone", KeyError)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(r))
    res = CliRunner().invoke(cli, ["board", "validate", str(ROOT / "board_configs" / "sim.json"), str(bad)])
    assert res.exit_code == 1, res.output
    assert "sim.json: OK" in res.output and "bad.json: 3 problem(s)" in res.output
    for t in ("relay.pin: GPIO 6", "scanner.rxbuf", "zone: missing"):
        assert t in res.output
    ok = CliRunner().invoke(cli, ["board", "validate"] + [str(p) for p in sorted((ROOT / "board_configs").glob("*.json"))])
    assert ok.exit_code == 0 and ok.output.count(": OK") == len(BOARDS), ok.output


def test_firmware_checker_on_micropython_agrees(tmp_path):
    """The same module runs on the gate at boot: same verdicts on MicroPython as on the host."""
    cases = [raw(b) for b in BOARDS]
    for board, setting, value, text in BAD[:12]:
        r = raw(board)
        _set(r, setting, value)
        cases.append(r)
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    script = tmp_path / "check.py"
    script.write_text("import json\nfrom offgate import boardcfg\n"
                      "for r in json.load(open(%r)):\n"
                      "    try:\n        boardcfg.validate(r); print('OK')\n"
                      "    except boardcfg.ConfigError as e:\n        print(str(e))\n" % str(tmp_path / "cases.json"))
    res = run_micropython(script)
    lines = res.stdout.splitlines()
    assert res.returncode == 0 and len(lines) == len(cases), res.stdout + res.stderr
    for line, r in zip(lines, cases):
        probs = boardmod.problems(r)
        if not probs:
            assert line == "OK"
        else:
            for p in probs:
                assert p in line, (p, line)


@pytest.mark.parametrize("board", BOARDS)
def test_build_every_board(board, tmp_path):
    out = deploy.build(board, tmp_path / board)
    info = json.loads((out / "build.json").read_text())
    fw = ROOT / "firmware"
    expect = {str(p.relative_to(fw).with_suffix(".mpy")) for p in (fw / "offgate").rglob("*.py")
              if not is_empty_init(p)}  # empty package __init__.py files are left out (namespace packages)
    if info["arch"] is None:  # plain bytecode: the viper modules are left out (their Python fallbacks)
        for viper in ("offgate/crypto/_gen_p256field.mpy", "offgate/crypto/xorbuf.mpy", "offgate/sync/rowenc.mpy",
                      "offgate/log/oplogscan.mpy"):
            expect.discard(viper)
            assert viper not in info["files"]
    assert expect <= set(info["files"])
    for f in info["files"]:
        if f.endswith(".mpy"):
            head = (out / f).read_bytes()[:2]
            assert head == b"M\x06", f  # mpy v6: what MicroPython 1.23+ loads
    assert json.loads((out / "gate.json").read_text()) == raw(board)
    if board == "sim":
        assert info["arch"] is None and "sim_main.mpy" in info["files"] and not (out / "manifest.py").exists()
    else:
        assert info["arch"] == "xtensawin"
        assert {"esp32gate/app.mpy", "esp32gate/scanner.mpy", "esp32gate/actuators.mpy", "esp32gate/watchdog.mpy",
                "esp32gate/rtc.mpy", "esp32gate/hardening.mpy", "main.py"} <= set(info["files"])
        assert not any(f.startswith("sim") for f in info["files"])
        m = (out / "manifest.py").read_text()
        assert 'include("$(PORT_DIR)/boards/manifest.py")' in m
        assert 'include("%s")' % (ROOT / "firmware" / "manifests" / "esp32.py") in m  # the committed manifest
        assert "FROZEN_MANIFEST=" in m


def test_make_targets_wired(tmp_path):
    """`make mpy` runs the build for BOARD; `make flash` refuses without FIRMWARE (names it) and PORT.
    (-o keeps make from rebuilding the venv.)"""
    o = ["-o", ".venv/.installed"]
    r = subprocess.run(["make", "-n"] + o + ["mpy", "BOARD=esp32_wrover"], cwd=str(ROOT), capture_output=True, text=True)
    assert r.returncode == 0 and "offgate board build esp32_wrover" in r.stdout, r.stdout + r.stderr
    r = subprocess.run(["make", "-s"] + o + ["flash", "BOARD=esp32_devkitc", "PORT=/dev/null"], cwd=str(ROOT),
                       capture_output=True, text=True)
    assert r.returncode != 0 and "FIRMWARE" in r.stdout + r.stderr and "micropython.org/download" in r.stdout + r.stderr
    fake_bin = tmp_path / "ESP32_GENERIC-20250101-v1.29.0.bin"
    fake_bin.write_bytes(b"\xe9" + bytes(100))
    r = subprocess.run(["make", "-s"] + o + ["flash", "BOARD=esp32_devkitc", "FIRMWARE=%s" % fake_bin], cwd=str(ROOT),
                       capture_output=True, text=True)
    assert r.returncode != 0 and "PORT" in r.stdout + r.stderr
    r = subprocess.run(["make", "-s"] + o + ["deploy", "BOARD=esp32_devkitc", "-n"], cwd=str(ROOT), capture_output=True,
                       text=True)
    assert "offgate board build esp32_devkitc" in r.stdout
