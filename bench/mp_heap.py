# Heap of the real gate on one MicroPython build: boot (gate.build, as sim_main does) then scans.
#   micropython -X heapsize=H -m mp_heap GATE_DIR CODES_FILE   -> one JSON line
import gc
import json
import sys

gc.collect()
base = gc.mem_alloc()  # the interpreter and this driver, before any firmware
from offgate import gate, unload  # noqa: E402
from offgate.clock import Clock  # noqa: E402
from offgate import config  # noqa: E402

cfg = config.load(sys.argv[1] + "/gate.json")
config = None
unload("offgate.config")


class Out:
    def write(self, s):
        pass


class Act:
    def open(self, ms):
        pass

    def deny(self, reason):
        pass


g = gate.build(cfg, Act(), Out(), Clock())
gc.collect()
boot = gc.mem_alloc() - base
opened = 0
rs = None
with open(sys.argv[2]) as f:
    codes = [c for c in f.read().split("\n") if c]  # base45 has spaces: one code per line
for c in codes:
    rs = g.scan(c.encode()).reason
    if rs == 0:
        opened += 1
    g.idle()
    gc.collect()
print(json.dumps({"in_use_after_boot_bytes": boot, "in_use_after_scans_bytes": gc.mem_alloc() - base,
                  "opened": opened, "of": len(codes), "free_bytes": gc.mem_free(), "last_reason": rs}))
