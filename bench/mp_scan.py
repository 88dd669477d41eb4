# MicroPython-side benchmark driver: runs the gate's real decision path on the unix port.
#
#   micropython -X heapsize=128k bench/mp_scan.py DATA_DIR MODE [ARGS]
#
# DATA_DIR is made by bench/bench_data.py. Modes (one JSON object per output line):
#   scan KIND N     set the gate up, warm the cache with one returning-rider scan, then N scans of
#                   KIND ("first": a new credential each scan, "returning": the cached credential,
#                   a new code each time). One line per scan: reason, ms (decide + durable replay
#                   commit, the window the gate reports as "ms"), decide_ms, alloc (bytes requested
#                   from the heap during the scan), free_before (heap free at scan start).
#                   scan KIND N LEAVE: the same, after filling the heap with ballast until only about
#                   LEAVE bytes are free (to find how much free heap a scan needs).
#   verify N        firmware ECDSA on N real rider signatures: parse_public_key, verify_key with
#                   the parsed key, verify from bytes, and verify_key after key.precompute() when
#                   the firmware has it. One line per signature.
#   cg KIND K       for callgrind: the same setup as `scan` (and the verify keys parsed), then K
#                   operations of KIND (first / returning / verify / none). KIND none with the same
#                   K is the baseline: identical except for the measured work.
# Only public interfaces are used: Verifier.decide, ReplayGuard.commit, ecdsa.verify_key/verify.
import gc
import json
import os
import sys
import time

import micropython
from offgate import config, reasons, unload
from offgate.crypto import ecdsa, p256fast  # the gate's own modules, not the public re-export
from offgate.policy.denylist import DenyList
from offgate.policy.replay import ReplayGuard
from offgate.policy.trust import TrustStore
from offgate.policy.verifier import Verifier

_mem_total = getattr(micropython, "mem_total", None)  # only with MICROPY_MEM_STATS


def _total():
    return _mem_total() if _mem_total else -1


def out(rec):
    sys.stdout.write(json.dumps(rec) + "\n")


class Bench:
    def __init__(self, data):
        self.data = data
        with open(data + "/gate.json") as f:
            cfg = config.validate(json.load(f))
        self.cfg = cfg
        self.now = cfg["bench_now"]
        sd = data  # the data dir is the state dir (so a copy of it is a self-contained gate)
        try:
            os.remove(sd + "/replay.log")  # every run starts with an empty replay log
        except OSError:
            pass
        # Same order as the gate's build(): long-lived buffers first, on an unfragmented heap.
        gc.collect()
        replay = ReplayGuard(sd + "/replay.log", cfg["replay_slots"])
        trust = TrustStore.load(sd + "/trust.cbor")
        deny = DenyList()
        deny.open(sd + "/deny.bin")
        replay.load(self.now)
        self.replay = replay
        self.v = Verifier(trust, deny, replay, cfg["gate_id"], cfg["zone"], cfg["max_age_s"], cfg["skew_s"],
                          cfg["cache_size"])
        unload("offgate.statedir")  # as gate.build after the boot: not resident between scans
        self.files = {}
        self.buf = None

    def line(self, kind):
        """The next scanner line of `kind`, gathered like the gate's LineAssembler does: into one
        preallocated buffer (made on first use, after setup), then copied out as bytes(buf[:n])."""
        if self.buf is None:
            self.buf = bytearray(self.cfg["max_line"])
            self.one = bytearray(1)
        f = self.files.get(kind)
        if f is None:
            f = self.files[kind] = open(self.data + "/" + kind + ".txt", "rb")
        buf, one, n = self.buf, self.one, 0
        while f.readinto(one):
            c = one[0]
            if c == 10 or c == 13:
                break
            if n < len(buf):
                buf[n] = c
                n += 1
        if not n:
            raise SystemExit("bench data: %s.txt has too few lines" % kind)
        for _ in range(2):
            try:
                return bytes(buf[:n])
            except MemoryError:
                gc.collect()
        return None  # no room even for the line: reported as a scan that could not be read

    def scan(self, line):
        """One scan as Gate.scan does it: decide, then the durable commit if it opens."""
        if line is None:
            return -1, 0, 0
        now = self.now
        t0 = time.ticks_us()
        try:
            d = self.v.decide(line, now)
        except Exception:
            d = None
        t1 = time.ticks_us()
        reason = reasons.INTERNAL_ERROR if d is None else d.reason
        if reason == reasons.OK:
            try:
                self.replay.commit(d.cred.cti, d.ctr, d.cred.exp, now)
            except Exception:
                reason = reasons.INTERNAL_ERROR
        t2 = time.ticks_us()
        return reason, time.ticks_diff(t2, t0), time.ticks_diff(t1, t0)


def verify_keys(data, n):
    """[(pub bytes, msg, sig)] from verify.txt (hex decoded)."""
    from binascii import unhexlify
    res = []
    with open(data + "/verify.txt") as f:
        for _ in range(n):
            parts = f.readline().split()
            if len(parts) != 3:
                break
            res.append((unhexlify(parts[0]), unhexlify(parts[1]), unhexlify(parts[2])))
    return res


def ballast(leave):
    """Fill the heap until about `leave` bytes are free (big chunks first, then ever smaller ones so
    the holes of a fragmented heap fill up too). Returns the chain that keeps the ballast alive."""
    head = None
    for size in (4096, 1024, 256, 64, 16):
        while gc.mem_free() - size - 64 >= leave:
            try:
                head = (bytearray(size), head)
            except MemoryError:
                break
    gc.collect()
    return head


def mode_scan(data, kind, n, leave=None):
    b = Bench(data)
    r, _, _ = b.scan(b.line("returning"))  # warm-up: the returning rider's credential enters the cache
    b.v.idle()  # what the gate does between scans (Gate.idle): the rider's key gets its 2^128 multiple
    gc.collect()
    pre = None
    keep = None
    if leave is not None:
        pre = [b.line(kind) for _ in range(n)]  # read before the ballast: only the scans run short of heap
        gc.collect()
        keep = ballast(leave)  # noqa: F841 (kept alive on purpose)
    out({"event": "setup", "warmup": "LINE_OOM" if r == -1 else reasons.name(r), "mem_alloc": gc.mem_alloc(), "mem_free": gc.mem_free(),
         "mem_stats": _mem_total is not None})
    for i in range(n):
        line = pre[i] if pre else b.line(kind)
        gc.collect()  # the gate collects between scans, outside the timed window
        free0 = gc.mem_free()
        t0 = _total()
        reason, us, dus = b.scan(line)
        t1 = _total()
        b.v.idle()  # between scans, outside the timed window (as Gate.run)
        out({"event": "scan", "i": i, "reason": "LINE_OOM" if reason == -1 else reasons.name(reason), "ms": us / 1000, "decide_ms": dus / 1000,
             "alloc": (t1 - t0) if t0 >= 0 else None, "free_before": free0})


def mode_verify(data, n):
    items = verify_keys(data, n)
    gc.collect()
    for i, (pub, msg, sig) in enumerate(items):
        gc.collect()
        t0 = time.ticks_us()
        key = ecdsa.parse_public_key(pub)
        t1 = time.ticks_us()
        gc.collect()
        t2 = time.ticks_us()
        ok_key = ecdsa.verify_key(key, msg, sig)
        t3 = time.ticks_us()
        gc.collect()
        t4 = time.ticks_us()
        ok_bytes = ecdsa.verify(pub, msg, sig)
        t5 = time.ticks_us()
        rec = {"event": "verify", "i": i, "ok_key": ok_key, "ok_bytes": ok_bytes,
               "parse_ms": time.ticks_diff(t1, t0) / 1000, "verify_key_ms": time.ticks_diff(t3, t2) / 1000,
               "verify_ms": time.ticks_diff(t5, t4) / 1000, "precomputed_ms": None, "precompute_ms": None,
               "ok_pre": None, "bigint_ms": None, "ok_bigint": None, "split_ms": None,
               "split_precompute_ms": None, "ok_split": None}
        # the big-int path on the same signature (the fast path switched off)
        p256fast.ENABLED = False
        gc.collect()
        t6 = time.ticks_us()
        rec["ok_bigint"] = ecdsa.verify_key(key, msg, sig)
        rec["bigint_ms"] = time.ticks_diff(time.ticks_us(), t6) / 1000
        p256fast.ENABLED = True
        if hasattr(key, "precompute_split"):  # a returning rider's key: 2^128 Q made in idle time
            gc.collect()
            t6 = time.ticks_us()
            key.precompute_split()
            t7 = time.ticks_us()
            gc.collect()
            t8 = time.ticks_us()
            rec["ok_split"] = ecdsa.verify_key(key, msg, sig)
            t9 = time.ticks_us()
            rec["split_precompute_ms"] = time.ticks_diff(t7, t6) / 1000
            rec["split_ms"] = time.ticks_diff(t9, t8) / 1000
            key.hi = None
        if hasattr(key, "precompute"):  # optional firmware feature: per-key table cached on the key
            gc.collect()
            try:
                t6 = time.ticks_us()
                key.precompute()
                t7 = time.ticks_us()
                gc.collect()
                t8 = time.ticks_us()
                rec["ok_pre"] = ecdsa.verify_key(key, msg, sig)
                t9 = time.ticks_us()
                rec["precompute_ms"] = time.ticks_diff(t7, t6) / 1000
                rec["precomputed_ms"] = time.ticks_diff(t9, t8) / 1000
            except MemoryError:
                rec["ok_pre"] = "MemoryError"
            key = None
        out(rec)


def mode_cg(data, kind, k):
    # Identical setup for every kind, so `cg none K` is the baseline of all of them.
    b = Bench(data)
    b.scan(b.line("returning"))
    b.v.idle()  # as the gate between scans: the returning rider's key gets its 2^128 multiple
    items = verify_keys(data, 1)
    pub, msg, sig = items[0]
    key = ecdsa.parse_public_key(pub)
    split = ecdsa.parse_public_key(pub)
    split.precompute_split()
    lines = {}
    for kd in ("first", "returning"):
        lines[kd] = [b.line(kd) for _ in range(k)]
    ok = 0
    for i in range(k):
        gc.collect()
        if kind == "first" or kind == "returning":
            ok += b.scan(lines[kind][i])[0] == reasons.OK
        elif kind == "verify":
            ok += ecdsa.verify_key(key, msg, sig) is True
        elif kind == "verify_bigint":
            p256fast.ENABLED = False
            ok += ecdsa.verify_key(key, msg, sig) is True
            p256fast.ENABLED = True
        elif kind == "verify_split":
            ok += ecdsa.verify_key(split, msg, sig) is True
        elif kind == "idle":  # the between-scans work for one new rider
            key.hi = None
            ok += key.precompute_split() is True
    gc.collect()
    out({"event": "cg", "kind": kind, "k": k, "ok": ok})


def main(argv):
    if len(argv) < 2:
        raise SystemExit("usage: mp_scan.py DATA_DIR scan first|returning N | verify N | cg KIND K")
    data, mode = argv[0], argv[1]
    if mode == "scan":
        mode_scan(data, argv[2], int(argv[3]), int(argv[4]) if len(argv) > 4 else None)
    elif mode == "verify":
        mode_verify(data, int(argv[2]))
    elif mode == "cg":
        mode_cg(data, argv[2], int(argv[3]))
    else:
        raise SystemExit("unknown mode " + mode)


main(sys.argv[1:])
