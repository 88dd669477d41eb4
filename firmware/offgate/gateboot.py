"""Boot-time wiring of the gate (gate.build loads this module for the boot and unloads it).

Every state file the gate reads is opened here, each in a way that cannot stop the boot; the
boot report's notes say exactly what was found. Policy per file (docs/security.md "Damaged state"):
- trust.cbor missing/damaged/too big: no issuer trusted (every code UNKNOWN_ISSUER), reported;
- issuer_tables.bin missing/damaged: keys verified without tables (slower), reported (trust.py);
- deny.bin missing/damaged: deny_list_policy "refuse" (default): every code DENY_LIST_MISSING
  until a sync installs a valid list; "admit": revocations unchecked, reported on every status;
- replay.log torn/corrupt/unreadable: what is readable is kept, the rest restored from the
  operation log (all of it that is still on flash when the file was unreadable);
- oplog/ torn tail cut (offgate.log.oplogrecover); unusable: decisions cannot be logged, so no OPEN;
- clock.json damaged: ignored (clock trust decided from the port clock and the log's times);
- a full filesystem: housekeeping (compaction, .tmp cleanup) is skipped, OPENs that cannot be
  recorded are refused with DISK_FULL.
"""
import gc

from offgate import statedir
from offgate.statedir import fs_free
from offgate.clock import ClockTrust
from offgate.policy.credcache import CredCache
from offgate.policy.denylist import DenyList
from offgate.log.oplog import OpLog
from offgate.policy.replay import ReplayGuard
from offgate.scanner import LineAssembler
from offgate.policy.trust import TrustError, TrustStore
from offgate.policy.verifier import Verifier


def state_path(cfg, name):
    return cfg["state_dir"] + "/" + name


def _restore_replay(replay, oplog, now, everything=False):
    """Put back into the replay table what a power cut took before the replay file's write: the
    OPEN records the log holds (those not yet acknowledged; every record it still has if
    `everything`, when the replay file was unreadable), read 32 at a time."""
    seq = 1 if everything else oplog.acked()[0] + 1
    n = 0
    while True:
        recs = oplog.read(seq, 32, False)  # fields only: no chain hashes over a whole backlog at boot
        if not recs:
            return n
        seq = recs[-1]["seq"] + 1
        n += replay.restore([r for r in recs if "damaged" not in r], now)  # a damaged one has no fields


def _remove_stale_tmp(d):
    """Remove the `.tmp` files an atomic write left when the power went before its rename (the
    committed file is the old one or the new one, never the .tmp). Housekeeping: never raises.
    The operation log's own directory is oplogrecover's. Returns the names removed."""
    out = []
    try:
        import os
        for name in os.listdir(d):
            if name.endswith(statedir.TMP) and statedir.remove(d + "/" + name):
                out.append(name)
    except Exception:
        pass
    return out


def _last_log_time(oplog):
    """Time of the newest operation-log record (the last time this gate knew), or 0."""
    try:
        seq = oplog.head()[0]
        r = oplog.read(seq, 1, False) if seq else None
        return r[0]["t"] if r else 0
    except Exception:
        return 0


def build(cfg, actuator, out, clock, Gate):
    """Wire a gate (class Gate) from its config and state files. A missing trust store means no
    issuer is trusted (every code is refused) rather than a gate that will not start; reported."""
    notes = []
    # Long-lived buffers first, while the heap is unfragmented (after the trust store's table
    # check the largest free block of a 128 KB heap can be under 1 KB).
    gc.collect()
    asm = LineAssembler(cfg["max_line"])
    cache = CredCache(cfg["cache_size"])
    # an accepted counter matters only while codes at or below it can still be fresh
    replay = ReplayGuard(state_path(cfg, statedir.REPLAY), cfg["replay_slots"],
                         cfg["max_age_s"] + 2 * cfg["skew_s"])
    passback = None
    if cfg.get("direction") == "entry" and cfg.get("passback_s", 0) > 0:
        from offgate.policy.passback import Passback
        passback = Passback(cfg["passback_s"], cfg.get("passback_slots", 128))
    stale = _remove_stale_tmp(cfg["state_dir"])
    if stale:
        notes.append("housekeeping: stale temporary files removed (%s)" % ", ".join(stale))
    # The log is opened (and its recovery code loaded and dropped) before the trust store's table
    # check fragments the heap: recovery needs contiguous blocks to load.
    # the log may drop records only once the replay file has them: before_free
    oplog = OpLog(state_path(cfg, statedir.OPLOG), cfg["log_segment_bytes"], cfg["log_max_segments"],
                  cfg["log_full_policy"], replay.sync)
    try:
        rec = oplog.recover()
    except OSError as e:  # the log's directory unusable (a file in its place, read-only flash)
        rec = {"cut": 0, "gap": False}
        notes.append("oplog: cannot open (%s)" % e)
    # the deny list (its long-lived buffers) before the trust store: a damaged issuer_tables.bin
    # leaves the heap too fragmented after the table check for the list's 512-byte pieces
    deny = DenyList()
    deny_ok = True
    try:
        import os
        os.stat(state_path(cfg, statedir.DENY))
        deny.open(state_path(cfg, statedir.DENY))
    except ValueError as e:
        deny_ok = False
        notes.append(str(e))
    except OSError as e:
        deny_ok = False
        notes.append("deny list: deny.bin %s" % ("missing" if e.args and e.args[0] == 2 else "unreadable (%s)" % e))
    if not deny_ok:
        notes.append("deny list: revocations unknown: " + (
            "every code refused (DENY_LIST_MISSING) until a valid list arrives"
            if cfg.get("deny_list_policy", "refuse") == "refuse" else "ADMITTING without revocation checks (deny_list_policy admit)"))
    gc.collect()
    try:
        trust = TrustStore.load(state_path(cfg, statedir.TRUST))
        att, bad = trust.tables
        if trust.keys and (bad or not att):
            notes.append("issuer tables: %s (%d records refused): keys without a table are verified on the generic path" % (
                "damaged" if bad else "missing", bad))
    except TrustError as e:
        trust = TrustStore()
        notes.append(str(e) + ": no issuer trusted")
    except MemoryError:
        trust = TrustStore()
        gc.collect()
        notes.append("trust store: does not fit the heap: no issuer trusted")
    replay.load(clock.now())  # never raises: what it found is in the notes below
    if replay.load_error is not None:
        notes.append("replay: replay.log unreadable (errno %d); rebuilt from the operation log" % replay.load_error)
    if replay.skipped:
        notes.append("replay: %d torn/corrupt records skipped" % replay.skipped)
    if replay.stale_tmp:
        notes.append("replay: stale replay.log.tmp removed")
    if replay.compact_errors:
        notes.append("replay: compaction failed (filesystem full?); postponed")
    n = _restore_replay(replay, oplog, clock.now(), replay.load_error is not None)
    if n:
        notes.append("replay: %d accepted counters restored from the operation log" % n)
        if not replay.sync():  # one rewrite of the replay file; housekeeping, so it may fail
            notes.append("replay: could not write the restored counters (filesystem full?); the log keeps them")
    # Counters that may be lost: the replay file unreadable or corrupt, or missing/empty though a
    # sync has acknowledged (and so freed) log records, or torn with nothing in the log to restore
    # it from; and the gate logged something within one freshness horizon (older counters no
    # longer matter). Then, for one horizon, a code issued before the boot (iat <= now + skew)
    # cannot be shown to be new and is refused as REPLAY; the rider's next code (later iat) opens.
    try:
        acked = oplog.acked()[0]
    except Exception:
        acked = 0
    recent = _last_log_time(oplog) + replay.horizon > clock.now()
    if recent and (replay.load_error is not None or replay.corrupt or replay.torn and not n
                   or (replay.missing or not replay.records) and acked > 0):
        now = clock.now()
        holdoff = (now + replay.horizon, now + cfg["skew_s"])
        notes.append("replay: accepted counters may be lost: codes issued before this boot refused as REPLAY "
                     "for %d s" % replay.horizon)
    else:
        holdoff = None
    if rec["cut"]:
        notes.append("oplog: torn/corrupt tail cut (%d)" % rec["cut"])
    if rec["gap"]:
        notes.append("oplog: records missing after the acknowledged point")
    if rec.get("damaged"):
        notes.append("oplog: damaged records kept, seqs %s" % rec["damaged"])
    if rec.get("rebuilt"):
        notes.append("oplog: %d damaged segment header(s) rebuilt from their records" % rec["rebuilt"])
    from offgate import timekeep
    tk = ClockTrust(state_path(cfg, statedir.CLOCK_STATE), cfg)
    for n in timekeep.boot(tk, clock, _last_log_time(oplog)):
        notes.append(n)
    timekeep = None
    verifier = Verifier(trust, deny, replay, cfg["gate_id"], cfg["zone"], cfg["max_age_s"], cfg["skew_s"], cache,
                        cfg["list_max_age_s"] if cfg["list_stale_policy"] == "refuse" else 0)
    if deny_ok and deny.stale(clock.now(), cfg["list_max_age_s"]):
        notes.append("deny list stale: serial %d, issued %d (policy %s)" % (deny.serial, deny.issued,
                                                                          cfg["list_stale_policy"]))
    disk_full = False
    # can this flash take the records an OPEN needs? (one tiny file, created and removed)
    probe = state_path(cfg, ".probe")
    try:
        with open(probe, "wb") as f:
            f.write(b"1")
        import os
        os.remove(probe)
    except OSError as e:
        code = e.args[0] if e.args else 0
        if code == 28:
            disk_full = True
        else:
            notes.append("filesystem: not writable (%s): OPENs cannot be recorded and are refused" % e)
    free = fs_free(cfg["state_dir"])
    if free is not None and free < 2 * 4096:
        disk_full = True
        notes.append("filesystem: full (%d bytes free); OPENs that cannot be recorded are refused (DISK_FULL)" % free)
    g = Gate(cfg, verifier, replay, actuator, out, clock, oplog, asm, tk, deny_ok, holdoff, passback, disk_full)
    boot = g.status()
    boot["event"] = "boot"
    boot["notes"] = notes
    g.emit(boot)
    return g
