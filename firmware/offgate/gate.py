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
from offgate.clock import elapsed_us, ticks_diff, ticks_ms, ticks_us
from offgate.log.oplog import DiskFull, LogFull
from offgate.scanner import LineAssembler
from offgate.policy.verifier import Decision

READ_CHUNK = 128
ENOSPC = 28


class Gate:
    def __init__(self, cfg, verifier, replay, actuator, out, clock, oplog=None, asm=None, time=None, deny_ok=True,
                 holdoff=None, passback=None, disk_full=False):
        self.cfg = cfg
        self.time = time  # offgate.clock.ClockTrust (None: the clock is trusted)
        self.deny_ok = deny_ok  # False: no valid deny list (build() checks; a sync installing one sets it)
        self.holdoff = holdoff  # (until, iat limit): replay state possibly lost at boot (gateboot)
        self.disk_full = disk_full
        self.asm = asm  # the scanner line buffer, made by build() before the heap fragments
        self.oplog = oplog  # offgate.log.oplog.OpLog (None: decisions are not logged)
        self.verifier = verifier
        self.replay = replay
        self.actuator = actuator
        self.out = out
        self.clock = clock
        self.passback = passback  # offgate.policy.passback.Passback on entry gates (build())
        self.seq = 0
        self.opened = 0
        self.denied = 0

    def scan(self, item):
        """Handle one scanner line (bytes) or a framing reason (int). Never raises."""
        t0 = ticks_us()
        now = self.clock.now()
        tk = self.time
        mode = tk.mode(now) if tk is not None else 0
        if isinstance(item, int):
            d = Decision(item)
        elif mode < 0:
            d = Decision(R.CLOCK_UNTRUSTED)
        else:
            try:
                d = self.verifier.decide(item, now, mode) if mode else self.verifier.decide(item, now)
            except Exception:  # MemoryError included: deny this one, keep the gate alive
                d = Decision(R.INTERNAL_ERROR)
        ho = self.holdoff
        if ho is not None and d.reason == R.OK:
            if now >= ho[0]:
                self.holdoff = None
            elif d.iat is not None and d.iat <= ho[1]:
                d.reason = R.REPLAY  # issued before the boot that lost counters: cannot be shown new
        if d.reason == R.OK and self.replay.maybe_evicted(d.cred.cti, now):
            d.reason = R.REPLAY  # its counter was evicted from a full table: unknown, so refused
        if d.reason == R.OK and not self.deny_ok and self.cfg.get("deny_list_policy", "refuse") == "refuse":
            d.reason = R.DENY_LIST_MISSING  # revocations cannot be checked: refused, loudly
        lg = self.oplog
        if d.reason == R.OK and lg is not None and lg.policy == "refuse" and lg.full():
            # checked before the replay commit, so the refused rider's code is not spent
            d.reason = R.LOG_FULL
        pb = self.passback
        if d.reason == R.OK and pb is not None and pb.refuses(d.cred.cti, now):
            d.reason = R.PASSBACK  # before the replay commit: the refused code is not spent
        if d.reason == R.OK:
            try:
                # Durable before the relay moves, so a power cut cannot admit the code twice: through
                # the operation log when there is one (its flushed OPEN record holds cti and ctr,
                # and build() restores the replay table from it), so an OPEN costs one flash sync
                # (one block erase on littlefs) instead of two; the replay file's write waits for
                # idle(). Without a log the replay file itself is flushed here.
                self.replay.commit(d.cred.cti, d.ctr, d.cred.exp, now, durable=lg is None, iat=d.iat)
            except OSError as e:
                d.reason = R.DISK_FULL if e.args and e.args[0] == ENOSPC else R.INTERNAL_ERROR
            except Exception:
                d.reason = R.INTERNAL_ERROR  # cannot record it, so do not open
        logged = None
        if lg is not None:
            logged = self.log(d, now)  # durable before the relay moves: no OPEN without its record
            if d.reason == R.OK and not logged:
                try:
                    self.replay.sync()  # admitted without a log record ("admit" policy, log full)
                except Exception:
                    d.reason = R.INTERNAL_ERROR
        if d.reason == R.OK and pb is not None:
            pb.passed(d.cred.cti, now)
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
        self.report(d, now, us, logged)
        return d

    def log(self, d, now):
        """Append the decision to the operation log; an OPEN that cannot be logged is denied.
        The record's operation-log seq if it is on flash, else None."""
        c = d.cred
        opened = d.reason == R.OK
        try:
            return self.oplog.append(now, c.cti if c is not None else None, d.ctr,
                                     "OPEN" if opened else "DENY", d.reason)
        except DiskFull:
            self.disk_full = True
            if opened:
                d.reason = R.DISK_FULL
        except LogFull:
            if opened:
                d.reason = R.LOG_FULL
        except OSError as e:  # an I/O error: never open without a record
            full = bool(e.args) and e.args[0] == ENOSPC
            self.disk_full = self.disk_full or full
            if opened:
                d.reason = R.DISK_FULL if full else R.INTERNAL_ERROR
        except Exception:
            if opened:
                d.reason = R.INTERNAL_ERROR
        return None

    def report(self, d, now, us, seq=None):
        """The scan's JSON line: seq = its operation-log record's seq (what a sync, the ledger and
        a receipt call it; null when it was not logged), scan = this boot's scan counter."""
        c = d.cred
        rec = {
            "event": "scan",
            "seq": seq,
            "scan": self.seq,
            "decision": "OPEN" if d.reason == R.OK else "DENY",
            "reason": R.name(d.reason),
            "code": d.reason,
            "cred": hexlify(c.cti).decode() if c is not None else None,
            "ctr": d.ctr,
            "t": now,
        }
        self.emit(rec, us // 100)  # "ms" at 0.1 ms resolution

    def emit(self, rec, ms_tenths=None):
        """One JSON line on the report stream. Never raises; on a heap too full for the line,
        collects and tries again, then sends the essentials (event, notes, decision).
        ms_tenths (int): added as "ms": n/10, written as decimal digits, since MicroPython's float
        repr is not the shortest round trip (8.2 prints as 8.199999999999999)."""
        line = None
        for _ in range(2):
            try:
                line = json.dumps(rec)
                if ms_tenths is not None:
                    line = '%s, "ms": %d.%d}' % (line[:-1], ms_tenths // 10, ms_tenths % 10)
                break
            except MemoryError:
                gc.collect()
        try:
            if line is None:
                short = {"event": rec.get("event"), "truncated": True}
                for k in ("decision", "reason", "seq", "notes", "clock_trusted", "deny_list"):
                    if k in rec:
                        short[k] = rec[k]
                line = json.dumps(short)
            self.out.write(line)
            self.out.write("\n")  # separately: no copy of a long line just to add its end
            if hasattr(self.out, "flush"):
                self.out.flush()
        except Exception:
            pass

    def deny_list_installed(self):
        """A sync installed a valid deny list (offgate.gateport): DENY_LIST_MISSING ends."""
        self.deny_ok = True

    def status(self):
        """The status report (a dict: counters, lists, log, clock; offgate/gatestatus.py). Its code
        is loaded for the call and dropped after: status is asked at boot, by a sync and by reports,
        never between scans, so it need not sit in the heap (issue 12)."""
        from offgate import gatestatus
        try:
            return gatestatus.status(self)
        finally:
            gatestatus = None
            offgate.unload("offgate.gatestatus")

    async def run(self, reader):
        """Read the scanner stream until it ends (the sim's EOF; never on a real UART). A new
        stream (connection) starts with no partial line; a partial line older than
        cfg["line_gap_ms"] when the next bytes arrive is dropped, not glued to them (a scanner
        sends a code's bytes back to back: a gap means noise or a half read)."""
        asm = self.asm or LineAssembler(self.cfg["max_line"])
        self.asm = asm
        asm.drop_partial()
        gap = self.cfg.get("line_gap_ms", 300)
        last = ticks_ms()
        while True:
            chunk = await reader.read(READ_CHUNK)
            if not chunk:
                break
            t = ticks_ms()
            if gap and asm.pending() and ticks_diff(t, last) > gap:
                asm.drop_partial()
            last = t
            for item in asm.feed(chunk):
                self.scan(item)
                gc.collect()  # between scans, so no collection lands inside the next decision
            self.idle()  # nothing queued: precomputation for the next scans

    def idle(self):
        """Between scans (never inside a decision): write the replay file's queued records, give
        back the replay table's heap once a rush has passed, then the verifier's precomputation.
        Never raises."""
        try:
            self.replay.sync()
        except Exception:  # the operation log still holds the counters; boot restores them
            pass
        self.tidy(60)
        try:
            if self.verifier.idle():
                gc.collect()
        except Exception:  # MemoryError included: it is only an optimisation
            pass

    def tidy(self, every=0):
        """Shrink the replay table if a rush has passed (ReplayGuard.tidy), at most once every
        `every` seconds: between scans, and when a sync session starts (its heap). Never raises."""
        try:
            self.replay.tidy(self.clock.now(), every)
        except Exception:
            pass


def build(cfg, actuator, out, clock):
    """Wire a gate from its config and state files (offgate.gateboot, loaded for the boot and
    unloaded after: boot-only code need not sit in a 128 KB heap between scans). Never fails on
    damaged state: what it found is in the boot report's notes."""
    from offgate import gateboot
    try:
        return gateboot.build(cfg, actuator, out, clock, Gate)
    finally:
        gateboot = None
        offgate.unload("offgate.gateboot")
        offgate.unload("offgate.timekeep")
        offgate.unload("offgate.statedir")  # state files are touched again at sync and housekeeping only
        offgate.unload("offgate.log.record")  # its names are bound in offgate.log.oplog
        offgate.unload("offgate.policy.replayfile")  # the replay table's restore from the log
