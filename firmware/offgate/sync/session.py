"""The gate's side of the sync link (docs/protocol.md "Sync protocol"): bytes in -> bytes out.

Transport-agnostic: offgate.sync.serve feeds it from a byte pipe (a TCP socket in the simulator,
the USB serial port or a UART on a device). One `Session` per connection; the `SyncServer` holds
what outlives a session (the persisted sync state, the gate port it serves: offgate.gateport).
Modules: proto (constants), frames, handshake (loaded for HELLO/AUTH only), ops (pull, ack),
status (status, config), admin (every other command; never in the heap together with a pull's
batch), batch, serve.

Handshake (OGSYNC2; the operator proves itself first, the gate signs nothing for anyone):

    host -> gate  HELLO      {1: nonce_h (16), 2: eph_h (65, checked on P-256)}
    gate -> host  CHALLENGE  {1: gate_id, 2: nonce_g (16, os.urandom), 3: device key (65), 5: firmware}
    host -> gate  AUTH       {1: AES-CCM(k_hs, 13 zero bytes, CBOR {1: operator credential, 2: sig_h},
                                         aad = transcript(without the credential digest))}
    gate -> host  AUTH_OK    (secured) {"scope": "full" | "clock", "gate_id": ...}

    Z          = ECDH(device key, eph_h)          (32-byte x; only the gate and the host know it)
    transcript = nonce_h | nonce_g | eph_h | gate_id (4, BE) | device key | SHA-256(operator credential)
    k_hs       = HKDF-SHA256(Z, salt = nonce_h | nonce_g, info = "OGSYNC2/hs" | SHA-256(transcript w/o digest), 32)
    sig_h      = ES256 by the operator's certified key over "OGSYNC2/host" | transcript
    keys       = HKDF-SHA256(Z, salt, info = "OGSYNC2/keys" | SHA-256("OGSYNC2/host" | transcript | sig_h), 64)
    k_hg = keys[:32] (host -> gate), k_gh = keys[32:] (gate -> host)

Secured frame payload: ctr (4, BE) | AES-256-CCM(k_dir, nonce = dir (1: host->gate, 2: gate->host)
| 8 zero bytes | ctr, body (CBOR), aad = frame header | ctr) with a 16-byte tag; each direction counts
from 1 and a frame must carry exactly the next counter. Any bad tag, counter or frame in a secured
session ends it (ERROR, then nothing more is read): the link is re-established from a new HELLO.
"""
import json
import struct
import sys

from offgate.codec import cbor
from offgate.statedir import SYNC_STATE, read
from offgate.sync import frames
from offgate.sync.proto import (ADMIN_OPS, CHALLENGED, CLOCK_OPS, DEAD, IDLE, MAC_LEN, OPEN, STATUS_OPS, Refused,
                                SyncError, collect, u32, unload)

RESERVE = 256  # bytes a session holds back for its "retry" answer (docs/protocol.md "Heap")
_OOM = frames.encode(frames.ERROR, cbor.dumps({1: "gate out of memory"}))  # when nothing else can be built


def _nonce(direction, ctr):
    """The 13-byte CCM nonce of a secured frame: direction (1 host->gate, 2 gate->host) | 8 zero | ctr."""
    return bytes([direction]) + bytes(8) + ctr


# ------------------------------------------------------------------------------ server
class SyncServer:
    """What outlives a session: the gate port (offgate.gateport.GatePort), the persisted sync state
    (SYNC_STATE: clock history), counters. `log`: a stream for one-line notes, or None."""

    def __init__(self, port, log=None):
        self.port = port
        self.log = log
        st = None
        raw = read(port.path(SYNC_STATE))
        if raw:
            try:
                st = json.loads(raw)
            except ValueError:
                st = None
        if not isinstance(st, dict):
            st = {}
        self.state = st
        self.sessions = 0
        self.refused = 0

    def save_state(self):
        from offgate.statedir import atomic_write
        atomic_write(self.port.path(SYNC_STATE), json.dumps(self.state).encode())

    def clock_state(self):
        """The gate's clock as the host sees it (status and every batch): now, offset, last signed
        set, drift, and whether it is trusted, since when, from which source (offgate.timekeep)."""
        port = self.port
        c = port.clock
        st = self.state
        out = {"now": c.now(), "offset": c.offset, "last_set": st.get("last_set"), "drift": st.get("drift")}
        tk = port.time
        if tk is not None:
            st = {}
            tk.report(st, c.now())
            for k, v in st.items():
                out[k[6:]] = v  # clock_trusted -> trusted ...
            out["policy"] = tk.policy
        return out

    def note(self, msg):
        if self.log is not None:
            try:
                self.log.write("sync: %s\n" % msg)
            except Exception:
                pass

    def session(self):
        self.sessions += 1
        return Session(self)

    def refuse(self):
        """Count a refused handshake or frame (a possible attack)."""
        self.refused += 1


# ------------------------------------------------------------------------------ session
class Session:
    def __init__(self, server):
        self.srv = server
        self.port = server.port
        self.deframer = frames.Deframer()
        self.state = IDLE
        self.closed = False
        self.hs = None        # the handshake under way (offgate.sync.handshake.Handshake)
        self.k_hg = self.k_gh = None
        self.rx = 0
        self.tx = 0
        self.scope = None
        self.op_name = None
        self.pulls = None     # pull/ack state of this session (offgate.sync.ops.Pulls)
        self.admin = None     # upload and time-nonce state (offgate.sync.admin.AdminState)
        self.frames_in = 0
        self.bad_frames = 0
        self.reserve = None   # RESERVE bytes held while a session is open: freed to answer "retry" (seal)

    def close(self):
        """The link is gone: forget the keys and any half-received upload."""
        self.closed = True
        self.state = DEAD
        self._forget()

    def _forget(self):
        self.hs = None
        self.reserve = None
        self.k_hg = self.k_gh = None
        self.pulls = None
        if self.admin is not None:
            self.admin.drop_upload()
            self.admin = None

    # -- frames ----------------------------------------------------------------------
    def feed(self, data):
        """Bytes from the host -> bytes to send back. Never raises."""
        out = []
        try:
            for ftype, payload in self.deframer.feed(data):
                if self.closed:
                    break
                self.frames_in += 1
                try:
                    r = self.handle(ftype, payload)
                except MemoryError:
                    r = self._fail("gate out of memory")
                except Exception as e:  # a bug must not take the gate down: end this session
                    r = self._fail("internal error: %s" % e)
                if r:
                    out.append(r)
        except Exception as e:
            try:
                out.append(self._fail("internal error: %s" % e))
            except MemoryError:  # not even an ERROR frame: the one built at import
                out.append(_OOM)
        if len(out) == 1:
            return out[0]  # the usual case: no joined copy of a large frame
        return b"".join(out)

    def error(self, msg):
        """An ERROR frame (clear) saying `msg`."""
        self.srv.note("error: " + msg)
        return frames.encode(frames.ERROR, cbor.dumps({1: msg}))

    def _fail(self, msg):
        """End the session: forget the keys, refuse everything after this frame."""
        self.state = DEAD
        self.closed = True
        self._forget()
        return self.error(msg)

    def seal(self, ftype, body):
        """A secured frame of `body` (a map; emptied here). Short of heap for it, a small
        {"ok": false, "retry": true} response goes instead (the request was not carried out, or,
        for pull and ack, may be repeated): out of memory does not end a session."""
        batch = body is not None and "batch" in body
        try:
            return self._seal1(ftype, body)
        except MemoryError:
            if body and not batch:
                # a small answer to a command that was carried out (a commit): once more with the
                # reserve freed, since a repeated commit would not find its upload
                self.reserve = None
                collect()
                try:
                    r = self._seal1(ftype, body)
                    self._hold()
                    return r
                except MemoryError:
                    pass
            body = None
            if self.pulls is not None:  # a batch: the repeated pull gets at most half as many records
                self.pulls.shrink()
            return self.retry("a response")

    def retry(self, what):
        """The secured {"ok": false, "retry": true} answer: the request was not carried out (or
        changes nothing when repeated) and the host sends it again after this collection. Built
        with the session's reserve freed first, so that out of memory never ends a session."""
        self.reserve = None
        collect()
        self.srv.note("low on heap for %s: asked the host to retry" % what)
        r = self._seal1(frames.RESPONSE, {"ok": False, "retry": True, "err": "gate low on heap, retry"})
        self._hold()
        return r

    def _hold(self):
        """Take the reserve back (if the heap has it now; the next retry collects without it)."""
        if self.reserve is None:
            try:
                self.reserve = bytearray(RESERVE)
            except MemoryError:
                pass

    def _seal1(self, ftype, body):
        """The secured frame of map `body`. A pull's batch (body["batch"], the session's largest
        object) is copied once, straight into the frame, and encrypted there in place: no CBOR
        encoding of the whole map beside it (a growing buffer and its bytes copy, each another
        block of the batch's size on a fragmented heap)."""
        from offgate.crypto import aesccm
        d = body
        big = d.pop("batch", None)
        H = frames.HEADER + 4  # the plaintext's offset in the frame: header, counter
        if big is None:
            body = cbor.dumps(d)
            m = len(body)
        else:
            # {"batch": big, ...rest}: a map head for one entry more, the "batch" pair, then the
            # rest's entries (its own map head skipped)
            rest = cbor.dumps(d)
            d.clear()  # a small answer is kept for seal's retry only when no batch is in it
            cnt, skip = rest[0] & 31, 1
            if cnt == 24:  # 24 .. 255 entries: the count in the next byte (a response has a few)
                cnt, skip = rest[1], 2
            pre = bytearray()
            cbor._head(pre, 5, cnt + 1)
            pre += cbor.dumps("batch")
            cbor._head(pre, 2, len(big))
            m = len(pre) + len(big) + len(rest) - skip
        n = 4 + m + MAC_LEN
        ctr = u32(self.tx + 1)
        out = bytearray(frames.HEADER + n + frames.TRAILER)
        h = frames.header(ftype, n)
        out[:frames.HEADER] = h
        out[frames.HEADER:H] = ctr
        mv = memoryview(out)
        if big is not None:
            k = H + len(pre)
            out[H:k] = pre
            out[k:k + len(big)] = big
            big = None
            k = H + m - (len(rest) - skip)
            out[k:H + m] = memoryview(rest)[skip:]
            rest = pre = None
            body = mv[H:H + m]  # encrypted in place (aesccm reads each chunk before writing it)
        aesccm.encrypt(self.k_gh, _nonce(2, ctr), body, h + ctr, MAC_LEN, mv[H:H + m + MAC_LEN])
        body = mv = None
        self.tx += 1  # counted once the frame exists (a MemoryError above leaves the counter)
        return frames.finish(out)

    def open(self, ftype, payload):
        """The body of a secured frame from the host, or None (bad length, counter or tag)."""
        from offgate.crypto import aesccm
        n = len(payload)
        if n < 4 + MAC_LEN:
            return None
        ctr = bytes(payload[:4])
        if struct.unpack(">I", ctr)[0] != self.rx + 1:
            return None
        # the counter is used from here on: a bad tag ends the session, and a MemoryError (the
        # plaintext's buffer) is answered "retry", which the host repeats with its next counter
        self.rx += 1
        try:
            body = aesccm.decrypt(self.k_hg, _nonce(1, ctr), memoryview(payload)[4:], frames.header(ftype, n) + ctr,
                                  MAC_LEN, False)  # decoded at once: no bytes copy of a chunk
        except ValueError:
            return None
        return body

    def _restart(self):
        """Forget the session's keys and state, as if the link had just come up."""
        self.state = IDLE
        self.rx = self.tx = 0
        self.scope = None
        self._forget()

    def handle(self, ftype, payload):
        if payload is None:  # a frame the deframer had no heap for (frames.Deframer.dropped)
            if self.state == OPEN and ftype == frames.REQUEST:
                self.rx += 1  # taken as the next counter: the host repeats the request with its next one
                return self.retry("a request frame")
            return self.error("gate low on heap for a frame of type %d" % ftype)
        if ftype == frames.HELLO and self.state != IDLE:
            # A new handshake supersedes the session: a serial line has no connection boundary to
            # end the old one. Whoever can send this could as well cut the link; nothing is read
            # or changed without completing the new handshake.
            self.srv.note("new HELLO: previous session ended")
            self._restart()
        if self.state == OPEN:
            if ftype != frames.REQUEST:
                return self._fail("unexpected frame type %d in a secured session" % ftype)
            try:
                body = self.open(ftype, payload)
                if body is None:
                    self.srv.refuse()
                    return self._fail("bad tag or counter")
                payload = None
                try:
                    req = cbor.loads(body, max_len=frames.MAX_PAYLOAD)
                except ValueError:
                    return self._fail("request is not CBOR")
            except MemoryError:  # no heap to decrypt or decode the request: nothing was done
                body = payload = None
                return self.retry("a request")
            body = None
            if not isinstance(req, dict) or not isinstance(req.get("op"), str):
                return self.seal(frames.RESPONSE, {"ok": False, "err": "request must be a map with 'op'"})
            return self.seal(frames.RESPONSE, self.request(req))
        if ftype == frames.HELLO:
            from offgate.sync.handshake import Handshake
            self.state = IDLE
            hs = Handshake(self.port)
            try:
                r = hs.hello(payload)
            except SyncError as e:
                return self._refused(e)
            self.hs = hs
            self.state = CHALLENGED
            return r
        if ftype == frames.AUTH and self.state == CHALLENGED:
            hs = self.hs
            self.hs = None
            self.state = IDLE
            try:
                keys = hs.auth(payload)
            except SyncError as e:
                return self._refused(e)
            finally:
                hs = None
                # not needed again in this session: give their heap to the commands (a pull's batch
                # loads the device key again: read from its file, no key derivation)
                self.port.drop_device_key()
                unload("sync.handshake", "crypto.devicekey")
            self.k_hg, self.k_gh, self.scope, self.op_name = keys
            self.rx = self.tx = 0
            self.state = OPEN
            self.srv.note("session open (operator %s, scope %s)" % (self.op_name, self.scope))
            self._hold()
            return self.seal(frames.AUTH_OK, {"scope": self.scope, "gate_id": self.port.gate_id})
        self.state = IDLE
        return self.error("expected HELLO" if ftype != frames.AUTH else "AUTH without a challenge")

    def _refused(self, e):
        if isinstance(e, Refused):
            self.srv.refuse()
        return self.error(str(e))

    # -- commands (offgate/sync/ops.py, loaded on the first request; offgate/sync/admin.py) --------
    def request(self, req):
        op = req["op"]
        try:
            fn, st = self._load(op)
        except MemoryError:  # nothing was done: the host retries after the gate's next collection
            collect()
            return {"ok": False, "retry": True, "err": "gate low on heap for %s, retry" % op}
        if fn is None:
            return {"ok": False, "err": "unknown op %s" % op}
        if self.scope != "full" and op not in CLOCK_OPS:
            return {"ok": False, "err": "operator credential or issuer key not valid at the gate's clock; "
                                        "only signed time is allowed"}
        try:
            r = fn(self.srv, st, req)
        except SyncError as e:
            return {"ok": False, "err": str(e)}
        except MemoryError:
            # every command leaves nothing half done on a MemoryError (offgate/sync/admin.py, ops.py):
            # the host repeats it after this collection (docs/protocol.md "Heap")
            collect()
            return {"ok": False, "retry": True, "err": "gate low on heap for %s, retry" % op}
        except Exception as e:
            return {"ok": False, "err": "%s: %s" % (type(e).__name__, e)}
        r["ok"] = True
        return r

    def _drop_pull_code(self):
        """Drop the pull's code and the device key (this session's Pulls keeps what it needs of ops)."""
        if "offgate.sync.ops" in sys.modules or "offgate.crypto.devicekey" in sys.modules:
            self.port.drop_device_key()
            unload("sync.batch", "sync.batchrows", "sync.ops", "crypto.devicekey")

    def _load(self, op):
        """(function, its state) of command `op` (function None if unknown), its module loaded and
        the other command module dropped: a pull's code and the rest are never in the heap together."""
        if self.pulls is not None:
            self.pulls.new_request()
        if op in STATUS_OPS:  # the smallest module, first after the handshake: nothing else beside it
            self._drop_pull_code()
            if "offgate.sync.admin" in sys.modules:
                unload("sync.admin")  # an upload's state stays in self.admin
            from offgate.sync import status
            return status.OPS.get(op), None
        if "offgate.sync.status" in sys.modules:
            unload("sync.status")
        if op in ADMIN_OPS:
            self._drop_pull_code()
            from offgate.sync import admin
            if self.admin is None:
                self.admin = admin.AdminState()
            return getattr(admin, "op_" + op), self.admin
        if self.admin is not None:  # an upload or time nonce does not outlive a pull or an ack
            self.admin.drop_upload()
            self.admin = None
        if "offgate.sync.admin" in sys.modules:
            unload("sync.admin")
        from offgate.sync import ops
        if self.pulls is None:
            self.pulls = ops.Pulls()
        if op == "pull":
            from offgate.sync import batch  # noqa: F401  loaded before the batch's heap is freed
        return ops.OPS.get(op), self.pulls
