# MicroPython side of bench/soak_128k.py: the simulated gate (gate.build, as sim_main wires it)
# scanning every line of CODES_FILE in a row, with what Gate.run does between scans
# (gc.collect(), Gate.idle()). Every EVERY scans: the log acknowledged (as by a sync), then one "CHK {json}" line followed by
# micropython.mem_info() (the host reads "max free sz" from it); at the end "END {json}".
#
#   micropython -X heapsize=128k -m mp_soak STATE_DIR CODES_FILE EVERY
import gc
import json
import sys

import micropython
from offgate import config, gate
from offgate.clock import Clock
from sim.actuators import SimActuator


class CountOut:
    """The gate's report stream, counted instead of printed."""

    def __init__(self):
        self.opened = 0
        self.reasons = {}
        self.boot = None

    def write(self, text):
        if '"scan"' in text:
            if '"OPEN"' in text:
                self.opened += 1
            else:
                i = text.find('"reason": "')
                r = text[i + 11:text.find('"', i + 11)] if i >= 0 else "?"
                self.reasons[r] = self.reasons.get(r, 0) + 1
        elif self.boot is None:
            self.boot = text[:300]


def main(sdir, codes, every):
    cfg = config.load(sdir + "/gate.json")
    out = CountOut()
    g = gate.build(cfg, SimActuator(None), out, Clock())
    gc.collect()
    setup = gc.mem_alloc()
    n = 0
    hi = 0
    lo_free = 1 << 30
    with open(codes, "rb") as f:
        while True:
            line = f.readline()
            if not line:
                break
            g.scan(line.rstrip(b"\r\n"))
            n += 1
            gc.collect()
            g.idle()
            used = gc.mem_alloc()
            hi = max(hi, used)
            lo_free = min(lo_free, gc.mem_free())
            if n % every == 0:
                seq, chain = g.oplog.head()  # what a sync does once it has stored the records
                g.oplog.acknowledge(seq, chain)
                gc.collect()
                st = g.status()
                cache, hits = st["cache"], st["cache_hits"]
                st = None  # the gate drops its status report once sent: no dict alive across the scans
                gc.collect()
                print("CHK " + json.dumps({"n": n, "used": used, "free": gc.mem_free(), "opened": out.opened,
                                           "cache": cache, "cache_hits": hits,
                                           "replay_bytes": g.replay.slots * 16}))
                micropython.mem_info()
    st = g.status()
    print("END " + json.dumps({"scans": n, "opened": out.opened, "denied": out.reasons, "setup_used": setup,
                               "max_used_between_scans": hi, "min_free_between_scans": lo_free,
                               "cache_hits": st["cache_hits"],
                               "boot": out.boot}))


main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
