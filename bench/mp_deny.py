# MicroPython driver for bench/deny_bench.py: the gate side of installing a deny list update,
# K times, on files the host wrote (DIR/deny.bin: the gate's list, DIR/delta: a delta to it,
# DIR/full.bin: the same update as a full list).
#   micropython mp_deny.py DIR MODE K
# MODE: delta (denydelta.check + merge into DIR/new: what a delta install does besides the one
# root-signature check), full (denycheck.check_file with SHA-256 of the full list: what a full
# install does besides the same signature check), lookup (1,000 look-ups in the 100,000-id
# list), none (setup only: the baseline). Prints one JSON line.
import gc
import hashlib
import json
import os
import sys

from offgate.policy import denycheck, denydelta
from offgate.policy.denylist import DenyList

d, mode, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
dl = DenyList()
import struct
with open(d + "/deny.bin", "rb") as f:
    h = f.read(24)
n, serial, issued = struct.unpack(">III", h[8:20])
dl.open(d + "/deny.bin", (n, serial, issued, h[6] or 8))  # the gate's list, open (checked at its boot)
probe = bytearray(8)
gc.collect()
a0 = gc.mem_alloc()
found = 0
for _ in range(k if mode != "none" else 0):
    if mode == "delta":
        size = os.stat(d + "/delta")[6]
        with open(d + "/delta", "rb") as f:
            head = denydelta.check(f, size)
        denydelta.merge(dl._f, dl._h, dl.count, d + "/delta", d + "/new", head)
    elif mode == "full":
        size = os.stat(d + "/full.bin")[6]
        with open(d + "/full.bin", "rb") as f:
            denycheck.check_file(f, size, hashlib.sha256())
    elif mode == "lookup":
        for i in range(1000):
            probe[0] = i & 255
            probe[1] = (i * 7) & 255
            found += dl.contains(probe)  # an 8-byte id: the list compares its stored prefix
    gc.collect()
print(json.dumps({"ok": 1, "heap_growth_bytes": gc.mem_alloc() - a0, "found": found}))
