"""The sync link's pull and ack (the rest is in offgate/sync/admin.py) (docs/protocol.md "Sync protocol"), run by session.Session once a
session is authenticated. Kept apart from the handshake so the gate loads this code only for an
authenticated session, and drops it with the session (see sim/streams.py).

Each op(session, request map) returns a response map or raises SyncError (-> ok: false).
"""
import json
import os

from offgate.sync import frames
from offgate.statedir import atomic_write
from offgate.sync.session import BATCH_MAX_RECORDS, BATCH_PUB, SYNC_STATE, SyncError, _read, _uint


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def save_state(srv):
    atomic_write(srv.path(SYNC_STATE), json.dumps(srv.state).encode())

def batch_pub(srv):
    for name in ("backoffice_pub", "bo_pub", "batch_pub", "server_pub"):
        v = getattr(srv.gate, name, None)
        if isinstance(v, (bytes, bytearray)) and len(v) == 65:
            return bytes(v)
    pub = _read(srv.path(BATCH_PUB))
    if pub is None or len(pub) != 65:
        raise SyncError("no back-office batch key on the gate (%s)" % BATCH_PUB)
    return pub

# -- clock -------------------------------------------------------------------------
def clock_state(srv):
    c = srv.gate.clock
    st = srv.state
    out = {"now": c.now(), "offset": getattr(c, "offset", 0), "last_set": st.get("last_set"),
           "drift": st.get("drift")}
    tk = getattr(srv.gate, "time", None)
    if tk is not None:  # whether the clock is trusted, since when, from which source
        st = {}
        tk.report(st, c.now())
        for k, v in st.items():
            out[k[6:]] = v  # clock_trusted -> trusted ...
        out["policy"] = tk.policy
    return out


def drop_deny_tmp(self):
    """Forget a half-received file upload (deny list or comb tables) and its tmp file."""
    if self.deny_tmp is not None:
        try:
            self.deny_tmp["f"].close()
        except Exception:
            pass
        _remove(self.deny_tmp["tmp"])
        self.deny_tmp = None


# Heap a pull needs, measured (bench/sync_heap.py): the batch exists as plaintext, signed and
# sealed copies and then as the response body and frame (at most three at once, ~35 bytes per
# record each), plus the sealing's own working set (fast-path scalar multiplications, HKDF,
# AES-CCM): PULL_PER_RECORD bytes per record over PULL_RESERVE bytes.
PULL_PER_RECORD = 160
PULL_RESERVE = 12 * 1024


def mem_free():
    """Free heap (bytes) after a collection, or None where the port does not say (CPython)."""
    try:
        import gc
        gc.collect()
        return gc.mem_free()
    except (ImportError, AttributeError):
        return None


def pull_size(n, free):
    """How many records (1 .. n) a pull may hold with `free` bytes of heap (None: any)."""
    if free is None:
        return n
    return max(1, min(n, (free - PULL_RESERVE) // PULL_PER_RECORD))


def op_pull(self, req):
    """The next batch of at most `max` records, sized to the gate's free heap: a smaller batch,
    never "out of memory". The response says what was asked, what the heap allowed and what was
    sent ("asked", "fit", "free"); the host just pulls again until the batch is empty."""
    from offgate.sync import batch
    log = self.srv.oplog
    if log is None:
        raise SyncError("this gate has no operation log")
    asked = req.get("max", BATCH_MAX_RECORDS)
    if not _uint(asked) or asked < 1:
        raise SyncError("max must be a positive integer")
    free = mem_free()
    n = fit = pull_size(min(asked, BATCH_MAX_RECORDS, self.pull_cap or BATCH_MAX_RECORDS), free)
    gid = self.gate.cfg["gate_id"]
    bpub = batch_pub(self.srv)
    limit = frames.MAX_PAYLOAD - 64
    while True:
        sealed = None
        try:
            plain = batch.build(log, gid, clock_state(self.srv), n)
            if self.seal_ctx is None:
                self.seal_ctx = []  # one ephemeral key and ECDH per session (batch.seal)
            # signed: the session's first seal (in batch.seal), every SIGN_EVERY-th, and an empty
            # batch (the end of the host's pull loop: its `prev` commits to every record acked)
            sign = batch.LAST_TO == log.acked()[0] or \
                (len(self.seal_ctx) > 2 and (self.seal_ctx[2] + 1) % batch.SIGN_EVERY == 0)
            sealed = batch.seal(plain, self.srv.device_key, bpub, ctx=self.seal_ctx, sign=sign)
            plain = None
        except MemoryError:
            # fragmentation or a scan's allocations: smaller, after a collection (heap is never
            # exhausted for good by a pull: a one-record batch is ~13 KB of working set)
            plain = sealed = None
            mem_free()
            if n == 1:
                raise SyncError("gate out of memory even for a one-record batch (%s bytes free before it)" % free)
            n = max(1, n // 2)
            continue
        if len(sealed) <= limit or n == 1:
            break
        n = max(1, n // 2)
        sealed = None
    if len(sealed) > limit:
        raise SyncError("a one-record batch does not fit in a frame")
    head = log.head()
    # what this session has been given: an ack may cover these records and no more
    to = batch.LAST_TO
    if to > self.pulled_to:
        self.pulled_to = to
    self.last_sent = n
    return {"batch": sealed, "head": [head[0], bytes(head[1])], "asked": asked, "fit": fit, "sent": n,
            "free": free}

def op_ack(self, req):
    log = self.srv.oplog
    if log is None:
        raise SyncError("this gate has no operation log")
    seq, chain = req.get("seq"), req.get("chain")
    if not _uint(seq) or not isinstance(chain, bytes) or len(chain) != 32:
        raise SyncError("ack needs seq (uint) and chain (32 bytes)")
    if seq > self.pulled_to and seq != log.acked()[0]:
        # an ack frees records: only those this session has actually pulled (and the back office
        # could therefore have stored) may be freed
        raise SyncError("ack of seq %d beyond what this session pulled (%d)" % (seq, self.pulled_to))
    tk = getattr(self.gate, "time", None)
    t = None
    if tk is not None:  # the acknowledged records' time becomes the floor: the log may free them now
        r = log.read(seq, 1, False)
        t = r[0].get("t") if r and r[0]["seq"] == seq else None  # a damaged record has no time
    ok = bool(log.acknowledge(seq, chain))
    if ok and self.seal_ctx:
        self.seal_ctx[3] = True  # the back office opened a signed seal of this session: later ones may go unsigned
    if ok and t is not None:
        from offgate import timekeep
        timekeep.raise_floor(tk, self.gate.clock, t)
    a = log.acked()
    return {"acked": ok, "acked_to": [a[0], bytes(a[1])]}

OPS = {
    "pull": op_pull,
    "ack": op_ack,
}
# Status, config, lists, tables and time (offgate/sync/admin.py): loaded only for those requests, so a
# pull's batch has the heap that code would take (the two are never in the heap together).
ADMIN_OPS = ("status", "config", "tables_begin", "tables_chunk", "tables_commit", "deny_begin", "deny_chunk", "deny_commit", "trust",
            "time_nonce", "set_time")
# What each scope may do (docs/protocol.md "Scopes"). "full": every op above. "clock" (operator
# credential or its issuer key not valid at the gate's clock): read the gate's time, write
# root-signed time; nothing else is read or written.
CLOCK_OPS = ("time_nonce", "set_time")
# Commands a host may simply repeat after a "retry" answer (the gate was short of heap): they
# change nothing, or nothing that a repetition would change again.
RETRY_OPS = ("status", "config", "pull", "ack", "time_nonce")
