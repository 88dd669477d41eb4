# Runs on MicroPython (the 32-bit wasm port via run.mjs, or any port): offgate.ecdsa.verify over a
# case file, one case a line: "<id> <pub hex> <msg hex> <sig hex>" (pub in any SEC1 form; "-" = empty).
# Prints "R <id> <0|1>" per case (E <id> <exc> if verify raised: it must never raise), then "DONE <n>".
try:
    ARGV
except NameError:
    import sys
    ARGV = sys.argv
from binascii import unhexlify
from offgate import ecdsa


def _h(x):
    return b"" if x == "-" else unhexlify(x)  # "-" stands for an empty field


n = 0
with open(ARGV[1]) as f:
    for line in f:
        parts = line.split()
        if not parts:
            continue
        tc, pub, msg, sig = parts[0], parts[1], parts[2], parts[3]
        try:
            print("R", tc, 1 if ecdsa.verify(_h(pub), _h(msg), _h(sig)) is True else 0)
        except Exception as e:
            print("E", tc, type(e).__name__, e)
        n += 1
print("DONE", n)
