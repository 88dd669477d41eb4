"""Passback: an entry gate refuses a credential that entered here moments ago (docs/fares.md).

A rider who passes the gate and hands the phone (or a screenshot stream) back over the barrier
would let a second person in on one fare; replay protection does not stop it, as every code has a
fresh counter. So an entry gate remembers, for the last credentials that entered, when they
entered, and refuses the same credential for `window_s` seconds (reason PASSBACK). From local
state only: an entry gate never hears of exits at other gates, so "no exit since" means "not
seen entering here since". Only gates of direction "entry" have one (gate.build): at a "both"
gate (a bus validator) the next tap is the rider's exit, and an exit gate starts no journey.

Memory: one preallocated bytearray of `slots` 12-byte entries (cti 8 | t 4, big-endian, t = 0
marks a free entry), set-associative: a credential can live only in the WAYS entries of its set,
so a lookup or an insert reads at most WAYS entries (bounded work per scan, nothing allocated
that grows with the table). When a set is full the oldest entry is overwritten: forgetting is
lenient (a rider let through), never a refusal of a legitimate rider. The table lives in RAM:
a reboot forgets it (lenient again).
"""

ENTRY = 12
WAYS = 8


class Passback:
    def __init__(self, window_s, slots=128):
        sets = slots // WAYS
        if sets < 1:
            sets = 1
        self.sets = sets
        self.window_s = window_s
        self.tab = bytearray(sets * WAYS * ENTRY)
        self.refused = 0

    def _set(self, cti):
        h = (cti[0] << 8 | cti[1]) ^ (cti[2] << 8 | cti[3]) ^ (cti[6] << 8 | cti[7])  # small ints only
        return (h % self.sets) * WAYS * ENTRY

    def _t(self, o):
        b = self.tab
        return (b[o + 8] << 24) | (b[o + 9] << 16) | (b[o + 10] << 8) | b[o + 11]

    def _find(self, cti):
        """Byte offset of cti's entry, or -1."""
        b = self.tab
        o = self._set(cti)
        for _ in range(WAYS):
            if self._t(o):
                i = 0
                while i < 8 and b[o + i] == cti[i]:
                    i += 1
                if i == 8:
                    return o
            o += ENTRY
        return -1

    def refuses(self, cti, now):
        """True if this scan of cti is a passback: it entered here less than window_s seconds
        ago (seconds, gate clock). Reads only; nothing is recorded."""
        if self.window_s <= 0:
            return False
        o = self._find(cti)
        if o < 0:
            return False
        age = now - self._t(o)
        if 0 <= age < self.window_s:
            self.refused += 1
            return True
        return False

    def passed(self, cti, now):
        """Record that cti went through at `now` (called after the OPEN is logged)."""
        if self.window_s <= 0:
            return
        b = self.tab
        o = self._find(cti)
        if o < 0:
            # a free entry of the set, else its oldest
            s = self._set(cti)
            o = s
            oldest = -1
            for k in range(WAYS):
                e = s + k * ENTRY
                t = self._t(e)
                if t == 0:
                    o = e
                    break
                if oldest < 0 or t < oldest:
                    oldest = t
                    o = e
            for i in range(8):
                b[o + i] = cti[i]
        t = now if now > 0 else 1  # 0 marks a free entry
        b[o + 8] = (t >> 24) & 0xFF
        b[o + 9] = (t >> 16) & 0xFF
        b[o + 10] = (t >> 8) & 0xFF
        b[o + 11] = t & 0xFF

    def used(self):
        n = 0
        for o in range(0, len(self.tab), ENTRY):
            if self._t(o):
                n += 1
        return n
