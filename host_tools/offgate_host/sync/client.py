"""The host side of the sync link (docs/protocol.md "Sync protocol"): the handshake, the secured
session and its requests.

    transport = TcpTransport("127.0.0.1", 7001)      # or SerialTransport("/dev/ttyUSB0")
    with SyncClient(transport, operator_key, operator_cred) as c:
        c.handshake(expected_device_pub=...)
        c.request("status")

A whole sync with the ledger (pull, ingest, acknowledge, push) is offgate_host.ledger.pull.
"""
import hashlib
import os
import struct
import time

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESCCM

from ..wire import keys
from .frames import (AUTH, AUTH_OK, CHALLENGE, DENY_CHUNK, ERROR, HELLO, MAC_LEN, NONCE_LEN, PROTO, REQUEST, RESPONSE,
                     TABLES_CHUNK, Deframer, GateRefused, GateShortOfHeap, NoAnswer, NotAGate, ReplyTimeout, SyncError, encode_frame,
                     frame_header)

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
        self.heard = 0            # bytes received from the target
        self.got_frame = False    # a well-formed frame arrived (the target speaks the sync protocol)
        self.first_bytes = bytearray()  # the start of what came before the first frame, for the error

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
            try:
                data = self.t.recv()
            except ReplyTimeout as e:
                if not self.heard:
                    raise NoAnswer("no answer from %s: %s" % (self.t, e)) from None
                raise
            if not self.got_frame:
                self._check_first_reply(data)
            self.heard += len(data)
            self.pending.extend(self.deframer.feed(data))
            if not self.got_frame and not self.pending and b"OG1:" in bytes(self.first_bytes):
                raise NotAGate("%s sent a scanner's output (an OG1: code), not a gate's sync frame: not a gate, "
                               "or not its sync port" % self.t)
            if not self.got_frame and not self.pending \
                    and self.deframer.skipped > getattr(self.t, "noise_allowance", 0):
                raise NotAGate("%s answered with something that is not a gate's sync frame (%d byte(s), "
                               "starting %r): not a gate, or not its sync port"
                               % (self.t, self.deframer.skipped, bytes(self.first_bytes[:24])))
        self.got_frame = True
        return self.pending.pop(0)

    def _check_first_reply(self, data):
        # our HELLO coming back: an echoing line (a pty, a serial loopback), never a gate
        if len(self.first_bytes) < 64:
            self.first_bytes += data[:64 - len(self.first_bytes)]
        if frame_header(HELLO, 0)[:6] in bytes(self.deframer.buf) + data:
            raise NotAGate("%s sent back the HELLO it was sent (an echoing serial line or pty): not a gate, "
                           "or not its sync port" % self.t)

    def _expect(self, want):
        ftype, payload = self._recv()
        if ftype == ERROR:
            try:
                msg = cbor2.loads(payload).get(1, "?")
            except Exception:
                msg = payload[:80]
            # the gate's ERROR frames for a heap it could not even answer in (docs/protocol.md "Heap")
            short = isinstance(msg, str) and ("out of memory" in msg or "low on heap" in msg)
            raise (GateShortOfHeap if short else GateRefused)("gate refused: %s" % msg)
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

    def _ask(self, op, fields):
        """One request, one answer (the response map, whatever it says)."""
        if self.k_hg is None:
            raise SyncError("not authenticated")
        fields["op"] = op
        self.t.send(self._seal(REQUEST, fields))
        return self._open_secured(RESPONSE, self._expect(RESPONSE))

    def request(self, op, **fields):
        """One command. Returns the response map; raises GateRefused if the gate says ok=False.
        A {"retry": true} answer (docs/protocol.md "Heap") is repeated up to RETRIES times."""
        for attempt in range(self.RETRIES + 1):
            r = self._ask(op, fields)
            if r.get("ok") or not r.get("retry") or attempt == self.RETRIES:
                break
            # the gate was short of heap for this command (a scan's allocations, fragmentation)
            # and did not carry it out: it has collected; ask again
            time.sleep(self.RETRY_S)
        if not r.get("ok"):
            raise (GateShortOfHeap if r.get("retry") else GateRefused)("%s: %s" % (op, r.get("err", "refused")))
        return r

    MIN_CHUNK = 128  # bytes: the smallest upload chunk a gate short of heap is sent

    def _upload(self, kind, data, chunk):
        """`kind`_begin, the chunks, `kind`_commit. A chunk answered "retry" (the gate had no block
        of its size) is sent again halved, down to MIN_CHUNK, and the rest goes at that size."""
        self.request(kind + "_begin", size=len(data), sha256=hashlib.sha256(data).digest())
        off = 0
        tries = 0
        while off < len(data):
            r = self._ask(kind + "_chunk", {"off": off, "data": data[off:off + chunk]})
            if r.get("ok"):
                off = r["off"]
                tries = 0
                continue
            if not r.get("retry"):
                raise GateRefused("%s_chunk: %s" % (kind, r.get("err", "refused")))
            if tries == self.RETRIES:
                raise GateShortOfHeap("%s_chunk: %s" % (kind, r.get("err", "refused")))
            tries += 1
            chunk = max(self.MIN_CHUNK, chunk // 2)
            time.sleep(self.RETRY_S)
        return self.request(kind + "_commit")

    # convenience commands
    def push_deny(self, data: bytes):
        return self._upload("deny", data, DENY_CHUNK)

    def push_tables(self, data: bytes):
        """The issuer keys' comb tables file (issuer_tables.bin): in chunks, then checked row by row
        against the trusted keys on the gate and attached."""
        return self._upload("tables", data, TABLES_CHUNK)

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
