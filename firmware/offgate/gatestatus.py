"""The gate's status report (offgate.gate.Gate.status loads this module for the call and drops it):
asked at boot (the boot report), by a sync (status command) and by the reports, never between
scans, so its code is not resident in the 128 KB heap (issue 12, docs/performance.md)."""
import offgate


def status(g):
    """A dict of the gate's counters and state: scans (count), trust and deny list serials,
    replay table and credential cache use, the log's counters (log_*), the clock's trust,
    fs_free_bytes (bytes) when the port can tell."""
    v = g.verifier
    rp = g.replay
    st = {
        "event": "status",
        "gate_id": g.cfg["gate_id"],
        "zone": g.cfg["zone"],
        "firmware": offgate.VERSION,
        "t": g.clock.now(),
        "scans": g.seq,
        "opened": g.opened,
        "denied": g.denied,
        "trust_keys": len(v.trust.keys),
        "deny_count": v.deny.count,
        "deny_serial": getattr(v.deny, "serial", 0),
        "deny_issued": getattr(v.deny, "issued", 0),
        "trust_serial": getattr(v.trust, "serial", 0),
        "replay_used": rp.used,
        "replay_slots": rp.slots,       # its size now (grows with live entries up to the cap)
        "replay_cap": rp.cap,           # the configured replay_slots
        "replay_grow_failed": rp.grow_failed,
        "replay_evictions": rp.evictions,
        "replay_skipped": rp.skipped,
        "replay_compact_errors": rp.compact_errors,
        "cache": len(v.cache),
        "cache_hits": v.cache.hits,
        "partial_lines_dropped": g.asm.dropped if g.asm is not None else 0,
        "deny_list": "ok" if g.deny_ok else "missing (%s)" % g.cfg.get("deny_list_policy", "refuse"),
        "disk_full": g.disk_full,
    }
    if g.passback is not None:
        st["passback_refused"] = g.passback.refused
    from offgate.statedir import fs_free  # not resident: boot, sync and reports only
    fs = fs_free(g.cfg.get("state_dir", "."))
    if fs is not None:
        st["fs_free_bytes"] = fs
    if g.time is not None:
        g.time.report(st, g.clock.now())
    if g.oplog is not None:
        for k, x in g.oplog.status().items():
            st["log_" + k] = x
    return st
