# Runs on MicroPython (64-bit unix port and the 32-bit wasm port): the gate's decision pipeline
# (tests/firmware/mp/gate_probe.py: trust store, deny list, replay guard, verifier) over a case file:
#   SETUP <trust hex> <deny hex>          gate 101, zone 1, max_age 60 s, skew 30 s, cache 16
#   <now> <QR line hex>                    decide at `now`; if it opens, commit the counter
# Prints "D <i> <reason name>" (or "D <i> raise <exc>") per case, then "DONE <n>".
try:
    ARGV
except NameError:
    import sys
    ARGV = sys.argv
import os
from binascii import unhexlify

import gate_probe

import random

STATE = "/tmp/offgate-pipeprobe-%08x" % random.getrandbits(32)
try:
    os.mkdir(STATE)
except OSError:
    pass
n = 0
with open(ARGV[1]) as f:
    for line in f:
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "SETUP":
            gate_probe.setup(STATE, unhexlify(parts[1]), unhexlify(parts[2]), 101, 1, 60, 30, 16)
            continue
        try:
            r = gate_probe.decide_and_commit(unhexlify(parts[1]), int(parts[0]))
        except Exception as e:
            r = "raise %s: %s" % (type(e).__name__, e)
        print("D", n, r)
        n += 1
gate_probe._v.replay.close()
gate_probe._v.deny.close()
for name in os.listdir(STATE):
    os.remove(STATE + "/" + name)
os.rmdir(STATE)
print("DONE", n)
