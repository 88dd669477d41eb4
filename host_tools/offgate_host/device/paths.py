"""Where the host finds the gate's files: the one place that knows the checkout's layout.

The firmware (`firmware/`), the board configs (`board_configs/`) and the build output (`build/`)
sit in the repository the host tools are installed from (`pip install -e host_tools`, which
`make venv` does). The one explicit setting, OFFGATE_ROOT, names that repository instead, e.g. for
a copy of the host tools installed elsewhere; without it the root is found from this file's own
location. No module adds the firmware to `sys.path`: `firmware_module()` loads the firmware's
`offgate` package by its location.
"""
import importlib
import importlib.util
import os
import sys
from pathlib import Path

from ..errors import OffgateError

ROOT_ENV = "OFFGATE_ROOT"


def repo_root() -> Path:
    """The repository holding firmware/ ($OFFGATE_ROOT, else the checkout this package is in).
    Raises OffgateError if neither has firmware/offgate/."""
    env = os.environ.get(ROOT_ENV)
    if env:
        if not (Path(env) / "firmware" / "offgate").is_dir():
            raise OffgateError("%s=%s: no firmware/offgate/ there" % (ROOT_ENV, env))
        return Path(env)
    for p in Path(__file__).resolve().parents:
        if (p / "firmware" / "offgate").is_dir():
            return p
    raise OffgateError("cannot find the firmware/ directory; set %s to the offgate repository" % ROOT_ENV)


def firmware_dir() -> Path:
    return repo_root() / "firmware"


def firmware_module(name):
    """Import a pure-logic firmware module (e.g. "offgate.boardcfg") under CPython, from
    firmware_dir(). The firmware's `offgate` package is loaded by its path (once per process; a
    test that put firmware/ on sys.path has it loaded already)."""
    if "offgate" not in sys.modules:
        init = firmware_dir() / "offgate" / "__init__.py"
        spec = importlib.util.spec_from_file_location("offgate", init, submodule_search_locations=[str(init.parent)])
        pkg = importlib.util.module_from_spec(spec)
        sys.modules["offgate"] = pkg
        try:
            spec.loader.exec_module(pkg)
        except BaseException:
            del sys.modules["offgate"]
            raise
    return importlib.import_module(name)
