"""The gate: scan → decide → record → act → report, for every line from the scanner.

Hardware comes in through adapters passed by the entry point (sim_main.py on the unix port,
main.py on the ESP32): a stream reader for the scanner, an actuator for relay/LEDs, an output
stream for the one-JSON-line-per-scan report, and a clock. Nothing here imports `machine`.
"""
import gc
import json
from binascii import hexlify

import offgate
from offgate import reasons as R
from offgate.clock import elapsed_us, ticks_us
from offgate.credcache import CredCache
from offgate.denylist import DenyList
from offgate.oplog import LogFull, OpLog
from offgate.replay import ReplayGuard
from offgate.scanner import LineAssembler
from offgate.trust import TrustError, TrustStore
from offgate.verifier import Decision, Verifier

READ_CHUNK = 128


def state_path(cfg, name):
    return cfg["state_dir"] + "/" + name


class Gate:
    def __init__(self, cfg, verifier, replay, actuator, out, clock, oplog=None, asm=None):
        self.cfg = cfg
        self.asm = asm  # the scanner line buffer, made by build() before the heap fragments
        self.oplog = oplog  # offgate.oplog.OpLog (None: decisions are not logged)
        self.verifier = verifier
        self.replay = replay
        self.actuator = actuator
        self.out = out
        self.clock = clock
        self.seq = 0
        self.opened = 0
        self.denied = 0

    def scan(self, item):
        """Handle one scanner line (bytes) or a framing reason (int). Never raises."""
        t0 = ticks_us()
        now = self.clock.now()
        if isinstance(item, int):
            d = Decision(item)
        else:
            try:
                d = self.verifier.decide(item, now)
            except Exception:  # MemoryError included: deny this one, keep the gate alive
                d = Decision(R.INTERNAL_ERROR)
        lg = self.oplog
        if d.reason == R.OK and lg is not None and lg.policy == "refuse" and lg.full():
            # checked before the replay commit, so the refused rider's code is not spent
            d.reason = R.LOG_FULL
        if d.reason == R.OK:
            try:
                # Durable before the relay moves, so a power cut cannot admit the code twice: through
                # the operation log when there is one (its flushed OPEN record holds cti and ctr,
                # and build() restores the replay table from it), so an OPEN costs one flash sync
                # (one block erase on littlefs) instead of two; the replay file's write waits for
                # idle(). Without a log the replay file itself is flushed here.
                self.replay.commit(d.cred.cti, d.ctr, d.cred.exp, now, durable=lg is None)
            except Exception:
                d.reason = R.INTERNAL_ERROR  # cannot record it, so do not open
        if lg is not None:
            logged = self.log(d, now)  # durable before the relay moves: no OPEN without its record
            if d.reason == R.OK and not logged:
                try:
                    self.replay.sync()  # admitted without a log record ("admit" policy, log full)
                except Exception:
                    d.reason = R.INTERNAL_ERROR
        us = elapsed_us(t0)
        self.seq += 1
        try:
            if d.reason == R.OK:
                self.opened += 1
                self.actuator.open(self.cfg["relay_ms"])
            else:
                self.denied += 1
                self.actuator.deny(d.reason)
        except Exception:
            pass  # a failing LED must not stop the gate; the decision is already made
        self.report(d, now, us)
        return d

    def log(self, d, now):
        """Append the decision to the operation log; an OPEN that cannot be logged is denied.
        True if the record is on flash."""
        c = d.cred
        opened = d.reason == R.OK
        try:
            return self.oplog.append(now, c.cti if c is not None else None, d.ctr,
                                     "OPEN" if opened else "DENY", d.reason) is not None
        except LogFull:
            if opened:
                d.reason = R.LOG_FULL
        except Exception:  # an I/O error: the log counts it; never open without a record
            if opened:
                d.reason = R.INTERNAL_ERROR
        return False

    def report(self, d, now, us):
        c = d.cred
        rec = {
            "event": "scan",
            "seq": self.seq,
            "decision": "OPEN" if d.reason == R.OK else "DENY",
            "reason": R.name(d.reason),
            "code": d.reason,
            "cred": hexlify(c.cti).decode() if c is not None else None,
            "ctr": d.ctr,
            "t": now,
            "ms": us // 100 / 10,  # 0.1 ms resolution
        }
        self.emit(rec)

    def emit(self, rec):
        try:
            self.out.write(json.dumps(rec) + "\n")
            if hasattr(self.out, "flush"):
                self.out.flush()
        except Exception:
            pass

    def status(self):
        v = self.verifier
        st = {
            "event": "status",
            "gate_id": self.cfg["gate_id"],
            "zone": self.cfg["zone"],
            "firmware": offgate.VERSION,
            "t": self.clock.now(),
            "scans": self.seq,
            "opened": self.opened,
            "denied": self.denied,
            "trust_keys": len(v.trust.keys),
            "deny_count": v.deny.count,
            "deny_serial": getattr(v.deny, "serial", 0),
            "deny_issued": getattr(v.deny, "issued", 0),
            "trust_serial": getattr(v.trust, "serial", 0),
            "replay_used": self.replay.used,
            "replay_slots": self.replay.slots,
            "replay_evictions": self.replay.evictions,
            "replay_skipped": self.replay.skipped,
            "cache": len(v.cache),
            "cache_hits": v.cache.hits,
        }
        if self.oplog is not None:
            for k, x in self.oplog.status().items():
                st["log_" + k] = x
        return st

    async def run(self, reader):
        """Read the scanner stream until it ends (the sim's EOF; never on a real UART)."""
        asm = self.asm or LineAssembler(self.cfg["max_line"])
        while True:
            chunk = await reader.read(READ_CHUNK)
            if not chunk:
                break
            for item in asm.feed(chunk):
                self.scan(item)
                gc.collect()  # between scans, so no collection lands inside the next decision
            self.idle()  # nothing queued: precomputation for the next scans

    def idle(self):
        """Between scans (never inside a decision): write the replay file's queued records, then
        the verifier's precomputation. Never raises."""
        try:
            self.replay.sync()
        except Exception:  # the operation log still holds the counters; boot restores them
            pass
        try:
            if self.verifier.idle():
                gc.collect()
        except Exception:  # MemoryError included: it is only an optimisation
            pass


def _restore_replay(replay, oplog, now):
    """Put back into the replay table what a power cut took before the replay file's write: the
    OPEN records the log holds (those not yet acknowledged), read 32 at a time."""
    seq = oplog.acked()[0] + 1
    n = 0
    while True:
        recs = oplog.read(seq, 32)
        if not recs:
            return n
        seq = recs[-1]["seq"] + 1
        n += replay.restore([r for r in recs if "damaged" not in r], now)  # a damaged one has no fields


def build(cfg, actuator, out, clock):
    """Wire a gate from its config and state files. A missing trust store means no issuer is
    trusted (every code is refused) rather than a gate that will not start; that is reported."""
    notes = []
    # Long-lived buffers first, while the heap is unfragmented (after the trust store's table
    # check the largest free block of a 128 KB heap can be under 1 KB).
    gc.collect()
    asm = LineAssembler(cfg["max_line"])
    cache = CredCache(cfg["cache_size"])
    replay = ReplayGuard(state_path(cfg, "replay.log"), cfg["replay_slots"])
    # The log is opened (and its recovery code loaded and dropped) before the trust store's table
    # check fragments the heap: recovery needs contiguous blocks to load.
    oplog = OpLog(state_path(cfg, "oplog"), cfg["log_segment_bytes"], cfg["log_max_segments"],
                  cfg["log_full_policy"])
    rec = oplog.recover()
    gc.collect()
    try:
        trust = TrustStore.load(state_path(cfg, "trust.cbor"))
    except TrustError as e:
        trust = TrustStore()
        notes.append(str(e))
    deny = DenyList()
    try:
        deny.open(state_path(cfg, "deny.bin"))
    except ValueError as e:
        notes.append(str(e))
    replay.load(clock.now())
    oplog.before_free = replay.sync  # the log may drop records only once the replay file has them
    n = _restore_replay(replay, oplog, clock.now())
    if n:
        notes.append("replay: %d accepted counters restored from the operation log" % n)
    if rec["cut"]:
        notes.append("oplog: torn/corrupt tail cut (%d)" % rec["cut"])
    if rec["gap"]:
        notes.append("oplog: records missing after the acknowledged point")
    if rec.get("damaged"):
        notes.append("oplog: damaged records kept, seqs %s" % rec["damaged"])
    verifier = Verifier(trust, deny, replay, cfg["gate_id"], cfg["zone"], cfg["max_age_s"],
                        cfg["skew_s"], cache)
    if cfg["list_stale_policy"] == "refuse":
        verifier.list_max_age_s = cfg["list_max_age_s"]
    if deny.stale(clock.now(), cfg["list_max_age_s"]):
        notes.append("deny list stale: serial %d, issued %d (policy %s)" % (deny.serial, deny.issued,
                                                                          cfg["list_stale_policy"]))
    g = Gate(cfg, verifier, replay, actuator, out, clock, oplog, asm)
    boot = g.status()
    boot["event"] = "boot"
    boot["notes"] = notes
    g.emit(boot)
    return g
