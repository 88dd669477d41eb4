"""The sync link's commands other than pull, ack (offgate/sync/ops.py), status and config
(offgate/sync/status.py) (docs/protocol.md "Sync protocol"): deny list and issuer comb tables (begin / chunk / commit), root-signed trust list and
time. Loaded by session.Session.request for these requests only and dropped before the next
pull (offgate/sync/ops.py): on a gate running its firmware from .mpy files the bytecode lives in
the heap, and a pull's batch gets what this code would take.

Each op(server, state, request map) returns a response map or raises SyncError (-> ok: false);
`state` is this module's AdminState, one per session (dropped at the next pull or ack).
Everything the gate holds is reached through server.port (offgate.gateport.GatePort).
"""
import hashlib

from offgate.codec import cbor, cose
from offgate.statedir import fs_free
from offgate.statedir import DENY, DENY_NEW, TABLES, remove
from offgate.sync import frames
from offgate.sync.proto import NONCE_LEN, SyncError, collect, eq, uint, unload, urandom

UPLOADS = {"deny": DENY, "tables": TABLES}
TABLES_MAX = 256 * 1024


class AdminState:
    """A file upload under way (deny list or comb tables: begin / chunk / commit) and the nonce
    of a signed-time request."""

    def __init__(self):
        self.upload = None      # {"f", "size", "sha256", "off", "last", "h", "kind", "tmp", "digest"}
        self.answer = None      # (kind, answer map) of the last commit (AdminState.done)
        self.time_nonce = None
        self.setting = False    # set_time is setting the clock: a MemoryError no longer gives the nonce back

    def begin(self, upload):
        self.drop_upload()
        self.upload = upload
        self.answer = None

    def done(self, kind=None, answer=None):
        """The upload's file was moved into place: nothing to remove. A commit's `answer` is kept
        for a repetition of that commit (its first answer may have found no heap: "retry")."""
        self.upload = None
        self.answer = (kind, answer) if answer is not None else None

    def repeated(self, kind):
        """The answer of the last commit of `kind` in this session, or None."""
        a = self.answer
        if a is not None and a[0] == kind:
            return dict(a[1])
        return None

    def new_nonce(self):
        self.time_nonce = urandom(NONCE_LEN)
        return self.time_nonce

    def keep_nonce(self, nonce):
        """Give back the nonce set_time took when a MemoryError stopped it before the clock was set
        (the host repeats the request)."""
        if self.time_nonce is None and not self.setting:
            self.time_nonce = nonce

    def clock_setting(self, on):
        """set_time is (on) or is no longer setting the clock: from here the nonce is spent."""
        self.setting = on

    def take_nonce(self):
        """The time nonce, once: None afterwards, whatever happens."""
        n = self.time_nonce
        self.time_nonce = None
        return n

    def drop_upload(self):
        """Forget a half-received upload and its tmp file."""
        t = self.upload
        self.upload = None
        if t is not None:
            try:
                t["f"].close()
            except Exception:
                pass
            remove(t["tmp"])


def root_pub(port):
    pub = port.root_pub()
    if pub is None:
        raise SyncError("no root key on the gate (root.pub)")
    return pub

# deny list: begin {size, sha256} / chunk {off, data} / commit
def op_deny_begin(srv, st, req):
    size, digest = req.get("size"), req.get("sha256")
    if not uint(size) or size < 30 or not isinstance(digest, bytes) or len(digest) != 32:
        raise SyncError("deny_begin needs size (a signed version-2 list, >= 30 bytes) and sha256 (32 bytes)")
    return _begin(srv, st, "deny", size, digest)


def _begin(srv, st, kind, size, digest):
    st.drop_upload()
    tmp = srv.port.path(UPLOADS[kind] + ".tmp")
    if kind == "deny":
        remove(srv.port.path(DENY_NEW))  # a merge a power cut interrupted: the old list stands
    f = open(tmp, "wb")
    st.begin({"f": f, "size": size, "sha256": digest, "off": 0, "last": -1, "h": hashlib.sha256(), "kind": kind,
              "tmp": tmp})
    return {}


def op_tables_begin(srv, st, req):
    size, digest = req.get("size"), req.get("sha256")
    if not uint(size) or size < 8 or size > TABLES_MAX or not isinstance(digest, bytes) or len(digest) != 32:
        raise SyncError("tables_begin needs size (8 .. %d) and sha256 (32 bytes)" % TABLES_MAX)
    return _begin(srv, st, "tables", size, digest)


def op_tables_chunk(srv, st, req):
    return _chunk(st, req, "tables")


def op_tables_commit(srv, st, req):
    """Install issuer comb tables: whole (size, SHA-256), then attached to the trusted keys; the
    attach checks every table row by row against its key, and a key whose table is bad stays on the
    generic path (keytables.attach). The tables are public data, so they need no signature."""
    t = st.upload
    if t is None and st.repeated("tables") is not None:
        return st.repeated("tables")
    if t is None or t["kind"] != "tables":
        raise SyncError("tables_commit without tables_begin")
    keep = False
    try:
        t["f"].close()
        if t["off"] != t["size"] or not eq(_digest(t), t["sha256"]):
            raise SyncError("tables incomplete or their SHA-256 does not match")
        got = srv.port.install_tables(t["tmp"])
        r = {"tables": got[0], "refused": got[1]}
        st.done("tables", r)
        srv.note("issuer tables installed: %d attached, %d refused" % (got[0], got[1]))
        return r
    except MemoryError:
        keep = True  # the upload stays for the host's repeated commit
        raise
    finally:
        if not keep:
            st.drop_upload()


def op_deny_chunk(srv, st, req):
    return _chunk(st, req, "deny")


def _chunk(st, req, kind):
    t = st.upload
    if t is None or t["kind"] != kind:
        raise SyncError("%s_chunk without %s_begin" % (kind, kind))
    off, data = req.get("off"), req.get("data")
    if isinstance(data, bytes) and off == t["last"] and off + len(data) == t["off"]:
        return {"off": t["off"]}  # a repeat of the last chunk, whose answer the gate had no heap for
    if off != t["off"] or not isinstance(data, bytes) or not data or off + len(data) > t["size"]:
        st.drop_upload()
        raise SyncError("%s_chunk out of order or too long" % kind)
    f = t["f"]
    f.seek(off)  # a write a MemoryError cut short is written again from here when the host repeats it
    f.write(data)
    t["h"].update(data)
    t["last"] = off
    t["off"] += len(data)
    return {"off": t["off"]}


def _digest(t):
    """The upload's SHA-256, taken once (a MicroPython hash is final after digest()) and kept for
    a commit the host repeats."""
    d = t.get("digest")
    if d is None:
        d = t["digest"] = t["h"].digest()
    return d

def op_deny_commit(srv, st, req):
    """Install the received list, only if it is whole (size, SHA-256), undamaged (CRC, order), a
    signed version 2 list whose root signature covers its header and ids, and newer (serial above
    the installed one). Otherwise the gate keeps its list and says why."""
    from offgate.policy.denycheck import DenyListError, check_file
    t = st.upload
    if t is None and st.repeated("deny") is not None:
        return st.repeated("deny")
    if t is None or t["kind"] != "deny":
        raise SyncError("deny_commit without deny_begin")
    keep = False
    try:
        t["f"].close()
        if t["off"] != t["size"] or not eq(_digest(t), t["sha256"]):
            raise SyncError("deny list incomplete or its SHA-256 does not match")
        tmp = t["tmp"]
        with open(tmp, "rb") as f:
            kind = f.read(6)[5:]
        if kind == b"\x01":
            return _commit_delta(srv, st, t)
        h = hashlib.sha256()
        try:
            with open(tmp, "rb") as f:
                v, _, n, serial, issued, sig, L = check_file(f, t["size"], h)
        except DenyListError as e:
            raise SyncError(str(e))
        if v != 2 or not sig:
            raise SyncError("deny list refused: unsigned (version %d); the gate keeps its list" % v)
        body = _root_payload(srv, sig, "deny")
        if body.get(1) != serial or body.get(2) != issued or body.get(3) != n or \
                not isinstance(body.get(4), bytes) or not eq(body.get(4), h.digest()):
            raise SyncError("deny list refused: its signature does not cover this header and these ids")
        cur = srv.port.deny_info()["serial"]
        if serial <= cur:
            raise SyncError("deny list serial %d is not newer than the gate's %d; the gate keeps its list"
                            % (serial, cur))
        count, serial = srv.port.replace_deny(tmp, (n, serial, issued, L))  # a valid list again: DENY_LIST_MISSING ends
        r = {"count": count, "serial": serial}
        st.done("deny", r)
        srv.note("deny list %d installed: %d ids" % (serial, n))
        return r
    except MemoryError:
        # nothing installed (the list file is replaced atomically, old or new): the upload and its
        # file stay for the host's repeated commit (docs/protocol.md "Heap")
        keep = True
        raise
    finally:
        if not keep:
            st.drop_upload()

def _commit_delta(srv, st, t):
    """Install a deny delta (kind 1, offgate/policy/denydelta.py): checked whole (CRC, order), its root
    signature (that of the resulting full list) verified, its base exactly the gate's serial; then
    merged with the installed list into deny.bin.new.tmp and installed only if the result has the
    signed count and SHA-256 (GatePort.install_deny_delta). Any fault leaves the gate's list as it was."""
    try:
        return _delta(srv, st, t)
    finally:
        unload("policy.denydelta")  # install-time code: its bytecode goes back to the heap


def _delta(srv, st, t):
    from offgate.policy import denydelta
    from offgate.policy.denycheck import DenyListError
    port = srv.port
    tmp = t["tmp"]
    try:
        with open(tmp, "rb") as f:
            head = denydelta.check(f, t["size"])
    except DenyListError as e:
        raise SyncError(str(e))
    serial, issued, base, a, r, n, sig, L = head
    body = _root_payload(srv, sig, "deny")
    if body.get(1) != serial or body.get(2) != issued or body.get(3) != n or \
            not isinstance(body.get(4), bytes) or len(body.get(4)) != 32:
        raise SyncError("deny delta refused: its signature does not cover the list it makes")
    cur = port.deny_info()
    if serial <= cur["serial"]:
        raise SyncError("deny list serial %d is not newer than the gate's %d; the gate keeps its list"
                        % (serial, cur["serial"]))
    if port.deny_delta_base() != (base, L):
        raise SyncError("deny delta is for list %d (%d-byte ids), the gate holds %d (%d-byte ids): send the full "
                        "list; the gate keeps its list" % (base, L, cur["serial"], cur["id_bytes"]))
    need = 24 + L * n + 6 + len(sig)
    free = fs_free(port.dir)
    if free is not None and free < need + 4096:
        raise SyncError("deny delta: %d bytes free, the new list needs %d; the gate keeps its list" % (free, need))
    # the delta file stays the upload's until the end: op_deny_commit removes it, or keeps it after a
    # MemoryError for the repeated commit (the merge's output, DENY_NEW, is removed or rewritten)
    try:
        count, serial = port.install_deny_delta(tmp, head, body.get(4))  # a valid list: DENY_LIST_MISSING ends
    except DenyListError as e:
        raise SyncError("deny delta refused: %s; the gate keeps its list" % e)
    srv.note("deny list %d installed from a delta on %d: +%d -%d, %d ids" % (serial, base, a, r, n))
    out = {"count": count, "serial": serial, "delta": True}
    remove(tmp)  # the delta file: merged, not moved into place
    st.done("deny", out)
    return out


def op_trust(srv, _, req):
    """Install a root-signed trust list {0: "trust", 1: serial, 2: trust.cbor bytes}. The serial and
    issue time live inside trust.cbor itself (and must equal the envelope's serial), so the file on
    flash says which list it is: a power cut or a lost sync.json cannot reset the gate's serial.
    Refused unless the serial is above the installed one and the issue time not before it."""
    from offgate.policy.trust import TrustError, TrustStore
    signed = req.get("signed")
    if not isinstance(signed, bytes):
        raise SyncError("trust needs 'signed' (a root-signed COSE_Sign1)")
    body = _root_payload(srv, signed, "trust")
    serial, data = body.get(1), body.get(2)
    if not uint(serial) or not isinstance(data, bytes):
        raise SyncError("signed trust list: bad serial or body")
    try:
        store = TrustStore.from_bytes(data)
    except TrustError as e:
        raise SyncError(str(e))
    if store.serial != serial:
        raise SyncError("signed trust list: serial %d outside, %d inside the file" % (serial, store.serial))
    cur, issued, _ = srv.port.trust_info()
    if serial <= cur or store.issued < issued:
        raise SyncError("trust list serial %d is not newer than the gate's %d; the gate keeps its list"
                        % (serial, cur))
    srv.port.install_trust(data, store)
    srv.note("trust list %d installed: %d keys" % (serial, len(store.keys)))
    return {"serial": serial, "keys": len(store.keys)}

def op_time_nonce(srv, st, req):
    return {"nonce": st.new_nonce(), "t": srv.port.clock.now()}


def op_set_time(srv, st, req):
    signed = req.get("signed")
    if not isinstance(signed, bytes):
        raise SyncError("set_time needs 'signed' (a root-signed COSE_Sign1)")
    nonce = st.take_nonce()  # one use, whatever happens (but a MemoryError before the clock is set)
    try:
        return _set_time(srv, st, signed, nonce)
    except MemoryError:
        st.keep_nonce(nonce)  # nothing was set: the host repeats this request with it
        raise
    finally:
        st.clock_setting(False)


def _set_time(srv, st, signed, nonce):
    body = _root_payload(srv, signed, "time")
    gid, n, t = body.get(1), body.get(2), body.get(3)
    if nonce is None or not isinstance(n, bytes) or not eq(n, nonce):
        raise SyncError("signed time does not carry this session's time nonce")
    port = srv.port
    if gid != port.gate_id or not uint(t):
        raise SyncError("signed time is for another gate or has a bad time")
    clock = port.clock
    tk = port.time
    force = body.get(4) is True  # only the root key can force a time below the floor
    if tk is not None:
        from offgate import timekeep
        why = timekeep.check_signed(tk, t, force)
        if why is not None:
            raise SyncError(why)
        st.clock_setting(True)  # from here a repetition would not find the nonce
        drift = timekeep.set_signed(tk, clock, t)  # sets the RTC on a device, persists time and floor
    else:
        drift = t - clock.now()
        st.clock_setting(True)
        clock.set(t)
    state = srv.state
    state["last_set"] = t
    state["drift"] = drift
    state["offset"] = clock.offset
    try:
        srv.save_state()
    except MemoryError:  # the clock is set (a repetition would not find the nonce): once more after a collection
        collect()
        srv.save_state()
    srv.note("time set: drift %d s" % drift)
    return {"drift": drift, "t": clock.now()}




def _root_payload(srv, signed, kind):
    """Verify a root-signed COSE_Sign1 and return its payload map, which must say what it is."""
    try:
        payload = cose.sign1_verify(signed, root_pub(srv.port))
    except ValueError as e:
        raise SyncError("%s: not signed by the root key (%s)" % (kind, e))
    try:
        body = cbor.loads(payload, max_len=frames.MAX_PAYLOAD)
    except ValueError as e:
        raise SyncError("%s: payload is not CBOR (%s)" % (kind, e))
    if not isinstance(body, dict) or body.get(0) != kind:
        raise SyncError("signed message is not a %s message" % kind)
    return body
