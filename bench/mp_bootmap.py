# Where the gate's heap goes after boot, on one MicroPython build (issue 12, docs/performance.md
# "The gate's heap after boot"): every firmware import during the boot with its heap delta
# (bytecode, module objects, what its top level allocates; nested imports counted in their own
# row), the gate's long-lived buffers, and the qstr pools (micropython.qstr_info, printed).
#   micropython -X heapsize=H -m mp_bootmap GATE_DIR [sim] [layout]   -> "QSTR ..." lines, mem_info, one JSON line
# "sim": also the simulator's parts (sim.actuators, sim.streams, its asyncio and sync listener);
# "layout": stop after mem_info (for a run at the device's heap, where the second pass would not fit).
import gc
import sys
import builtins
import micropython

gc.collect()
base = gc.mem_alloc()
rows = []  # [modules first loaded by one import statement, heap bytes without nested imports]
stack = []
_imp = builtins.__import__


def _import(name, *a):
    gc.collect()
    before = set(sys.modules)
    m0 = gc.mem_alloc()
    stack.append([0, set()])
    try:
        return _imp(name, *a)
    finally:
        child, cmods = stack.pop()
        gc.collect()
        d = gc.mem_alloc() - m0
        new = set(sys.modules) - before
        if new:
            if stack:
                stack[-1][0] += d
                stack[-1][1].update(new)
            own = sorted(new - cmods)
            rows.append([",".join(own) or name, d - child])
        del before, new


builtins.__import__ = _import
print("QSTR start")
micropython.qstr_info()
from offgate import gate, unload  # noqa: E402
from offgate.clock import Clock  # noqa: E402
from offgate import config  # noqa: E402

cfg = config.load(sys.argv[1] + "/gate.json")
config = None
unload("offgate.config")
gc.collect()
imported = gc.mem_alloc() - base


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
sim = None
if "sim" in sys.argv[2:]:
    from sim.actuators import SimActuator  # noqa: E402
    from sim import streams  # noqa: E402
    streams.start_sync(g, "127.0.0.1", 0)
    gc.collect()
    sim = gc.mem_alloc() - base
builtins.__import__ = _imp
print("QSTR end")
micropython.qstr_info()
gc.collect()
micropython.mem_info()  # "max free sz": the largest free block (GC blocks) a session starts with
if "layout" in sys.argv:  # a heap-sized run: only the layout above
    print(__import__("json").dumps({"boot_bytes": boot, "sim_bytes": sim, "free_bytes": gc.mem_free()}))
    sys.exit(0)
v = g.verifier


def blen(x):
    try:
        return len(x)
    except Exception:
        return 0


bufs = {
    "line buffer (scanner)": blen(g.asm.buf),
    "credential cache pages": sum(blen(p) for p in v.cache.pages),
    "replay table pages": sum(blen(p) for p in g.replay.pages),
    "replay pending records": blen(g.replay._pend),
    "oplog record/header buffers": blen(g.oplog._buf) + blen(g.oplog._hdr),
    "oplog segment table entries": len(g.oplog._segs),
    "passback table": blen(g.passback.tab) if g.passback is not None else 0,
}
resident = sorted(k for k in sys.modules)
free = gc.mem_free()
# Second pass: every module again, in the order the boot finished loading them (so a module's
# nested imports are already there), all names already interned: bytecode + objects alone.
g = v = None
order = [n for r in rows for n in r[0].split(",")]
for n in order:
    sys.modules.pop(n, None)
for n in ("offgate", "sim"):
    sys.modules.pop(n, None)
bare = []
for n in order:
    gc.collect()
    m0 = gc.mem_alloc()
    __import__(n)
    gc.collect()
    bare.append([n, gc.mem_alloc() - m0])
print(__import__("json").dumps({"imported_bytes": imported, "boot_bytes": boot, "sim_bytes": sim,
                                "free_bytes": free, "resident": resident,
                                "imports": rows, "code_only": bare, "buffers": bufs}))
