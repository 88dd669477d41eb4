"""The gate's side of the sync link (docs/protocol.md "Sync protocol"): bytes in -> bytes out.

Transport-agnostic: the simulator feeds it from a TCP socket (sim/streams.py), a device from the
USB serial port. One `Session` per connection; the `SyncServer` holds what outlives a session
(the persisted sync state, the gate it serves).

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
import hashlib
import json
import os
import struct

from offgate.codec import cbor
from offgate.sync import frames

try:
    from os import urandom
except ImportError:  # pragma: no cover - some ports keep it elsewhere
    from random import getrandbits

    def urandom(n):
        return bytes(getrandbits(8) for _ in range(n))

import sys

if sys.implementation.name == "micropython":
    from gc import collect as _collect
else:  # CPython: a full collection per request costs more than it gives
    def _collect():
        pass

PROTO = b"OGSYNC2"
NONCE_LEN = 16
MAC_LEN = 16        # the AES-CCM tag
ROLE_CLAIM = -65538
ROLE_OPERATOR = "operator"
DENY_CHUNK = 4096
SYNC_STATE = "sync.json"
ROOT_PUB = "root.pub"
BATCH_PUB = "batch.pub"
BATCH_MAX_RECORDS = 200

# session states
IDLE = 0
CHALLENGED = 1
OPEN = 2
DEAD = 3


class SyncError(ValueError):
    pass


# ------------------------------------------------------------------------------ crypto glue
def _sha256(data):
    return hashlib.sha256(data).digest()


def hmac_sha256(key, msg):
    from offgate.crypto import hmac256
    return hmac256.hmac_sha256(key, msg)


def hkdf_sha256(ikm, salt, info, n):
    from offgate.crypto import hkdf
    return hkdf.hkdf_sha256(ikm, salt, info, n)


def _eq(a, b):
    """Constant-time comparison of two byte strings (hmac256.equal, loaded like the rest of the glue)."""
    from offgate.crypto import hmac256
    return hmac256.equal(a, b)


def _u32(v):
    return struct.pack(">I", v & 0xFFFFFFFF)


def _nonce(direction, ctr):
    """The 13-byte CCM nonce of a secured frame: direction (1 host->gate, 2 gate->host) | 8 zero | ctr."""
    return bytes([direction]) + bytes(8) + ctr


def _uint(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _unload(name):
    import offgate
    offgate.unload("offgate." + name)
    _collect()


# ------------------------------------------------------------------------------ files
def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


# ------------------------------------------------------------------------------ server
class SyncServer:
    """What the sync link needs from the gate, plus the state that outlives a session."""

    def __init__(self, gate, oplog=None, device_key=None, log=None):
        self.gate = gate
        self.cfg = gate.cfg
        self.dir = gate.cfg["state_dir"]
        self.oplog = oplog if oplog is not None else getattr(gate, "oplog", None)
        self._device_key = device_key  # found or loaded on first use (a P-256 key costs heap)
        self.log = log
        st = None
        raw = _read(self.path(SYNC_STATE))
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

    @property
    def device_key(self):
        if self._device_key is None:
            self._device_key = self._find_device_key(self.gate)
        return self._device_key

    def _find_device_key(self, gate):
        for name in ("device_key", "devkey", "dkey", "key"):
            k = getattr(gate, name, None)
            if k is not None and hasattr(k, "sign"):
                return k
        from offgate.crypto import devicekey
        return devicekey.load_or_create(self.path("device.key"))

    def root_pub(self):
        """The back office's root public key (65 bytes) from root.pub, or None."""
        pub = _read(self.path(ROOT_PUB))
        return pub if pub is not None and len(pub) == 65 else None

    def path(self, name):
        return self.dir + "/" + name

    def note(self, msg):
        if self.log is not None:
            try:
                self.log.write("sync: %s\n" % msg)
            except Exception:
                pass

    def session(self):
        self.sessions += 1
        return Session(self)

# ------------------------------------------------------------------------------ session
class Session:
    def __init__(self, server):
        self.srv = server
        self.gate = server.gate
        self.deframer = frames.Deframer()
        self.state = IDLE
        self.closed = False
        self.k_hg = self.k_gh = None
        self.rx = 0
        self.tx = 0
        self.scope = None
        self.time_nonce = None
        self.deny_tmp = None
        self.pulled_to = 0   # highest seq sent in a batch in THIS session: an ack may not go beyond it
        self.seal_ctx = None  # this session's batch ephemeral key: [E, Z, seals so far] (batch.seal)
        self.last_sent = 0    # records in the batch being answered (0: the response is not a batch)
        self.pull_cap = None  # at most this many records per batch, after a batch found no heap to go out
        self.frames_in = 0
        self.bad_frames = 0

    def close(self):
        """The link is gone: forget the keys and any half-received deny list."""
        self.closed = True
        self.state = DEAD
        self.k_hg = self.k_gh = None
        self.seal_ctx = None
        self._drop_deny_tmp()

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
            out.append(self._fail("internal error: %s" % e))
        if len(out) == 1:
            return out[0]  # the usual case: no joined copy of a large frame
        return b"".join(out)

    def _error(self, msg):
        self.srv.note("error: " + msg)
        return frames.encode(frames.ERROR, cbor.dumps({1: msg}))

    def _fail(self, msg):
        """End the session: forget the keys, refuse everything after this frame."""
        self.state = DEAD
        self.closed = True
        self.k_hg = self.k_gh = None
        self._drop_deny_tmp()
        return self._error(msg)

    def _seal(self, ftype, body):
        """A secured frame of `body` (a map; emptied here). Short of heap for it, a small
        {"ok": false, "retry": true} response goes instead (the request was not carried out, or,
        for pull and ack, may be repeated): out of memory does not end a session."""
        try:
            return self._seal1(ftype, body)
        except MemoryError:
            body = None
            if self.last_sent:  # it was a batch: the repeated pull gets at most half as many records
                self.pull_cap = max(1, self.last_sent // 2)
            self.last_sent = 0
            _collect()
            self.srv.note("low on heap for a response: asked the host to retry")
            return self._seal1(ftype, {"ok": False, "retry": True, "err": "gate low on heap, retry"})

    def _seal1(self, ftype, body):
        from offgate.crypto import aesccm
        d = body
        body = cbor.dumps(d)
        d.clear()  # the caller's map no longer holds a large value (a batch) beside its encoding
        n = 4 + len(body) + MAC_LEN
        ctr = _u32(self.tx + 1)
        out = bytearray(frames.HEADER + n + frames.TRAILER)
        h = frames.header(ftype, n)
        out[:frames.HEADER] = h
        out[frames.HEADER:frames.HEADER + 4] = ctr
        aesccm.encrypt(self.k_gh, _nonce(2, ctr), body, h + ctr, MAC_LEN,
                       memoryview(out)[frames.HEADER + 4:frames.HEADER + n])
        body = None
        self.tx += 1  # counted once the frame exists (a MemoryError above leaves the counter)
        return frames.finish(out)

    def _open(self, ftype, payload):
        from offgate.crypto import aesccm
        n = len(payload)
        if n < 4 + MAC_LEN:
            return None
        ctr = bytes(payload[:4])
        if struct.unpack(">I", ctr)[0] != self.rx + 1:
            return None
        try:
            body = aesccm.decrypt(self.k_hg, _nonce(1, ctr), memoryview(payload)[4:], frames.header(ftype, n) + ctr,
                                  MAC_LEN)
        except ValueError:
            return None
        self.rx += 1
        return body

    def _restart(self):
        """Forget the session's keys and state, as if the link had just come up."""
        self.state = IDLE
        self.k_hg = self.k_gh = None
        self.rx = self.tx = 0
        self.scope = None
        self.time_nonce = None
        self.pulled_to = 0
        self.seal_ctx = None
        self._drop_deny_tmp()

    def handle(self, ftype, payload):
        if ftype == frames.HELLO and self.state != IDLE:
            # A new handshake supersedes the session: a serial line has no connection boundary to
            # end the old one. Whoever can send this could as well cut the link; nothing is read
            # or changed without completing the new handshake.
            self.srv.note("new HELLO: previous session ended")
            self._restart()
        if self.state == OPEN:
            if ftype != frames.REQUEST:
                return self._fail("unexpected frame type %d in a secured session" % ftype)
            body = self._open(ftype, payload)
            if body is None:
                self.srv.refused += 1
                return self._fail("bad tag or counter")
            try:
                req = cbor.loads(body, max_len=frames.MAX_PAYLOAD)
            except ValueError:
                return self._fail("request is not CBOR")
            if not isinstance(req, dict) or not isinstance(req.get("op"), str):
                return self._seal(frames.RESPONSE, {"ok": False, "err": "request must be a map with 'op'"})
            return self._seal(frames.RESPONSE, self.request(req))
        if ftype == frames.HELLO:
            from offgate.sync import handshake
            return handshake.hello(self, payload)
        if ftype == frames.AUTH and self.state == CHALLENGED:
            from offgate.sync import handshake
            r = handshake.auth(self, payload)
            _unload("sync.handshake")  # not needed again in this session: give its heap to the commands
            return r
        self.state = IDLE
        return self._error("expected HELLO" if ftype != frames.AUTH else "AUTH without a challenge")

    # -- commands (offgate/sync/ops.py, loaded on the first request; offgate/sync/admin.py) --------
    def request(self, req):
        _collect()
        op = req["op"]
        self.last_sent = 0
        try:
            fn = self._load(op)
        except MemoryError:  # nothing was done: the host retries after the gate's next collection
            _collect()
            return {"ok": False, "retry": True, "err": "gate low on heap for %s, retry" % op}
        from offgate.sync import ops
        if fn is None:
            return {"ok": False, "err": "unknown op %s" % op}
        if self.scope != "full" and op not in ops.CLOCK_OPS:
            return {"ok": False, "err": "operator credential or issuer key not valid at the gate's clock; "
                                        "only signed time is allowed"}
        try:
            r = fn(self, req)
        except SyncError as e:
            return {"ok": False, "err": str(e)}
        except MemoryError:
            _collect()
            return {"ok": False, "retry": op in ops.RETRY_OPS, "err": "gate low on heap for %s" % op}
        except Exception as e:
            return {"ok": False, "err": "%s: %s" % (type(e).__name__, e)}
        r["ok"] = True
        return r

    def _load(self, op):
        """The function of command `op` (None if unknown), its module loaded and the other
        command module dropped: a pull's code and the rest are never in the heap together."""
        from offgate.sync import ops
        if op in ops.ADMIN_OPS:
            if "offgate.sync.batch" in sys.modules:
                _unload("sync.batch")
            from offgate.sync import admin
            return getattr(admin, "op_" + op)
        if "offgate.sync.admin" in sys.modules:
            _unload("sync.admin")
        return ops.OPS.get(op)

    def _drop_deny_tmp(self):
        if self.deny_tmp is not None:
            from offgate.sync import ops
            ops.drop_deny_tmp(self)
