"""The committed firmware manifests (firmware/manifests/*.py) are what every build contains: the
simulator's and tests' .mpy build, `make mpy` / `offgate board build` for each board, ROMFS
images; and the project has one version number (offgate.VERSION), which the manifests and the
host package repeat."""
import ast
import json
import re

import pytest

from mpbridge import ROOT
from offgate_host.device import deploy, manifest
from offgate_host.device.simgate import firmware_dir, is_empty_init

FW = firmware_dir()


def _firmware_version():
    tree = ast.parse((FW / "offgate" / "__init__.py").read_text())
    for n in tree.body:
        if isinstance(n, ast.Assign) and any(getattr(t, "id", None) == "VERSION" for t in n.targets):
            return n.value.value
    raise AssertionError("offgate.VERSION not found")


def test_one_version_number():
    v = _firmware_version()
    assert re.fullmatch(r"\d+\.\d+\.\d+", v)
    for name in manifest.NAMES:
        assert manifest.load(name, FW).version == v, name
    toml = (ROOT / "host_tools" / "pyproject.toml").read_text()
    assert re.search(r'^version = "%s"$' % re.escape(v), toml, re.M), "host_tools/pyproject.toml version != offgate.VERSION"


def test_manifests_list_the_firmware():
    esp, unix = manifest.load("esp32", FW), manifest.load("unix", FW)
    assert esp.packages == ["offgate", "esp32gate"] and esp.modules == []
    assert unix.packages == ["offgate", "sim"] and unix.modules == ["sim_main.py"]
    srcs = manifest.sources(esp, FW)
    assert "offgate/crypto/ecdsa.py" in srcs and "esp32gate/app.py" in srcs and "sim_main.py" not in srcs


def test_manifest_errors_are_one_line(tmp_path):
    (tmp_path / "manifests").mkdir()
    with pytest.raises(manifest.ManifestError, match="not found"):
        manifest.load("esp32", tmp_path)
    (tmp_path / "manifests" / "esp32.py").write_text('require("aioble")\n')
    with pytest.raises(manifest.ManifestError, match="micropython-lib"):
        manifest.load("esp32", tmp_path)
    (tmp_path / "manifests" / "esp32.py").write_text('package("x", base_path="../..")\n')
    with pytest.raises(manifest.ManifestError, match="outside the firmware"):
        manifest.load("esp32", tmp_path)


@pytest.mark.parametrize("board", ["sim", "esp32_devkitc"])
def test_board_build_is_the_manifest(board, tmp_path):
    out = deploy.build(board, tmp_path / board)
    info = json.loads((out / "build.json").read_text())
    m = deploy.manifest_for(json.loads((out / "gate.json").read_text()).get("chip", "esp32"))
    want = {str((FW / s).relative_to(FW).with_suffix(".mpy")) for s in manifest.sources(m, FW)
            if not is_empty_init(FW / s)}
    if info["arch"] is None:  # plain bytecode: viper modules are left out (their Python fallbacks)
        want = {w for w in want if "@micropython.viper" not in (FW / w).with_suffix(".py").read_text()}
    got = {f for f in info["files"] if f.endswith(".mpy")}
    assert got == want
    if board != "sim":
        assert "main.py" in info["files"]  # the boot script, as source
