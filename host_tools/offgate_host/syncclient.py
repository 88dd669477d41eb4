"""The host side of the sync link (docs/protocol.md "Sync protocol").

    transport = TcpTransport("127.0.0.1", 7001)      # or SerialTransport("/dev/ttyUSB0")
    with SyncClient(transport, operator_key, operator_cred) as c:
        c.handshake(expected_device_pub=...)
        c.request("status")

`sync_gate()` runs a whole sync (pull, decrypt, ingest, acknowledge, push deny list / trust list /
time) and is interrupt-safe: records are acknowledged only after the ledger has committed them, and
the ledger ingests by (gate, seq), so a link cut at any frame loses nothing and counts nothing twice.

The framing is implemented again here (not imported from the firmware) so the two implementations
check each other in the tests.
"""
import hashlib
import os
import socket
import struct
import time
import zlib

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESCCM

from . import keys
from .errors import OffgateError

MAGIC = b"OGSY"
VERSION = 1
HEADER = 8
MAX_PAYLOAD = 16384
HELLO, CHALLENGE, AUTH, AUTH_OK, REQUEST, RESPONSE, ERROR = 0x01, 0x02, 0x03, 0x04, 0x10, 0x11, 0x7F
PROTO = b"OGSYNC2"
NONCE_LEN = 16
MAC_LEN = 16
DENY_CHUNK = 4096
TABLES_CHUNK = 1024  # smaller: the comb tables come right after a trust list install, on a fragmented heap


class SyncError(OffgateError):
    """A sync failed in a way a retry will not fix (authentication, a refused command)."""


class LinkError(SyncError):
    """The link broke (timeout, closed, dropped on purpose): a retry may succeed."""


class GateRefused(SyncError):
    """The gate answered with an ERROR frame or ok=False."""


class GateNotEnrolled(SyncError):
    """The gate is not enrolled in the ledger with the device key it presented: nothing is pulled."""


# --------------------------------------------------------------------------- framing
def frame_header(ftype, n):
    return MAGIC + struct.pack(">BBH", VERSION, ftype, n)


def encode_frame(ftype, payload: bytes) -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise ValueError("frame payload too long (%d > %d)" % (len(payload), MAX_PAYLOAD))
    body = frame_header(ftype, len(payload)) + payload
    return body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


class Deframer:
    """Stream -> frames; garbage, bad versions/lengths/CRCs are skipped (resync on the magic)."""

    def __init__(self):
        self.buf = bytearray()
        self.errors = 0

    def feed(self, data: bytes):
        self.buf += data
        out = []
        while True:
            i = self.buf.find(MAGIC)
            if i < 0:
                keep = next((k for k in (3, 2, 1) if self.buf.endswith(MAGIC[:k])), 0)
                if len(self.buf) > keep:
                    self.errors += 1
                    del self.buf[:len(self.buf) - keep]
                return out
            if i:
                self.errors += 1
                del self.buf[:i]
            if len(self.buf) < HEADER:
                return out
            ver, ftype, n = struct.unpack(">BBH", self.buf[4:8])
            if ver != VERSION or n > MAX_PAYLOAD:
                self.errors += 1
                del self.buf[:1]
                continue
            end = HEADER + n + 4
            if len(self.buf) < end:
                return out
            (crc,) = struct.unpack(">I", self.buf[end - 4:end])
            if crc != zlib.crc32(bytes(self.buf[:end - 4])) & 0xFFFFFFFF:
                self.errors += 1
                del self.buf[:1]
                continue
            out.append((ftype, bytes(self.buf[HEADER:end - 4])))
            del self.buf[:end]


# --------------------------------------------------------------------------- transports
class TcpTransport:
    def __init__(self, host, port, timeout=30.0):
        self.addr = (host, int(port))
        self.timeout = timeout
        self.sock = None

    def open(self):
        try:
            self.sock = socket.create_connection(self.addr, timeout=self.timeout)
        except OSError as e:
            raise LinkError("cannot connect to %s:%d: %s" % (self.addr[0], self.addr[1], e)) from None
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, data):
        try:
            self.sock.sendall(data)
        except OSError as e:
            raise LinkError("send failed: %s" % e) from None

    def recv(self):
        try:
            d = self.sock.recv(65536)
        except socket.timeout:
            raise LinkError("gate did not answer within %.0f s" % self.timeout) from None
        except OSError as e:
            raise LinkError("receive failed: %s" % e) from None
        if not d:
            raise LinkError("gate closed the connection")
        return d

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def __str__(self):
        return "tcp:%s:%d" % self.addr


class SerialTransport:
    """USB serial to a device running the sync server on its REPL-free port (pyserial)."""

    def __init__(self, port, baudrate=115200, timeout=30.0):
        self.port = port
        self.baudrate = baudrate
        self.timeout = timeout
        self.ser = None

    def open(self):
        import serial
        try:
            self.ser = serial.Serial(self.port, self.baudrate, timeout=0.2)
        except Exception as e:
            raise LinkError("cannot open %s: %s" % (self.port, e)) from None
        self.ser.reset_input_buffer()

    def send(self, data):
        try:
            self.ser.write(data)
            self.ser.flush()
        except Exception as e:
            raise LinkError("serial write failed: %s" % e) from None

    def recv(self):
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            try:
                d = self.ser.read(max(1, self.ser.in_waiting or 1))
            except Exception as e:
                raise LinkError("serial read failed: %s" % e) from None
            if d:
                return d
        raise LinkError("gate did not answer within %.0f s" % self.timeout)

    def close(self):
        if self.ser is not None:
            self.ser.close()
            self.ser = None

    def __str__(self):
        return "serial:%s" % self.port


def parse_target(target: str, timeout=30.0):
    """`tcp:HOST:PORT` or `serial:/dev/ttyUSB0[@BAUD]` -> transport."""
    kind, _, rest = target.partition(":")
    if kind == "tcp":
        host, _, port = rest.rpartition(":")
        if not port.isdigit():
            raise ValueError("bad target %r: expected tcp:HOST:PORT" % target)
        return TcpTransport(host or "127.0.0.1", int(port), timeout)
    if kind == "serial" and rest:
        dev, _, baud = rest.partition("@")
        return SerialTransport(dev, int(baud) if baud else 115200, timeout)
    raise ValueError("bad target %r: expected tcp:HOST:PORT or serial:/dev/ttyUSB0" % target)


class DropAfter:
    """Wraps a transport and cuts the link after `frames` frames have crossed it (either way):
    the test hook for "interrupted at any frame"."""

    def __init__(self, inner, frames):
        self.inner = inner
        self.limit = frames
        self.count = 0
        self._d = Deframer()

    def open(self):
        self.inner.open()

    def _tick(self, n=1):
        self.count += n
        if self.count >= self.limit:
            self.inner.close()
            raise LinkError("link dropped on purpose after %d frames" % self.count)

    def send(self, data):
        if self.count >= self.limit:
            raise LinkError("link dropped")
        self.inner.send(data)
        self._tick()

    def recv(self):
        if self.count >= self.limit:
            raise LinkError("link dropped")
        d = self.inner.recv()
        n = len(self._d.feed(d))
        if n:
            self._tick(n)
        return d

    def close(self):
        self.inner.close()

    def __str__(self):
        return str(self.inner)


# --------------------------------------------------------------------------- crypto helpers
def _sig_p1363(key: ec.EllipticCurvePrivateKey, msg: bytes) -> bytes:
    r, s = decode_dss_signature(key.sign(msg, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _verify_p1363(pub65: bytes, msg: bytes, sig: bytes) -> bool:
    if not isinstance(sig, bytes) or len(sig) != 64:
        return False
    try:
        keys.pub_from_bytes(pub65).verify(encode_dss_signature(int.from_bytes(sig[:32], "big"),
                                                               int.from_bytes(sig[32:], "big")),
                                          msg, ec.ECDSA(hashes.SHA256()))
        return True
    except (InvalidSignature, ValueError):
        return False


def hkdf_sha256(ikm, salt, info, n):
    return HKDF(algorithm=hashes.SHA256(), length=n, salt=salt, info=info).derive(ikm)


def _nonce(direction, ctr):
    """13-byte CCM nonce of a secured frame: direction (1 host->gate, 2 gate->host) | 8 zero | ctr."""
    return bytes([direction]) + bytes(8) + ctr


# --------------------------------------------------------------------------- client
class SyncClient:
    def __init__(self, transport, operator_key, operator_cred: bytes):
        self.t = transport
        self.op_key = operator_key
        self.op_cred = bytes(operator_cred)
        self.deframer = Deframer()
        self.pending = []
        self.k_hg = self.k_gh = None
        self.tx = self.rx = 0
        self.gate_id = None
        self.device_pub = None
        self.scope = None
        self.firmware = None

    def __enter__(self):
        self.t.open()
        return self

    def __exit__(self, *exc):
        self.t.close()

    # raw frames
    def _send(self, ftype, payload):
        self.t.send(encode_frame(ftype, payload))

    def _recv(self):
        while not self.pending:
            self.pending.extend(self.deframer.feed(self.t.recv()))
        return self.pending.pop(0)

    def _expect(self, want):
        ftype, payload = self._recv()
        if ftype == ERROR:
            try:
                msg = cbor2.loads(payload).get(1, "?")
            except Exception:
                msg = payload[:80]
            raise GateRefused("gate refused: %s" % msg)
        if ftype != want:
            raise SyncError("expected frame type 0x%02x, got 0x%02x" % (want, ftype))
        return payload

    def handshake(self, expected_device_pub=None, check_gate=None, busy_retries=5):
        """Mutual authentication (docs/protocol.md §9). Returns the CHALLENGE fields (gate id,
        device key, firmware) and the scope. `check_gate(gate_id, device_pub)` runs before the
        operator credential is sent (sealed to that device key): it raises to refuse a gate that
        is not enrolled with that key, which then learns nothing. A gate that answers "busy"
        (its handshake rate limit) is asked again after a second, up to busy_retries times."""
        for attempt in range(busy_retries + 1):
            try:
                return self._handshake(expected_device_pub, check_gate)
            except GateRefused as e:
                if "busy" not in str(e) or attempt == busy_retries:
                    raise
                time.sleep(1.05)

    def _handshake(self, expected_device_pub, check_gate):
        eph = ec.generate_private_key(ec.SECP256R1())
        eph_pub = keys.pub_bytes(eph)
        nonce_h = os.urandom(NONCE_LEN)
        self.k_hg = self.k_gh = None
        self._send(HELLO, cbor2.dumps({1: nonce_h, 2: eph_pub}))
        ch = cbor2.loads(self._expect(CHALLENGE))
        gid, nonce_g, dpub = ch.get(1), ch.get(2), ch.get(3)
        if not isinstance(gid, int) or not isinstance(nonce_g, bytes) or len(nonce_g) != NONCE_LEN \
                or not isinstance(dpub, bytes) or len(dpub) != 65:
            raise SyncError("malformed CHALLENGE")
        try:
            gate_key = keys.pub_from_bytes(dpub)  # validated on the curve before any use
        except ValueError:
            raise SyncError("gate %d: device key is not a point on P-256" % gid) from None
        if expected_device_pub is not None and bytes(expected_device_pub) != dpub:
            raise SyncError("gate %d presented a device key that is not the enrolled one" % gid)
        if check_gate is not None:
            check_gate(gid, dpub)
        z = eph.exchange(ec.ECDH(), gate_key)
        salt = nonce_h + nonce_g
        tr0 = nonce_h + nonce_g + eph_pub + struct.pack(">I", gid) + dpub
        k_hs = hkdf_sha256(z, salt, PROTO + b"/hs" + hashlib.sha256(tr0).digest(), 32)
        msg = PROTO + b"/host" + tr0 + hashlib.sha256(self.op_cred).digest()
        sig_h = _sig_p1363(self.op_key, msg)
        box = AESCCM(k_hs, tag_length=MAC_LEN).encrypt(bytes(13), cbor2.dumps({1: self.op_cred, 2: sig_h}), tr0)
        self._send(AUTH, cbor2.dumps({1: box}))
        k = hkdf_sha256(z, salt, PROTO + b"/keys" + hashlib.sha256(msg + sig_h).digest(), 64)
        self.k_hg, self.k_gh = k[:32], k[32:]
        self.tx = self.rx = 0
        # AUTH_OK opens only with keys from Z: proof that the gate holds its device key
        ok = self._open_secured(AUTH_OK, self._expect(AUTH_OK))
        self.gate_id, self.device_pub, self.firmware = gid, dpub, ch.get(5)
        self.scope = ok.get("scope")
        return {"gate_id": gid, "device_pub": dpub, "firmware": ch.get(5), "scope": self.scope}

    def _seal(self, ftype, body: dict) -> bytes:
        self.tx += 1
        b = cbor2.dumps(body)
        ctr = struct.pack(">I", self.tx)
        n = 4 + len(b) + MAC_LEN
        return encode_frame(ftype, ctr + AESCCM(self.k_hg, tag_length=MAC_LEN).encrypt(
            _nonce(1, ctr), b, frame_header(ftype, n) + ctr))

    def _open_secured(self, ftype, payload):
        n = len(payload)
        if n < 4 + MAC_LEN:
            raise SyncError("secured frame too short")
        ctr = payload[:4]
        if struct.unpack(">I", ctr)[0] != self.rx + 1:
            raise SyncError("gate frame counter out of order (replay?)")
        try:
            body = AESCCM(self.k_gh, tag_length=MAC_LEN).decrypt(_nonce(2, ctr), payload[4:],
                                                                  frame_header(ftype, n) + ctr)
        except InvalidTag:
            raise SyncError("gate frame does not authenticate (bad tag)") from None
        self.rx += 1
        return cbor2.loads(body)

    RETRIES = 5      # answers {"retry": true} (the gate short of heap) before giving up
    RETRY_S = 0.2

    def request(self, op, **fields):
        """One command. Returns the response map; raises GateRefused if the gate says ok=False."""
        if self.k_hg is None:
            raise SyncError("not authenticated")
        fields["op"] = op
        for attempt in range(self.RETRIES + 1):
            self.t.send(self._seal(REQUEST, fields))
            r = self._open_secured(RESPONSE, self._expect(RESPONSE))
            if r.get("ok") or not r.get("retry") or attempt == self.RETRIES:
                break
            # the gate was short of heap for this command (a scan's allocations, fragmentation)
            # and did not carry it out: it has collected; ask again
            time.sleep(self.RETRY_S)
        if not r.get("ok"):
            raise GateRefused("%s: %s" % (op, r.get("err", "refused")))
        return r

    # convenience commands
    def push_deny(self, data: bytes):
        self.request("deny_begin", size=len(data), sha256=hashlib.sha256(data).digest())
        for off in range(0, len(data), DENY_CHUNK):
            self.request("deny_chunk", off=off, data=data[off:off + DENY_CHUNK])
        return self.request("deny_commit")

    def push_tables(self, data: bytes):
        """The issuer keys' comb tables file (issuer_tables.bin): in chunks, then checked row by row
        against the trusted keys on the gate and attached."""
        self.request("tables_begin", size=len(data), sha256=hashlib.sha256(data).digest())
        for off in range(0, len(data), TABLES_CHUNK):
            self.request("tables_chunk", off=off, data=data[off:off + TABLES_CHUNK])
        return self.request("tables_commit")

    def push_trust(self, signed: bytes):
        return self.request("trust", signed=signed)

    def set_time(self, root_sign, now=None, check=None, force=False):
        """root_sign(payload bytes) -> COSE_Sign1 by the root key. `check(t) -> t` vets the host's
        time before it is signed (BackOffice.signing_time); it raises to refuse. The gate refuses
        a time below its floor (the last time it knew) or outside 2025..2100 unless `force` (key 4)
        is signed in."""
        n = self.request("time_nonce")
        t = int(time.time()) if now is None else int(now)
        if check is not None:
            t = check(t)
        body = {0: "time", 1: self.gate_id, 2: n["nonce"], 3: t}
        if force:
            body[4] = True
        signed = root_sign(cbor2.dumps(body))
        return self.request("set_time", signed=signed)


def signed_trust(bo, now=None) -> bytes:
    """The back office's trust store (serial and issue time inside it), signed by its root key as
    {0: "trust", 1: serial, 2: trust.cbor}. The serial grows with every change of the issuer keys."""
    serial = bo.trust_serial()
    return bo.root_sign(cbor2.dumps({0: "trust", 1: serial, 2: bo.trust_bytes(now)})), serial


from .device.gatefiles import BATCH_PUB, DEVICE_KEY, ROOT_PUB  # noqa: E402  (the one table of gate files)


def _device_key_file(d: int) -> bytes:
    """The gate's key file layout (firmware/offgate/crypto/devicekey.py): b"OGK1" | d (32, BE) | CRC-32."""
    b = b"OGK1" + d.to_bytes(32, "big")
    return b + struct.pack(">I", zlib.crc32(b) & 0xFFFFFFFF)


def device_pub_of_dir(path) -> bytes:
    """The public key of the device key file in a (simulated) gate's state directory."""
    from pathlib import Path
    raw = (Path(path) / DEVICE_KEY).read_bytes()
    if len(raw) != 40 or raw[:4] != b"OGK1" or struct.unpack(">I", raw[36:])[0] != zlib.crc32(raw[:36]) & 0xFFFFFFFF:
        raise ValueError("device key file in %s is corrupt" % path)
    return keys.pub_bytes(ec.derive_private_key(int.from_bytes(raw[4:36], "big"), ec.SECP256R1()))


def provision_gate_dir(path, bo, gate_id=None, replace=False):
    """Give a gate directory what the sync link needs from the back office: the root public key
    (root.pub, verifies trust lists and time) and the batch key (batch.pub, summaries are encrypted
    to it). Both are public.

    With `gate_id` this is provisioning of a simulated gate: its device key is made now in the
    gate's state directory (the simulator's flash; on a device `offgate provision` makes it on the
    gate) unless one is there, and registered under that gate id in the back office, which is what
    the ledger enrols the gate with at its first sync. Returns the directory."""
    from pathlib import Path
    p = Path(path)
    if not p.is_dir():  # a typo must not become a new directory
        raise SyncError("%s is not a gate directory (`offgate gate init` makes one)" % p)
    (p / ROOT_PUB).write_bytes(bo.root_pub())
    (p / BATCH_PUB).write_bytes(keys.pub_bytes(bo.batch_key()))
    if gate_id is not None:
        if not (p / DEVICE_KEY).exists():
            d = ec.generate_private_key(ec.SECP256R1()).private_numbers().private_value
            tmp = p / (DEVICE_KEY + ".tmp")
            tmp.write_bytes(_device_key_file(d))
            os.replace(tmp, p / DEVICE_KEY)
        bo.register_gate(gate_id, device_pub_of_dir(p), "sim", replace=replace)
    return p


# --------------------------------------------------------------------------- a whole sync
def _normalize_batch(opened, gate_id):
    """The dict batchcrypto.open_batch returns -> (gate id, meta, records). Rows are
    [seq, t, cti, ctr, open, reason, missed]; each record's chain is recomputed from the batch's
    `prev` (the chain before its first record), and meta["chain_ok"] says whether the last one
    equals the batch's `chain` (the gate's own head after the batch)."""
    from .ledger import chain_next
    rows = opened.get("recs")
    prev = opened.get("prev")
    if not isinstance(rows, list) or not isinstance(prev, bytes) or len(prev) != 32:
        raise SyncError("opened batch has no records or no chain")
    chain = prev
    out = []
    for row in rows:
        if isinstance(row, list) and len(row) == 3 and row[1] == "damaged" and isinstance(row[2], bytes):
            # a record the gate found damaged on its flash: kept with its bytes, never dropped
            raw = bytes(row[2])
            r = {"seq": int(row[0]), "damaged": raw, "chain": raw[28:60] if len(raw) == 64 else bytes(32)}
            chain = r["chain"]
            out.append(r)
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
            "not_logged": opened.get("not_logged", 0)}
    return opened.get("gate", gate_id), meta, out


LOG_WARN_PCT = 50  # unsynced share of a gate's log at which every sync warns (docs/oplog.md "When full")


def log_warning(gate_id, log):
    """A one-line warning when a gate's operation log is LOG_WARN_PCT % full or more of unsynced
    records (status "log": backlog, capacity_records, policy), else None. At 100 % a gate with
    policy "refuse" refuses every rider (LOG_FULL) until a sync frees records."""
    cap = log.get("capacity_records") or 0
    backlog = log.get("backlog") or 0
    if not cap or backlog * 100 < LOG_WARN_PCT * cap:
        return None
    when_full = ("refuses every rider (LOG_FULL)" if log.get("policy", "refuse") == "refuse"
                 else "opens without logging (counted as not_logged)")
    return ("gate %d: operation log %d%% full (%d of %d records unsynced); when full it %s until a sync: "
            "sync it more often or give it a larger log" % (gate_id, backlog * 100 // cap, backlog, cap, when_full))


def sync_gate(transport, bo, ledger, *, operator="operator", push=True, set_time=True, max_records=200,
              progress=None, now=None, open_batch=None, force_time=False):
    """One full sync with one gate. Returns a summary dict. Raises LinkError on a broken link
    (everything committed before the break stays committed; the next sync resumes)."""
    if open_batch is None:
        from .batchcrypto import open_batch
    op_key, op_cred = bo.operator_identity(operator, now=now)
    summary = {"target": str(transport), "pulled": 0, "new": 0, "duplicates": 0, "batches": 0,
               "anomalies": 0, "fraud": 0, "warnings": []}
    from .ledger import LedgerError
    registered = {g["gate_id"]: g["pub"] for g in bo.gates()}

    def check_gate(gid, dpub):
        # the ledger believes only gates enrolled with this device key (provisioning or an explicit
        # operator command); anything else is refused before this side authenticates
        try:
            ledger.check_gate(gid, dpub, registered, now=now)
        except LedgerError as e:
            raise GateNotEnrolled(str(e)) from None

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
        w = log_warning(gid, log)
        if w:
            summary["warnings"].append(w)
        if progress:
            progress(gid, 0, log.get("backlog", 0))
        bkey = bo.batch_key()
        while True:
            r = c.request("pull", max=max_records)
            if r.get("fit") is not None:  # the gate sized the batch to its free heap (firmware >= issue 12)
                summary.setdefault("batch_sizes", []).append(r.get("sent"))
                summary["gate_heap_free"] = r.get("free")
            opened = open_batch(r["batch"], bkey, c.device_pub)
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
                bo.deny(cti)
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
        if push:
            # lists go only forward: pushed when the back office's is newer than the gate's
            deny = bo.deny_bytes()
            gate_deny = (st.get("deny") or {}).get("serial", 0)
            if bo.deny_serial() > gate_deny:
                d = c.push_deny(deny)
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
                from .device.tables import issuer_tables_from_trust
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


def sync_with_retries(make_transport, bo, ledger, retries=3, delay=0.5, **kw):
    """sync_gate, retried on link errors (each retry is a fresh session with fresh challenges)."""
    last = None
    for attempt in range(retries + 1):
        try:
            s = sync_gate(make_transport(), bo, ledger, **kw)
            s["attempts"] = attempt + 1
            return s
        except LinkError as e:
            last = e
            time.sleep(delay)
    raise last
