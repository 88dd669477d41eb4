"""offgate gate firmware (MicroPython; also importable under CPython for tooling)."""
import sys

try:
    import micropython  # noqa: F401
except ImportError:  # CPython (host tooling, tests): the one stand-in for `from micropython import const`
    from offgate import _cpython  # noqa: F401

VERSION = "0.1.0"


def unload(name):
    """Forget a module so the GC can take its bytecode back (boot-only code: config checkers)."""
    sys.modules.pop(name, None)
    pkg, _, attr = name.rpartition(".")
    parent = sys.modules.get(pkg)
    if parent is not None:
        try:
            delattr(parent, attr)
        except Exception:  # MicroPython raises KeyError for a missing module attribute
            pass
