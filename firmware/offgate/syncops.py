"""The sync link's commands (docs/protocol.md "Sync protocol"), run by syncserver.Session once a
session is authenticated. Kept apart from the handshake so the gate loads this code only for an
authenticated session, and drops it with the session (see sim/streams.py).

Each op(session, request map) returns a response map or raises SyncError (-> ok: false).
"""
import hashlib
import os
import struct

from offgate import cbor, cose, frames
import json

from offgate.fsutil import _sync_fs, atomic_write, fs_free  # noqa: F401  (atomic_write: re-exported)
from offgate.syncserver import (BATCH_MAX_RECORDS, BATCH_PUB, DENY_CHUNK, NONCE_LEN, ROOT_PUB, SYNC_STATE, SyncError,
                                _eq, _read, _uint, urandom)


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def save_state(srv):
    atomic_write(srv.path(SYNC_STATE), json.dumps(srv.state).encode())

def root_pub(srv):
    pub = _read(srv.path(ROOT_PUB))
    if pub is None or len(pub) != 65:
        raise SyncError("no root key on the gate (%s)" % ROOT_PUB)
    return pub

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


def op_status(self, req):
    g = self.gate
    srv = self.srv
    st = {}
    tr = g.verifier.trust
    now = g.clock.now()
    try:
        st = g.status()
    except Exception:
        pass
    out = {"gate_id": g.cfg["gate_id"], "zone": g.cfg.get("zone"), "firmware": _firmware(),
           "station": g.cfg.get("station", ""), "direction": g.cfg.get("direction", "both"),
           "clock": clock_state(srv), "trust_serial": tr.serial,
           "trust": {"serial": tr.serial, "issued": tr.issued, "age": (now - tr.issued) if tr.issued else None},
           "deny": _deny_info(g.verifier.deny, now),
           "trust_keys": len(tr.keys), "deny_count": g.verifier.deny.count,
           "scans": st.get("scans"), "opened": st.get("opened"), "denied": st.get("denied")}
    log = srv.oplog
    if log is not None:
        try:
            ls = log.status()
            head = log.head()
            acked = log.acked()
            out["log"] = _plain(ls)
            out["head"] = [head[0], bytes(head[1])]
            out["acked"] = [acked[0], bytes(acked[1])]
        except Exception as e:
            out["log_error"] = str(e)
    try:
        v = os.statvfs(srv.dir)
        # free blocks from fs_free (a full littlefs can report 2^32 - 3 free blocks)
        out["storage"] = {"block": v[0], "blocks": v[2], "free": (fs_free(srv.dir) or 0) // (v[0] or 1)}
    except (AttributeError, OSError):
        pass
    return out

def _deny_info(dl, now):
    """{"count", "serial", "issued", "age" (seconds, None if unknown), "signed"} of a DenyList."""
    return {"count": dl.count, "serial": dl.serial, "issued": dl.issued,
            "age": (now - dl.issued) if dl.issued else None, "signed": dl._h == 24}


def op_config(self, req):
    return {"config": _plain(self.gate.cfg)}

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
    from offgate import batch
    log = self.srv.oplog
    if log is None:
        raise SyncError("this gate has no operation log")
    asked = req.get("max", BATCH_MAX_RECORDS)
    if not _uint(asked) or asked < 1:
        raise SyncError("max must be a positive integer")
    free = mem_free()
    n = fit = pull_size(min(asked, BATCH_MAX_RECORDS), free)
    gid = self.gate.cfg["gate_id"]
    bpub = batch_pub(self.srv)
    limit = frames.MAX_PAYLOAD - 64
    while True:
        sealed = None
        try:
            plain = batch.build(log, gid, clock_state(self.srv), n)
            sealed = batch.seal(plain, self.srv.device_key, bpub)
            plain = None
        except MemoryError:
            # fragmentation or a scan's allocations: smaller, after a collection (heap is never
            # exhausted for good by a pull: a one-record batch is ~13 KB of working set)
            plain = sealed = None
            mem_free()
            if n == 1:
                raise SyncError("gate out of memory even for a one-record batch")
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
        r = log.read(seq, 1)
        t = r[0].get("t") if r and r[0]["seq"] == seq else None  # a damaged record has no time
    ok = bool(log.acknowledge(seq, chain))
    if ok and t is not None:
        from offgate import timekeep
        timekeep.raise_floor(tk, self.gate.clock, t)
    a = log.acked()
    return {"acked": ok, "acked_to": [a[0], bytes(a[1])]}

# deny list: begin {size, sha256} / chunk {off, data} / commit
def op_deny_begin(self, req):
    size, digest = req.get("size"), req.get("sha256")
    if not _uint(size) or size < 30 or not isinstance(digest, bytes) or len(digest) != 32:
        raise SyncError("deny_begin needs size (a signed version-2 list, >= 30 bytes) and sha256 (32 bytes)")
    return _begin(self, "deny", size, digest)


def _begin(self, kind, size, digest):
    self._drop_deny_tmp()
    tmp = self.srv.path(UPLOADS[kind] + ".tmp")
    f = open(tmp, "wb")
    self.deny_tmp = {"f": f, "size": size, "sha256": digest, "off": 0, "h": hashlib.sha256(), "kind": kind,
                     "tmp": tmp}
    return {}


def op_tables_begin(self, req):
    size, digest = req.get("size"), req.get("sha256")
    if not _uint(size) or size < 8 or size > TABLES_MAX or not isinstance(digest, bytes) or len(digest) != 32:
        raise SyncError("tables_begin needs size (8 .. %d) and sha256 (32 bytes)" % TABLES_MAX)
    return _begin(self, "tables", size, digest)


def op_tables_chunk(self, req):
    return _chunk(self, req, "tables")


def op_tables_commit(self, req):
    """Install issuer comb tables: whole (size, SHA-256), then attached to the trusted keys; the
    attach checks every table row by row against its key, and a key whose table is bad stays on the
    generic path (keytables.attach). The tables are public data, so they need no signature."""
    t = self.deny_tmp
    if t is None or t["kind"] != "tables":
        raise SyncError("tables_commit without tables_begin")
    try:
        t["f"].close()
        if t["off"] != t["size"] or not _eq(t["h"].digest(), t["sha256"]):
            raise SyncError("tables incomplete or their SHA-256 does not match")
        from offgate.trust import TABLES
        path = self.srv.path(TABLES)
        os.rename(t["tmp"], path)
        _sync_fs()
        self.deny_tmp = None
        got = self.gate.verifier.trust.attach_tables(path)
        self.srv.note("issuer tables installed: %d attached, %d refused" % (got[0], got[1]))
        return {"tables": got[0], "refused": got[1]}
    finally:
        self._drop_deny_tmp()

def op_deny_chunk(self, req):
    return _chunk(self, req, "deny")


def _chunk(self, req, kind):
    t = self.deny_tmp
    if t is None or t["kind"] != kind:
        raise SyncError("%s_chunk without %s_begin" % (kind, kind))
    off, data = req.get("off"), req.get("data")
    if off != t["off"] or not isinstance(data, bytes) or not data or off + len(data) > t["size"]:
        self._drop_deny_tmp()
        raise SyncError("%s_chunk out of order or too long" % kind)
    t["f"].write(data)
    t["h"].update(data)
    t["off"] += len(data)
    return {"off": t["off"]}

def op_deny_commit(self, req):
    """Install the received list, only if it is whole (size, SHA-256), undamaged (CRC, order), a
    signed version 2 list whose root signature covers its header and ids, and newer (serial above
    the installed one). Otherwise the gate keeps its list and says why."""
    from offgate.denycheck import check_file
    from offgate.denylist import DenyListError
    t = self.deny_tmp
    if t is None or t["kind"] != "deny":
        raise SyncError("deny_commit without deny_begin")
    try:
        t["f"].close()
        if t["off"] != t["size"] or not _eq(t["h"].digest(), t["sha256"]):
            raise SyncError("deny list incomplete or its SHA-256 does not match")
        tmp = t["tmp"]
        h = hashlib.sha256()
        try:
            with open(tmp, "rb") as f:
                v, _, n, serial, issued, sig = check_file(f, t["size"], h)
        except DenyListError as e:
            raise SyncError(str(e))
        if v != 2 or not sig:
            raise SyncError("deny list refused: unsigned (version %d); the gate keeps its list" % v)
        body = _root_payload(self.srv, sig, "deny")
        if body.get(1) != serial or body.get(2) != issued or body.get(3) != n or \
                not isinstance(body.get(4), bytes) or not _eq(body.get(4), h.digest()):
            raise SyncError("deny list refused: its signature does not cover this header and these ids")
        cur = self.gate.verifier.deny
        if serial <= cur.serial:
            raise SyncError("deny list serial %d is not newer than the gate's %d; the gate keeps its list"
                            % (serial, cur.serial))
        path = self.srv.path("deny.bin")
        os.rename(tmp, path)
        _sync_fs()
        self.deny_tmp = None
        cur.open(path)
        self.gate.deny_ok = True  # a valid list again: DENY_LIST_MISSING ends
        self.srv.note("deny list %d installed: %d ids" % (serial, n))
        return {"count": cur.count, "serial": cur.serial}
    finally:
        self._drop_deny_tmp()

def op_trust(self, req):
    """Install a root-signed trust list {0: "trust", 1: serial, 2: trust.cbor bytes}. The serial and
    issue time live inside trust.cbor itself (and must equal the envelope's serial), so the file on
    flash says which list it is: a power cut or a lost sync.json cannot reset the gate's serial.
    Refused unless the serial is above the installed one and the issue time not before it."""
    from offgate.trust import TrustError, TrustStore
    signed = req.get("signed")
    if not isinstance(signed, bytes):
        raise SyncError("trust needs 'signed' (a root-signed COSE_Sign1)")
    body = _root_payload(self.srv, signed, "trust")
    serial, data = body.get(1), body.get(2)
    if not _uint(serial) or not isinstance(data, bytes):
        raise SyncError("signed trust list: bad serial or body")
    try:
        store = TrustStore.from_bytes(data)
    except TrustError as e:
        raise SyncError(str(e))
    if store.serial != serial:
        raise SyncError("signed trust list: serial %d outside, %d inside the file" % (serial, store.serial))
    cur = self.gate.verifier.trust
    if serial <= cur.serial or store.issued < cur.issued:
        raise SyncError("trust list serial %d is not newer than the gate's %d; the gate keeps its list"
                        % (serial, cur.serial))
    atomic_write(self.srv.path("trust.cbor"), data)
    self.gate.verifier.set_trust(store)
    self.srv.note("trust list %d installed: %d keys" % (serial, len(store.keys)))
    return {"serial": serial, "keys": len(store.keys)}

def op_time_nonce(self, req):
    self.time_nonce = urandom(NONCE_LEN)
    return {"nonce": self.time_nonce, "t": self.gate.clock.now()}

def op_set_time(self, req):
    signed = req.get("signed")
    if not isinstance(signed, bytes):
        raise SyncError("set_time needs 'signed' (a root-signed COSE_Sign1)")
    nonce = self.time_nonce
    self.time_nonce = None  # one use, whatever happens
    body = _root_payload(self.srv, signed, "time")
    gid, n, t = body.get(1), body.get(2), body.get(3)
    if nonce is None or not isinstance(n, bytes) or not _eq(n, nonce):
        raise SyncError("signed time does not carry this session's time nonce")
    if gid != self.gate.cfg["gate_id"] or not _uint(t):
        raise SyncError("signed time is for another gate or has a bad time")
    clock = self.gate.clock
    tk = getattr(self.gate, "time", None)
    force = body.get(4) is True  # only the root key can force a time below the floor
    if tk is not None:
        from offgate import timekeep
        why = timekeep.check_signed(tk, t, force)
        if why is not None:
            raise SyncError(why)
        drift = timekeep.set_signed(tk, clock, t)  # sets the RTC on a device, persists time and floor
    else:
        drift = t - clock.now()
        clock.offset = getattr(clock, "offset", 0) + drift
    st = self.srv.state
    st["last_set"] = t
    st["drift"] = drift
    st["offset"] = clock.offset
    save_state(self.srv)
    self.srv.note("time set: drift %d s" % drift)
    return {"drift": drift, "t": clock.now()}




def _firmware():
    import offgate
    return offgate.VERSION


def _plain(v):
    """A JSON-ish structure safe for the CBOR encoder (drops what it cannot carry)."""
    if v is None or v is True or v is False or isinstance(v, (int, str, bytes)):
        return v
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    return str(v)


def _root_payload(srv, signed, kind):
    """Verify a root-signed COSE_Sign1 and return its payload map, which must say what it is."""
    try:
        payload = cose.sign1_verify(signed, root_pub(srv))
    except ValueError as e:
        raise SyncError("%s: not signed by the root key (%s)" % (kind, e))
    try:
        body = cbor.loads(payload, max_len=frames.MAX_PAYLOAD)
    except ValueError as e:
        raise SyncError("%s: payload is not CBOR (%s)" % (kind, e))
    if not isinstance(body, dict) or body.get(0) != kind:
        raise SyncError("signed message is not a %s message" % kind)
    return body


UPLOADS = {"deny": "deny.bin", "tables": "issuer_tables.bin"}
TABLES_MAX = 256 * 1024

OPS = {
    "tables_begin": op_tables_begin,
    "tables_chunk": op_tables_chunk,
    "tables_commit": op_tables_commit,
    "status": op_status,
    "config": op_config,
    "pull": op_pull,
    "ack": op_ack,
    "deny_begin": op_deny_begin,
    "deny_chunk": op_deny_chunk,
    "deny_commit": op_deny_commit,
    "trust": op_trust,
    "time_nonce": op_time_nonce,
    "set_time": op_set_time,
}
# What each scope may do (docs/protocol.md "Scopes"). "full": every op above. "clock" (operator
# credential or its issuer key not valid at the gate's clock): read the gate's time, write
# root-signed time; nothing else is read or written.
CLOCK_OPS = ("time_nonce", "set_time")
