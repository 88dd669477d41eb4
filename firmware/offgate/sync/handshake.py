"""The sync link's handshake (docs/protocol.md "Sync protocol"; the message flow is in
session.py): the gate's challenge, the sealed operator credential and its check, the session
keys. The gate signs nothing here; the expensive step (AUTH) is rate-limited.
Loaded for the handshake only and dropped once the session is open (session.Session.handle).
"""
import offgate
from offgate.codec import cbor, cose
from offgate.crypto import ecdsa
from offgate.policy.credential import CredentialError, rider_key
from offgate.sync import frames
from offgate.sync.proto import (NONCE_LEN, PROTO, ROLE_CLAIM, ROLE_OPERATOR, Refused, SyncError, collect,
                                hkdf_sha256, sha256, u32, uint, urandom)


# -- operator credential -----------------------------------------------------------
ROOT = "root"

def check_operator(port, cred, now):
    """Verify an operator credential against the back office's root key (root.pub) or, failing
    that, the gate's trusted issuer keys. Returns (operator PublicKey, name, scope): scope "full"
    when the credential (and an issuer key that signed it) are valid at the gate's clock, "clock" when only the time windows fail (a gate whose clock is
    wrong can still be given signed time). Raises SyncError otherwise."""
    try:
        s = cose.sign1_parse(cred)
        cose.check_alg(s)
    except ValueError as e:
        raise SyncError("operator credential malformed: %s" % e)
    kid = s.kid
    verified = None
    # The root key first: an operator credential it signs is checkable whatever state the issuer
    # trust store is in (a missed rotation, a damaged trust.cbor), so a gate can always be synced
    # back. It opens nothing more than an issuer-signed one would.
    root = port.root_pub()
    if root is not None and kid == sha256(root)[:4]:
        if cose.verify_parsed(s, ecdsa.parse_public_key(root)):
            verified = ROOT
    if verified is None:
        for k in port.trust_keys():
            if k.kid == kid and cose.verify_parsed(s, k.key):
                verified = k
                break
    if verified is None:
        raise SyncError("operator credential not signed by the root key or a trusted issuer")
    try:
        claims = cbor.loads(s.payload)
    except ValueError as e:
        raise SyncError("operator claims: %s" % e)
    if not isinstance(claims, dict) or claims.get(ROLE_CLAIM) != ROLE_OPERATOR:
        raise SyncError("credential has no operator role")
    nbf, exp, name, cti = claims.get(5), claims.get(4), claims.get(2, ""), claims.get(7)
    if not uint(nbf) or not uint(exp) or not isinstance(name, str):
        raise SyncError("operator credential: bad nbf/exp/sub")
    if not isinstance(cti, bytes) or len(cti) != 8:
        raise SyncError("operator credential: cti must be 8 bytes")
    if port.is_denied(cti):
        # revoked operators are on the same deny list as riders: refused in every scope
        raise SyncError("operator credential revoked")
    try:
        key = rider_key(claims.get(8))
    except CredentialError as e:
        raise SyncError("operator credential: %s" % e)
    key_ok = verified is ROOT or verified.active(now)
    scope = "full" if (key_ok and nbf <= now < exp) else "clock"
    return key, name, scope


# -- handshake ---------------------------------------------------------------------
# Rate limit for the expensive step (AUTH: one ECDH, then up to two verifications): a token bucket
# kept on the gate port, which outlives sessions and the sync modules (they are unloaded).
HS_BURST = 6
HS_REFILL_MS = 1000


def _ms():
    import time
    try:
        return time.ticks_ms()
    except AttributeError:
        return int(time.monotonic() * 1000)


def _hs_allowed(port):
    import time
    b = port.hs_bucket
    now = _ms()
    if not b:
        b.append(HS_BURST)
        b.append(now)
    try:
        el = time.ticks_diff(now, b[1])
    except AttributeError:
        el = now - b[1]
    if el >= HS_REFILL_MS:
        b[0] = min(HS_BURST, b[0] + el // HS_REFILL_MS)
        b[1] = now
    if b[0] <= 0:
        return False
    b[0] -= 1
    return True


class Handshake:
    """One handshake on a gate port (offgate.gateport.GatePort): hello() answers HELLO with a
    CHALLENGE, auth() checks AUTH and returns the session keys. Both raise SyncError (Refused for
    what may be an attack); the session answers that with ERROR."""

    def __init__(self, port):
        self.port = port
        self.nonce_h = self.eph = self.nonce_g = self.dpub = None

    def _transcript(self, cred_digest):
        """nonce_h | nonce_g | eph_h | gate_id (4, BE) | device key | SHA-256(operator credential)."""
        return self.nonce_h + self.nonce_g + self.eph + u32(self.port.gate_id) + self.dpub + cred_digest

    def hello(self, payload):
        """HELLO {1: nonce_h, 2: eph_h}: no credential in the clear, and no crypto on the gate beyond
        checking that eph_h is a point on P-256. Returns the CHALLENGE frame {1: gate_id, 2: nonce_g,
        3: device key, 5: firmware}."""
        try:
            m = cbor.loads(payload, max_len=frames.MAX_PAYLOAD)
        except ValueError:
            raise SyncError("HELLO is not CBOR")
        if not isinstance(m, dict):
            raise SyncError("HELLO must be a map")
        nonce_h, eph = m.get(1), m.get(2)
        if not isinstance(nonce_h, bytes) or len(nonce_h) != NONCE_LEN:
            raise SyncError("HELLO: nonce must be %d bytes" % NONCE_LEN)
        if not isinstance(eph, bytes) or len(eph) != 65 or eph[0] != 4:
            raise SyncError("HELLO: ephemeral key must be a 65-byte uncompressed point")
        from offgate.crypto import devicekey
        try:
            devicekey.parse_point(eph)  # on the curve, coordinates < p: validated before any use
        except ValueError:
            raise Refused("HELLO: ephemeral key is not a point on P-256")
        # the public key costs a scalar multiplication to derive: made once, kept by the port (it
        # outlives sessions), so a HELLO costs no public-key operation
        try:
            dpub = self.port.device_pub()
        except MemoryError:
            raise
        except Exception as e:
            raise SyncError("device key unavailable: %s" % e)
        self.nonce_h, self.eph = nonce_h, eph
        self.nonce_g = urandom(NONCE_LEN)
        self.dpub = dpub
        return frames.encode(frames.CHALLENGE, cbor.dumps({1: self.port.gate_id, 2: self.nonce_g, 3: dpub,
                                                            5: offgate.VERSION}))

    def auth(self, payload):
        """AUTH {1: AES-CCM(k_hs, nonce 0, {1: operator credential, 2: sig_h}, aad = transcript)}:
        Z = ECDH(device key, eph_h) (rate-limited), the operator credential (issuer, role, revocation,
        validity) and sig_h (the operator's key over "OGSYNC2/host" | transcript) are checked, and only
        then are the session keys made. Returns (k_hg, k_gh, scope, operator name); the session's
        sealed AUTH_OK then proves the gate holds the device key (only it and the host know Z).
        Nothing is signed for an unauthenticated peer."""
        port = self.port
        if not _hs_allowed(port):
            raise Refused("busy: too many handshakes, retry in a second")
        try:
            m = cbor.loads(payload)
        except ValueError:
            raise SyncError("AUTH is not CBOR")
        box = m.get(1) if isinstance(m, dict) else None
        if not isinstance(box, bytes):
            raise SyncError("AUTH: sealed credential missing")
        try:
            z = port.device_key().ecdh(self.eph)
        except MemoryError:
            raise
        except Exception:
            raise SyncError("bad ephemeral key")
        from offgate.crypto import aesccm  # after the ECDH: its working set had that heap too
        salt = self.nonce_h + self.nonce_g
        tr0 = self._transcript(b"")
        k_hs = hkdf_sha256(z, salt, PROTO + b"/hs" + sha256(tr0), 32)
        try:
            inner = cbor.loads(aesccm.decrypt(k_hs, bytes(13), box, tr0))
        except ValueError:
            raise Refused("AUTH does not decrypt")
        cred = inner.get(1) if isinstance(inner, dict) else None
        sig = inner.get(2) if isinstance(inner, dict) else None
        if not isinstance(cred, bytes) or not isinstance(sig, bytes):
            raise SyncError("AUTH: credential or signature missing")
        inner = box = None
        try:
            op_key, name, scope = check_operator(port, cred, port.clock.now())
        except SyncError as e:
            raise Refused(str(e))
        msg = PROTO + b"/host" + self._transcript(sha256(cred))
        if not ecdsa.verify_key(op_key, msg, sig):
            raise Refused("operator signature does not verify")
        keys = hkdf_sha256(z, salt, PROTO + b"/keys" + sha256(msg + sig), 64)
        return keys[:32], keys[32:], scope, name
