"""The sync link's pull and ack (docs/protocol.md "Sync protocol"; every other command is in
offgate/sync/admin.py), run by session.Session once a session is authenticated. Kept apart from
the handshake so the gate loads this code only for an authenticated session, and drops it with
the session (offgate/sync/serve.py).

Each op(server, state, request map) returns a response map or raises SyncError (-> ok: false);
`state` is this module's Pulls, one per session.
"""
import sys

from offgate.sync import frames
from offgate.sync.proto import BATCH_MAX_RECORDS, SyncError, grab, mem_free, uint, unload


class Pulls:
    """What one session has pulled: an ack may cover these records and no more; the batch seal
    context; the size of the batch being answered (a response short of heap halves the next)."""

    def __init__(self):
        self.pulled_to = 0    # highest seq sent in a batch in THIS session: an ack may not go beyond it
        self.seal_ctx = []    # this session's batch ephemeral key: [E, Z, seals so far, signed seal accepted, bo key] (batch.seal)
        self.last_sent = 0    # records in the batch being answered (0: the response is not a batch)
        self.cap = None       # at most this many records per batch, after a batch found no heap to go out

    def new_request(self):
        self.last_sent = 0

    def sent(self, n, to):
        """A batch of n records, up to seq `to`, is the response: an ack may now cover them."""
        if to > self.pulled_to:
            self.pulled_to = to
        self.last_sent = n
        if self.cap is not None and n >= self.cap:
            # a batch at the cap went out: let the cap rise again (by an eighth), or a moment short
            # of heap (a scan between frames) would keep every later batch of the session small
            self.cap = min(BATCH_MAX_RECORDS, self.cap + 1 + self.cap // 8)

    def shrink(self):
        """The response (a batch of last_sent records) found no heap: the next pull gets at most half."""
        if self.last_sent:
            self.cap = max(1, self.last_sent // 2)
        self.last_sent = 0


# Heap a pull needs, measured (bench/sync_heap.py): the batch exists as plaintext, signed and
# sealed copies and then as the response body and frame (at most three at once, ~35 bytes per
# record each), plus the sealing's own working set (fast-path scalar multiplications, HKDF,
# AES-CCM): PULL_PER_RECORD bytes per record over PULL_RESERVE bytes. Measured on the 32-bit build
# (a seal, signed or not, once the session's ephemeral key exists: ~2.6 KB; ~147 bytes more per
# record): 6 KiB over that leaves room for a scan between frames. Too large a guess costs only a
# retry (halved), too small a reserve made every batch one record on a small heap.
PULL_PER_RECORD = 160
PULL_RESERVE = 6 * 1024


# The largest copy (the response frame) holds up to ROW_MAX bytes per record (the row encoding's
# worst case; ~20 measured) over BATCH_FIXED: it must fit in one contiguous block. Measured sealed
# batches (32-bit build, default log): 649 bytes for the session's first (signed, 6 records), 974
# for 25 records, 1,435-1,487 for 50, plus the frame's ~40. A guess too large only costs a halving
# inside op_pull (MemoryError); one too small (it was 1024) kept batches at one record whenever the
# largest free block of a 128 KB heap was ~1.1 KB.
ROW_MAX = 40
BATCH_FIXED = 640


def pull_size(n, free, block=None):
    """How many records (1 .. n) a pull may hold with `free` bytes of heap (None: any) whose
    largest contiguous block is `block` bytes (None: not known)."""
    if free is None:
        return n
    k = (free - PULL_RESERVE) // PULL_PER_RECORD
    if block is not None:
        k = min(k, (block - BATCH_FIXED) // ROW_MAX)
    return max(1, min(n, k))


def largest_block(free):
    """The largest contiguous block (bytes) the heap gives now, or None where it is not known."""
    if free is None:
        return None
    b = grab(free, 256)
    n = len(b) if b is not None else 0
    b = None
    return n


def op_pull(srv, st, req):
    """The next batch of at most `max` records, sized to the gate's free heap: a smaller batch,
    never "out of memory". The response says what was asked, what the heap allowed and what was
    sent ("asked", "fit", "free"); the host just pulls again until the batch is empty."""
    from offgate.sync import batch
    port = srv.port
    log = port.oplog
    if log is None:
        raise SyncError("this gate has no operation log")
    asked = req.get("max", BATCH_MAX_RECORDS)
    if not uint(asked) or asked < 1:
        raise SyncError("max must be a positive integer")
    free = mem_free()
    block = largest_block(free)
    n = fit = pull_size(min(asked, BATCH_MAX_RECORDS, st.cap or BATCH_MAX_RECORDS), free, block)
    gid = port.gate_id
    bpub = port.batch_pub()
    if bpub is None:
        raise SyncError("no back-office batch key on the gate (batch.pub)")
    limit = frames.MAX_PAYLOAD - 64
    try:
        while True:
            sealed = None
            try:
                plain = batch.build(log, gid, srv.clock_state(), n)
                # one ephemeral key and ECDH per session (batch.seal); signed: the session's first
                # seal (in batch.seal), every SIGN_EVERY-th, and an empty batch (the end of the host's
                # pull loop: its `prev` commits to every record acked)
                ctx = st.seal_ctx
                sign = batch.LAST_TO == log.acked()[0] or \
                    (len(ctx) > 2 and (ctx[2] + 1) % batch.SIGN_EVERY == 0)
                # the device key (offgate.crypto.devicekey, 2.3 KB from .mpy) only for a seal that
                # signs or makes the session key: an unsigned seal needs just the public key
                keyed = sign or not ctx or not ctx[3]
                sealed = batch.seal(plain, port.device_key() if keyed else None, bpub, ctx=ctx, sign=sign,
                                    gate_pub=port.device_pub())
                plain = None
            except MemoryError:
                # fragmentation or a scan's allocations: smaller, after a collection (heap is never
                # exhausted for good by a pull: a one-record batch is ~13 KB of working set)
                plain = sealed = None
                mem_free()
                if n == 1:
                    # not an end: the host asks again (pull is repeatable) after the gate's collection
                    raise MemoryError("not even a one-record batch fits (%s bytes free, largest block %s)" % (free, block))
                n = max(1, n // 2)
                continue
            if len(sealed) <= limit or n == 1:
                break
            n = max(1, n // 2)
            sealed = None
    finally:
        if "offgate.crypto.devicekey" in sys.modules:  # read again from its file for the next signed seal
            port.drop_device_key()
            unload("crypto.devicekey")
    if len(sealed) > limit:
        raise SyncError("a one-record batch does not fit in a frame")
    head = log.head()
    # what this session has been given: an ack may cover these records and no more
    st.sent(n, batch.LAST_TO)
    return {"batch": sealed, "head": [head[0], bytes(head[1])], "asked": asked, "fit": fit, "sent": n,
            "free": free, "block": block}

def op_ack(srv, st, req):
    port = srv.port
    log = port.oplog
    if log is None:
        raise SyncError("this gate has no operation log")
    seq, chain = req.get("seq"), req.get("chain")
    if not uint(seq) or not isinstance(chain, bytes) or len(chain) != 32:
        raise SyncError("ack needs seq (uint) and chain (32 bytes)")
    if seq > st.pulled_to and seq != log.acked()[0]:
        # an ack frees records: only those this session has actually pulled (and the back office
        # could therefore have stored) may be freed
        raise SyncError("ack of seq %d beyond what this session pulled (%d)" % (seq, st.pulled_to))
    tk = port.time
    t = None
    if tk is not None:  # the acknowledged records' time becomes the floor: the log may free them now
        r = log.read(seq, 1, False)
        t = r[0].get("t") if r and r[0]["seq"] == seq else None  # a damaged record has no time
    ok = bool(log.acknowledge(seq, chain))
    if ok and st.seal_ctx:
        st.seal_ctx[3] = True  # the back office opened a signed seal of this session: later ones may go unsigned
    if ok and t is not None:
        from offgate import timekeep
        timekeep.raise_floor(tk, port.clock, t)
        timekeep = None
        unload("timekeep")  # boot and sync code (offgate.gate): not kept beside a pull's batch
    a = log.acked()
    return {"acked": ok, "acked_to": [a[0], bytes(a[1])]}

OPS = {
    "pull": op_pull,
    "ack": op_ack,
}
