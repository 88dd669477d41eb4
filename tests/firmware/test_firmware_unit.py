"""Runs every firmware unit-test module (tests/firmware/test_*.py) on the MicroPython unix port
with an ESP32-sized heap (the 64-bit PyPI build and the 32-bit build, native code -march=x86
for the latter), and the same modules under CPython (as microdot does): the firmware is
plain Python that must behave the same on both."""
import os
import re
import subprocess
import sys

import pytest

from mpbridge import FIRMWARE, FW_TESTS, MP32, needs_mp32, run_micropython

MODULES = sorted(p.stem for p in FW_TESTS.glob("test_*.py"))


def _check(stdout, stderr, returncode):
    out = stdout + stderr
    m = re.search(r"^(\d+) passed, (\d+) failed$", stdout, re.M)
    assert m, "no result line:\n" + out
    assert int(m.group(2)) == 0 and returncode == 0, out
    assert int(m.group(1)) > 0, "module ran no test"


@pytest.mark.parametrize("module", MODULES)
def test_on_micropython(module):
    r = run_micropython(FW_TESTS / "mptest.py", module)
    _check(r.stdout, r.stderr, r.returncode)


@needs_mp32
@pytest.mark.parametrize("module", MODULES)
def test_on_micropython32(module):
    r = run_micropython(FW_TESTS / "mptest.py", module, mp=MP32)
    _check(r.stdout, r.stderr, r.returncode)


@pytest.mark.parametrize("module", MODULES)
def test_on_cpython(module):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(FIRMWARE), str(FW_TESTS)]))
    r = subprocess.run([sys.executable, str(FW_TESTS / "mptest.py"), module], capture_output=True, text=True,
                       env=env, timeout=600)
    _check(r.stdout, r.stderr, r.returncode)
