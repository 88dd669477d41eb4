"""A whole sync with one gate (docs/protocol.md "Sync protocol"): pull the sealed batch summaries,
open them, ingest them into the ledger, acknowledge, then push the deny list, the signed trust list
(with the issuer keys' comb tables) and signed time.

Interrupt-safe: records are acknowledged only after the ledger has committed them, and the ledger
ingests by (gate, seq), so a link cut at any frame loses nothing and counts nothing twice. This
module sits above the sync client (offgate_host.sync) and the ledger: the client knows nothing of
the ledger, the ledger nothing of the link.
"""
import time

from ..device.tables import issuer_tables_from_trust
from ..sync.batch import open_batch as _open_batch
from ..sync.client import SyncClient, signed_trust
from ..sync.frames import GateNotEnrolled, GateRefused, GateShortOfHeap, LinkError, NoAnswer, NotAGate, SyncError
from .ledger import LedgerError, chain_next, chain_next_body

def _normalize_batch(opened, gate_id):
    """The dict sync.batch.open_batch returns -> (gate id, meta, records). Rows are
    [seq, t, cti, ctr, open, reason, missed]; each record's chain is recomputed from the batch's
    `prev` (the chain before its first record), restarting at each `breaks` entry [seq, chain]
    (a segment header that says otherwise: a lost segment or changed records before it, flagged
    as a chain break), and meta["chain_ok"] says whether the last one equals the batch's `chain`
    (the gate's own chain after the batch). A damaged record ([seq, "damaged", its bytes]) is
    chained over its stored body too (32-byte records; a 64-byte one from older firmware stored
    its chain)."""
    rows = opened.get("recs")
    prev = opened.get("prev")
    if not isinstance(rows, list) or not isinstance(prev, bytes) or len(prev) != 32:
        raise SyncError("opened batch has no records or no chain")
    brk = {}
    for b in opened.get("breaks") or []:
        if not (isinstance(b, list) and len(b) == 2 and isinstance(b[0], int) and isinstance(b[1], bytes)
                and len(b[1]) == 32):
            raise SyncError("malformed chain break in batch")
        brk[b[0]] = b[1]
    chain = prev
    out = []
    broken = []
    for row in rows:
        seq = row[0] if isinstance(row, list) and row and isinstance(row[0], int) else None
        if seq in brk:
            if brk[seq] != chain:
                broken.append(seq)
            chain = brk[seq]
        if isinstance(row, list) and len(row) == 3 and row[1] == "damaged" and isinstance(row[2], bytes):
            # a record the gate found damaged on its flash: kept with its bytes, never dropped
            raw = bytes(row[2])
            chain = raw[28:60] if len(raw) == 64 else chain_next_body(chain, raw[:28])
            out.append({"seq": int(row[0]), "damaged": raw, "chain": chain})
            continue
        if not isinstance(row, list) or len(row) != 7:
            raise SyncError("malformed record row in batch")
        seq, t, cti, ctr, op, reason, missed = row
        r = {"seq": int(seq), "t": int(t), "cti": bytes(cti) if cti else None, "ctr": int(ctr or 0),
             "decision": "OPEN" if op == 1 else "DENY", "reason": int(reason), "missed": int(missed)}
        chain = chain_next(chain, r)
        r["chain"] = chain
        out.append(r)
    meta = {"prev": prev, "from": opened.get("from"), "to": opened.get("to"), "chain": opened.get("chain"),
            "chain_ok": (not out) or chain == opened.get("chain"), "clock": opened.get("clock"),
            "not_logged": opened.get("not_logged", 0), "breaks": broken}
    return opened.get("gate", gate_id), meta, out


LOG_WARN_PCT = 50  # unsynced share of a gate's log at which every sync warns (docs/oplog.md "When full")


def log_warning(gate_id, log, synced=0):
    """A one-line warning when a gate's operation log was LOG_WARN_PCT % full or more of unsynced
    records when the sync began (status "log": backlog, capacity_records, policy), else None.
    `synced`: records this sync has pulled and acknowledged since (the warning then says the fill
    was found before it, and how many are left). At 100 % a gate with policy "refuse" refuses every
    rider (LOG_FULL) until a sync frees records."""
    cap = log.get("capacity_records") or 0
    backlog = log.get("backlog") or 0
    if not cap or backlog * 100 < LOG_WARN_PCT * cap:
        return None
    when_full = ("refuses every rider (LOG_FULL)" if log.get("policy", "refuse") == "refuse"
                 else "opens without logging (counted as not_logged)")
    if synced:
        return ("gate %d: operation log was %d%% full before this sync (%d of %d records unsynced; %d left); when "
                "full it %s until a sync: sync it more often or give it a larger log"
                % (gate_id, backlog * 100 // cap, backlog, cap, max(backlog - synced, 0), when_full))
    return ("gate %d: operation log %d%% full (%d of %d records unsynced); when full it %s until a sync: "
            "sync it more often or give it a larger log" % (gate_id, backlog * 100 // cap, backlog, cap, when_full))


def sync_gate(transport, bo, ledger, *, operator="operator", push=True, set_time=True, max_records=200,
              progress=None, now=None, open_batch=None, force_time=False):
    """One full sync with one gate. Returns a summary dict. Raises LinkError on a broken link
    (everything committed before the break stays committed; the next sync resumes); every
    SyncError raised carries .summary, the counts of what this session ingested before it."""
    if open_batch is None:
        open_batch = _open_batch
    op_key, op_cred = bo.operator_identity(operator, now=now)
    summary = {"target": str(transport), "pulled": 0, "new": 0, "duplicates": 0, "batches": 0,
               "anomalies": 0, "fraud": 0, "warnings": []}
    registered = {g["gate_id"]: g["pub"] for g in bo.gates()}

    def check_gate(gid, dpub):
        # the ledger believes only gates enrolled with this device key (provisioning or an explicit
        # operator command); anything else is refused before this side authenticates
        try:
            ledger.check_gate(gid, dpub, registered, now=now)
        except LedgerError as e:
            raise GateNotEnrolled(str(e)) from None

    try:
        return _sync_session(transport, bo, ledger, summary, registered, check_gate, op_key, op_cred, push,
                             set_time, max_records, progress, now, open_batch, force_time)
    except SyncError as e:
        e.summary = summary  # what this session ingested before it failed (committed: it stays)
        raise


def _sync_session(transport, bo, ledger, summary, registered, check_gate, op_key, op_cred, push, set_time,
                  max_records, progress, now, open_batch, force_time):
    with SyncClient(transport, op_key, op_cred) as c:
        c.handshake(check_gate=check_gate)
        gid = c.gate_id
        summary["gate_id"] = gid
        if c.scope != "full":
            # the gate's clock is off so far that the operator credential looks invalid: fix the time
            r = c.set_time(bo.root_sign, now, check=lambda t: bo.signing_time(t, force=force_time))
            ledger.note_time(gid, r["drift"], now)
            summary["time_fixed"] = r["drift"]
            return summary
        st = c.request("status")
        ledger.note_status(gid, st, now)
        log = st.get("log") or {}
        if progress:
            progress(gid, 0, log.get("backlog", 0))
        bkey = bo.batch_key()
        session = {}  # this session's batch key, once a signed seal binds it (sync.batch.open_batch)
        while True:
            r = c.request("pull", max=max_records)
            if r.get("fit") is not None:  # the gate sized the batch to its free heap (firmware >= issue 12)
                summary.setdefault("batch_sizes", []).append(r.get("sent"))
                summary["gate_heap_free"] = r.get("free")
            opened = open_batch(r["batch"], bkey, c.device_pub, session=session)
            if session.get("signed"):
                summary["batches_signed"] = summary.get("batches_signed", 0) + 1
            bgid, meta, recs = _normalize_batch(opened, gid)
            if bgid != gid:
                raise SyncError("batch says gate %r but the session is with gate %d" % (bgid, gid))
            if not recs:
                break
            res = ledger.ingest(gid, recs, meta=meta, device_pub=c.device_pub)  # durable when it returns
            summary["batches"] += 1
            summary["pulled"] += len(recs)
            for k in ("new", "duplicates", "anomalies", "fraud"):
                summary[k] += res.get(k, 0)
            for cti in res.get("deny", ()):
                bo.deny(cti, "fraud found at sync")
            last = recs[-1]
            if res.get("stored_to") != last["seq"]:
                # never acknowledge what the ledger has not stored: the gate keeps it for next time
                raise SyncError("gate %d: the ledger stored up to seq %s of a batch ending at %d; not acknowledged"
                                % (gid, res.get("stored_to"), last["seq"]))
            a = c.request("ack", seq=last["seq"], chain=meta["chain"] if meta.get("chain") else last["chain"])
            if not a.get("acked"):
                raise SyncError("gate %d refused the acknowledgement of seq %d" % (gid, last["seq"]))
            if progress:
                progress(gid, summary["pulled"], log.get("backlog", 0))
        # said after the pulls, against what they acknowledged: the fill found is a sign the gate is
        # synced too seldom even when this sync emptied its log
        w = log_warning(gid, log, synced=summary["pulled"])
        if w:
            summary["warnings"].append(w)
        if push:
            # lists go only forward: pushed when the back office's is newer than the gate's
            deny = bo.deny_bytes()
            gate_deny = (st.get("deny") or {}).get("serial", 0)
            if bo.deny_serial() > gate_deny:
                d = None
                # only the changes since the gate's list when the back office knows them; the full
                # list when it does not, or when the gate refuses the delta (a list it does not hold)
                gd = st.get("deny") or {}
                delta = bo.deny_delta(gate_deny) if gd.get("signed") and \
                    gd.get("id_bytes", bo.deny_id_bytes()) == bo.deny_id_bytes() else None
                if delta is not None:
                    try:
                        d = c.push_deny(delta)
                        summary["deny_delta_bytes"] = len(delta)
                    except GateShortOfHeap:
                        raise  # the full list would need more heap still: a fresh session retries
                    except GateRefused as e:
                        summary["warnings"].append("gate %d refused the deny delta (%s): sending the full list"
                                                   % (gid, e))
                if d is None:
                    d = c.push_deny(deny)
                    summary["deny_full_bytes"] = len(deny)
                summary["deny_serial"] = d.get("serial")
                summary["deny_count"] = d.get("count")
            else:
                summary["deny_count"] = st.get("deny_count")
                if bo.deny_serial() < gate_deny:
                    summary["warnings"].append("gate %d holds deny list %d, newer than this back office's %d: "
                                               "this data directory is behind (a restored copy?)"
                                               % (gid, gate_deny, bo.deny_serial()))
            signed, serial = signed_trust(bo, now)
            if st.get("trust_serial", 0) < serial:
                c.push_trust(signed)
                summary["trust_serial"] = serial
                st = c.request("status")
                ledger.note_status(gid, st, now)
                # the new keys' comb tables (offgate_host.device.tables): without them a key added by
                # sync verifies on the generic path, ~30 % slower for first-seen riders
                t = c.push_tables(issuer_tables_from_trust(bo.trust_bytes(now)))
                summary["tables"] = t.get("tables")
            # staged keys that every enrolled gate now holds may start signing
            import json as _json
            serials = {g["gate"]: (_json.loads(g["status"]) if g["status"] else {}).get("trust_serial", 0)
                       for g in ledger.gates()}
            promoted = bo.promote_ready(serials, now)
            if promoted:
                summary["promoted"] = promoted
            for r in bo.rollout(serials, now):
                if r["lacking"]:
                    summary["warnings"].append("issuer key %s is missing at gate(s) %s" % (r["kid"], r["lacking"]))
            if st.get("trust_serial", 0) > serial:
                summary["warnings"].append("gate %d holds trust list %d, newer than this back office's %d"
                                           % (gid, st.get("trust_serial"), serial))
        if set_time:
            last = (st.get("clock") or {}).get("last_set")
            r = c.set_time(bo.root_sign, now, check=lambda t: bo.signing_time(t, not_before=last, force=force_time))
            ledger.note_time(gid, r["drift"], now)
            summary["drift"] = r["drift"]
    return summary


COUNTS = ("pulled", "new", "duplicates", "anomalies", "fraud", "batches")  # summed over a sync's attempts


def sync_with_retries(make_transport, bo, ledger, retries=3, delay=0.5, **kw):
    """sync_gate, retried on link errors and on a gate that stayed short of heap for a command
    (GateShortOfHeap: its heap is given back with the session), each retry a fresh session with
    fresh challenges that goes on from what the last one acknowledged.
    The summary counts what every attempt ingested (an attempt cut after some batches committed
    them). On failure the exception carries that count as .summary (the same keys), so a failed
    sync still says what it ingested. A first attempt that hears nothing at all from the target
    is not retried: NotAGate."""
    done = dict.fromkeys(COUNTS, 0)
    last = None
    report = kw.get("progress")
    if report is not None:
        # a retry is a fresh session that counts from 0 against what is left on the gate: the
        # caller sees one sync, records pulled by every attempt against the whole backlog
        kw["progress"] = lambda gid, n, backlog: report(gid, done["pulled"] + n, done["pulled"] + max(backlog, n))
    for attempt in range(retries + 1):
        try:
            s = sync_gate(make_transport(), bo, ledger, **kw)
        except SyncError as e:
            for k in COUNTS:
                done[k] += (getattr(e, "summary", None) or {}).get(k, 0)
            e.summary = dict(done, attempts=attempt + 1)
            if isinstance(e, NoAnswer) and attempt == 0:
                raise _with_summary(NotAGate("%s: not a gate, or not its sync port" % e), e.summary) from None
            if not isinstance(e, (LinkError, GateShortOfHeap)):
                raise
            last = e
            time.sleep(delay)
            continue
        for k in COUNTS:
            s[k] = s.get(k, 0) + done[k]
        s["attempts"] = attempt + 1
        return s
    if isinstance(last, GateShortOfHeap):
        # every fresh session found the gate short of heap: most often its replay table is at its
        # largest after a rush (docs/security.md), which frees itself within a freshness horizon
        raise _with_summary(GateShortOfHeap("%s (in each of %d sessions; nothing was lost: the gate keeps what "
                                            "it has not had acknowledged; sync again in a few minutes, or "
                                            "when fewer riders pass)" % (last, retries + 1)),
                            last.summary) from None
    raise last


def _with_summary(e, summary):
    e.summary = summary
    return e
