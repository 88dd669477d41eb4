"""The sync link's handshake (docs/protocol.md "Sync protocol"; the message flow is in
syncserver.py): operator credential check, the gate's challenge and signature, the session keys.
Loaded for the handshake only and dropped once the session is open (heap: see sim/streams.py).
"""
import offgate
from offgate import cbor, ecdsa, frames
from offgate.credential import CredentialError, rider_key
from offgate import cose
from offgate.syncserver import (CHALLENGED, IDLE, NONCE_LEN, OPEN, PROTO, ROLE_CLAIM, ROLE_OPERATOR, SyncError,
                                _collect, _sha256, _u32, _uint, hkdf_sha256, urandom)


# -- operator credential -----------------------------------------------------------
def check_operator(srv, cred, now):
    """Verify an operator credential against the gate's trusted issuer keys.
    Returns (operator PublicKey, name, scope): scope "full" when the credential and its issuer key
    are valid at the gate's clock, "clock" when only the time windows fail (a gate whose clock is
    wrong can still be given signed time). Raises SyncError otherwise."""
    try:
        s = cose.sign1_parse(cred)
        cose.check_alg(s)
    except ValueError as e:
        raise SyncError("operator credential malformed: %s" % e)
    kid = s.kid
    verified = None
    for k in srv.gate.verifier.trust.keys:
        if k.kid == kid and cose.verify_parsed(s, k.key):
            verified = k
            break
    if verified is None:
        raise SyncError("operator credential not signed by a trusted issuer")
    try:
        claims = cbor.loads(s.payload)
    except ValueError as e:
        raise SyncError("operator claims: %s" % e)
    if not isinstance(claims, dict) or claims.get(ROLE_CLAIM) != ROLE_OPERATOR:
        raise SyncError("credential has no operator role")
    nbf, exp, name, cti = claims.get(5), claims.get(4), claims.get(2, ""), claims.get(7)
    if not _uint(nbf) or not _uint(exp) or not isinstance(name, str):
        raise SyncError("operator credential: bad nbf/exp/sub")
    if not isinstance(cti, bytes) or len(cti) != 8:
        raise SyncError("operator credential: cti must be 8 bytes")
    if srv.gate.verifier.deny.contains(cti):
        # revoked operators are on the same deny list as riders: refused in every scope
        raise SyncError("operator credential revoked")
    try:
        key = rider_key(claims.get(8))
    except CredentialError as e:
        raise SyncError("operator credential: %s" % e)
    scope = "full" if (verified.active(now) and nbf <= now < exp) else "clock"
    return key, name, scope


# -- handshake ---------------------------------------------------------------------
def hello(self, payload):
    self.state = IDLE
    try:
        m = cbor.loads(payload, max_len=frames.MAX_PAYLOAD)
    except ValueError:
        return self._error("HELLO is not CBOR")
    if not isinstance(m, dict):
        return self._error("HELLO must be a map")
    nonce_h, eph, cred = m.get(1), m.get(2), m.get(3)
    if not isinstance(nonce_h, bytes) or len(nonce_h) != NONCE_LEN:
        return self._error("HELLO: nonce must be %d bytes" % NONCE_LEN)
    if not isinstance(eph, bytes) or len(eph) != 65 or eph[0] != 4:
        return self._error("HELLO: ephemeral key must be a 65-byte uncompressed point")
    if not isinstance(cred, bytes):
        return self._error("HELLO: operator credential missing")
    srv = self.srv
    m = None
    _collect()
    try:
        op_key, name, scope = check_operator(srv, cred, self.gate.clock.now())
    except SyncError as e:
        srv.refused += 1
        return self._error(str(e))
    self.nonce_h, self.eph, self.op_key, self.op_name, self.scope = nonce_h, eph, op_key, name, scope
    self.nonce_g = urandom(NONCE_LEN)
    _collect()
    try:
        dkey = srv.device_key
    except Exception as e:
        return self._error("device key unavailable: %s" % e)
    dpub = dkey.public_bytes()
    gid = self.gate.cfg["gate_id"]
    self.tr = nonce_h + self.nonce_g + eph + _sha256(cred) + _u32(gid) + dpub
    self.sig_g = dkey.sign(PROTO + b"/gate" + self.tr)
    self.state = CHALLENGED
    import offgate
    return frames.encode(frames.CHALLENGE, cbor.dumps({1: gid, 2: self.nonce_g, 3: dpub, 4: self.sig_g,
                                                       5: offgate.VERSION}))

def auth(self, payload):
    from offgate import ecdsa
    self.state = IDLE
    try:
        m = cbor.loads(payload)
    except ValueError:
        return self._error("AUTH is not CBOR")
    sig = m.get(1) if isinstance(m, dict) else None
    msg = PROTO + b"/host" + self.tr + self.sig_g
    if not isinstance(sig, bytes) or not ecdsa.verify_key(self.op_key, msg, sig):
        self.srv.refused += 1
        return self._error("operator signature does not verify")
    _collect()
    try:
        z = self.srv.device_key.ecdh(self.eph)
    except Exception:
        return self._error("bad ephemeral key")
    keys = hkdf_sha256(z, self.nonce_h + self.nonce_g, PROTO + b"/keys" + _sha256(msg + sig), 64)
    self.k_hg, self.k_gh = keys[:32], keys[32:]
    self.rx = self.tx = 0
    self.state = OPEN
    self.srv.note("session open (operator %s, scope %s)" % (self.op_name, self.scope))
    return self._seal(frames.AUTH_OK, {"scope": self.scope, "gate_id": self.gate.cfg["gate_id"]})
