# Minimal test runner for firmware tests on MicroPython (and CPython).
# Usage: micropython tests/firmware/mp/mptest.py test_cbor [test_base45 ...]
# Runs every function named test_* in each module; prints one line per test and a closing
# "N passed, N failed" line. Exit status 1 if anything failed.
import sys
import gc


def run_module(name):
    mod = __import__(name)
    passed = failed = 0
    for attr in sorted(dir(mod)):
        if not attr.startswith("test_"):
            continue
        fn = getattr(mod, attr)
        if not callable(fn):
            continue
        try:
            fn()
            passed += 1
            print("PASS", name + "." + attr)
        except Exception as e:  # report and go on: one failure must not hide the others
            failed += 1
            print("FAIL", name + "." + attr, type(e).__name__, e)
            try:
                sys.print_exception(e)
            except AttributeError:
                import traceback
                traceback.print_exc()
        gc.collect()
    return passed, failed


def main(names):
    p = f = 0
    for n in names:
        a, b = run_module(n)
        p += a
        f += b
    print("%d passed, %d failed" % (p, f))
    return f


if __name__ == "__main__":
    sys.exit(1 if main(sys.argv[1:]) else 0)
