import sys
from pathlib import Path

import pytest

# tests/support/: the shared helpers, imported by their bare names (mpbridge, synchelp, ...)
sys.path.insert(0, str(Path(__file__).resolve().parent / "support"))
from mpbridge import MP32, MP32_MISSING, Oracle  # noqa: E402

# tests/firmware/mp/ holds the MicroPython-side test modules and probes; tests/firmware/
# test_firmware_unit.py runs them (on MicroPython and on CPython), so pytest must not import them.
collect_ignore = ["firmware/mp", "support"]


@pytest.fixture(scope="session")
def mp():
    """A live MicroPython process (ESP32-sized heap) running the firmware: mp.call("offgate.x.f", ...)."""
    o = Oracle()
    yield o
    o.close()


@pytest.fixture(scope="session")
def mp32():
    """Like `mp`, on the 32-bit MicroPython build (the ESP32 stand-in) at the same 128k heap;
    skips when the build is not there."""
    if MP32 is None:
        pytest.skip(MP32_MISSING)
    o = Oracle(mp=MP32)
    yield o
    o.close()


@pytest.fixture(scope="module")
def mp_isolated():
    """A MicroPython process of the test module's own (same 128k heap as `mp`), for modules whose
    imports would otherwise stay in the session-wide oracle that other tests measure memory in."""
    o = Oracle()
    yield o
    o.close()


def own_oracle():
    """`mp = own_oracle()` in a test module gives it a MicroPython process of its own under the
    usual fixture name: for modules whose comb tables or key precomputations would leave the
    session-wide oracle's 128k heap too small for the others (and vice versa)."""
    @pytest.fixture(scope="module")
    def mp(mp_isolated):
        return mp_isolated
    return mp
