"""The sync link's commands other than pull and ack (docs/protocol.md "Sync protocol"): status,
config, deny list and issuer comb tables (begin / chunk / commit), root-signed trust list and
time. Loaded by session.Session.request for these requests only and dropped before the next
pull (offgate/sync/ops.py): on a gate running its firmware from .mpy files the bytecode lives in
the heap, and a pull's batch gets what this code would take.

Each op(session, request map) returns a response map or raises SyncError (-> ok: false).
"""
import hashlib
import os

from offgate.codec import cbor, cose
from offgate.sync import frames
from offgate.statedir import DENY_NEW, atomic_write, fs_free, replace
from offgate.sync.ops import _remove, clock_state, save_state
from offgate.sync.session import SyncError, _eq, _read, _uint, urandom, NONCE_LEN, ROOT_PUB


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
    """{"count", "serial", "issued", "age" (seconds, None if unknown), "signed", "id_bytes"} of a
    DenyList (id_bytes: how much of each id it stores, docs/protocol.md §6)."""
    return {"count": dl.count, "serial": dl.serial, "issued": dl.issued,
            "age": (now - dl.issued) if dl.issued else None, "signed": dl._h == 24, "id_bytes": dl._len}


def op_config(self, req):
    return {"config": _plain(self.gate.cfg)}

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


def root_pub(srv):
    pub = _read(srv.path(ROOT_PUB))
    if pub is None or len(pub) != 65:
        raise SyncError("no root key on the gate (%s)" % ROOT_PUB)
    return pub

# deny list: begin {size, sha256} / chunk {off, data} / commit
def op_deny_begin(self, req):
    size, digest = req.get("size"), req.get("sha256")
    if not _uint(size) or size < 30 or not isinstance(digest, bytes) or len(digest) != 32:
        raise SyncError("deny_begin needs size (a signed version-2 list, >= 30 bytes) and sha256 (32 bytes)")
    return _begin(self, "deny", size, digest)


def _begin(self, kind, size, digest):
    self._drop_deny_tmp()
    if kind == "deny":
        _remove(self.srv.path(DENY_NEW))  # a merge a power cut interrupted: the old list stands
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
        from offgate.statedir import TABLES
        path = self.srv.path(TABLES)
        replace(t["tmp"], path)
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
    from offgate.policy.denycheck import DenyListError, check_file
    t = self.deny_tmp
    if t is None or t["kind"] != "deny":
        raise SyncError("deny_commit without deny_begin")
    try:
        t["f"].close()
        if t["off"] != t["size"] or not _eq(t["h"].digest(), t["sha256"]):
            raise SyncError("deny list incomplete or its SHA-256 does not match")
        tmp = t["tmp"]
        with open(tmp, "rb") as f:
            kind = f.read(6)[5:]
        if kind == b"\x01":
            return _commit_delta(self, t)
        h = hashlib.sha256()
        try:
            with open(tmp, "rb") as f:
                v, _, n, serial, issued, sig, L = check_file(f, t["size"], h)
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
        replace(tmp, path)
        self.deny_tmp = None
        cur.open(path, (n, serial, issued, L))  # just checked whole: no second pass
        self.gate.deny_ok = True  # a valid list again: DENY_LIST_MISSING ends
        self.srv.note("deny list %d installed: %d ids" % (serial, n))
        return {"count": cur.count, "serial": cur.serial}
    finally:
        self._drop_deny_tmp()

def _commit_delta(self, t):
    """Install a deny delta (kind 1, offgate/policy/denydelta.py): checked whole (CRC, order), its root
    signature (that of the resulting full list) verified, its base exactly the gate's serial; then
    merged with the installed list into deny.bin.new.tmp and installed only if the result has the
    signed count and SHA-256. Any fault leaves the gate's list as it was."""
    try:
        return _delta(self, t)
    finally:
        import offgate
        offgate.unload("offgate.policy.denydelta")  # install-time code: its bytecode goes back to the heap


def _delta(self, t):
    from offgate.policy import denydelta
    from offgate.policy.denycheck import DenyListError
    cur = self.gate.verifier.deny
    tmp = t["tmp"]
    try:
        with open(tmp, "rb") as f:
            head = denydelta.check(f, t["size"])
    except DenyListError as e:
        raise SyncError(str(e))
    serial, issued, base, a, r, n, sig, L = head
    body = _root_payload(self.srv, sig, "deny")
    if body.get(1) != serial or body.get(2) != issued or body.get(3) != n or \
            not isinstance(body.get(4), bytes) or len(body.get(4)) != 32:
        raise SyncError("deny delta refused: its signature does not cover the list it makes")
    if serial <= cur.serial:
        raise SyncError("deny list serial %d is not newer than the gate's %d; the gate keeps its list"
                        % (serial, cur.serial))
    if base != cur.serial or cur._f is None or cur._h != 24 or L != cur._len:
        raise SyncError("deny delta is for list %d (%d-byte ids), the gate holds %d (%d-byte ids): send the full "
                        "list; the gate keeps its list" % (base, L, cur.serial, cur._len))
    path = self.srv.path("deny.bin")
    new = self.srv.path(DENY_NEW)
    need = 24 + L * n + 6 + len(sig)
    free = fs_free(self.srv.dir)
    if free is not None and free < need + 4096:
        raise SyncError("deny delta: %d bytes free, the new list needs %d; the gate keeps its list" % (free, need))
    self.deny_tmp = None
    try:
        denydelta.install(cur, tmp, new, path, head, body.get(4))
    except DenyListError as e:
        raise SyncError("deny delta refused: %s; the gate keeps its list" % e)
    finally:
        _remove(tmp)
    self.gate.deny_ok = True
    self.srv.note("deny list %d installed from a delta on %d: +%d -%d, %d ids" % (serial, base, a, r, n))
    return {"count": cur.count, "serial": cur.serial, "delta": True}


def op_trust(self, req):
    """Install a root-signed trust list {0: "trust", 1: serial, 2: trust.cbor bytes}. The serial and
    issue time live inside trust.cbor itself (and must equal the envelope's serial), so the file on
    flash says which list it is: a power cut or a lost sync.json cannot reset the gate's serial.
    Refused unless the serial is above the installed one and the issue time not before it."""
    from offgate.policy.trust import TrustError, TrustStore
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

