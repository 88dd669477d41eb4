"""Under CPython only (host tooling, tests; never loaded on MicroPython): a stand-in `micropython`
module with the one name the firmware imports from it, `const` (the identity: MicroPython's compiler
folds const() away, CPython just calls it). Viper/native decorators are deliberately absent: the
modules that need them (offgate.crypto._gen_p256field) fail to import, and their callers take the
plain-Python path, as on a port without native code."""
import sys


class _MicroPython:
    __name__ = "micropython"

    @staticmethod
    def const(x):
        return x


sys.modules.setdefault("micropython", _MicroPython())
