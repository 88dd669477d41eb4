"""Open a gate's sealed batch summary on the host: an independent implementation (pyca/cryptography
and cbor2) of the construction in docs/protocol.md "Batch summaries"; the firmware side is
firmware/offgate/sync/batch.py.

    open_batch(sealed, backoffice_priv, gate_pub65, session=None) -> dict

backoffice_priv: an EllipticCurvePrivateKey, or the 32-byte private scalar. Raises BatchError
for anything that is not a well-formed batch sealed to this back office and signed by this gate.
`session`: a dict the caller keeps for one sync session. A seal under a session key whose
signature covers that key (external_aad = E) binds it to the gate there; later seals under the same
key may then carry the bare plaintext (docs/protocol.md "One signature per session"), which is
accepted only with the session dict that saw the binding, at a seal index above the last one.
session["signed"] says whether the last batch opened was signed.
"""
import hashlib
import io

import cbor2
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESCCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from ..errors import OffgateError

INFO = b"offgate batch v1"
SEAL_INDEX = -65537  # protected header: the seal's number under a per-session ephemeral key
ALG_ES256 = -7
ALG_CCM_16_128_256 = 31


class BatchError(OffgateError, ValueError):
    pass


def gate_kid(pub65):
    return hashlib.sha256(pub65).digest()[:8]


def _loads(data, what):
    """Exactly one CBOR item (trailing bytes refused)."""
    fp = io.BytesIO(data)
    try:
        obj = cbor2.CBORDecoder(fp).decode()
    except Exception as e:
        raise BatchError("%s: bad CBOR (%s)" % (what, e))
    if fp.read(1):
        raise BatchError("%s: trailing bytes" % what)
    return obj


def _cose(data, tag, n, what):
    obj = _loads(data, what)
    if not isinstance(obj, cbor2.CBORTag) or obj.tag != tag:
        raise BatchError("%s: not tag %d" % (what, tag))
    v = obj.value
    if not isinstance(v, list) or len(v) != n or not isinstance(v[0], bytes) or not isinstance(v[1], dict):
        raise BatchError("%s: bad structure" % what)
    hdr = _loads(v[0], what + " protected header")
    if not isinstance(hdr, dict):
        raise BatchError("%s: protected header is not a map" % what)
    return v, hdr


def _priv(k):
    if isinstance(k, ec.EllipticCurvePrivateKey):
        return k
    if isinstance(k, (bytes, bytearray)):
        k = int.from_bytes(k, "big")
    return ec.derive_private_key(k, ec.SECP256R1())


def derive(z, eph_pub, bo_pub, gate_pub):
    okm = HKDF(algorithm=hashes.SHA256(), length=45, salt=None,
               info=INFO + eph_pub + bo_pub + gate_pub).derive(z)
    return okm[:32], okm[32:]


def open_batch(sealed, backoffice_priv, gate_pub65, session=None):
    gate_pub65 = bytes(gate_pub65)
    try:
        gate_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), gate_pub65)
    except ValueError as e:
        raise BatchError("bad gate public key: %s" % e)
    bo = _priv(backoffice_priv)
    bo_pub = bo.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    kid = gate_kid(gate_pub65)

    # outer: COSE_Encrypt0-style envelope
    (prot, _unprot, ct), hdr = _cose(sealed, 16, 3, "envelope")
    if hdr.get(1) != ALG_CCM_16_128_256:
        raise BatchError("envelope: alg is not AES-CCM-16-128/256")
    if hdr.get(4) != kid:
        raise BatchError("envelope: sealed by another gate")
    ck = hdr.get(-1)
    if not isinstance(ct, bytes) or not isinstance(ck, dict) or ck.get(1) != 2 or ck.get(-1) != 1:
        raise BatchError("envelope: bad ephemeral key")
    x, y = ck.get(-2), ck.get(-3)
    if not (isinstance(x, bytes) and isinstance(y, bytes) and len(x) == 32 and len(y) == 32):
        raise BatchError("envelope: bad ephemeral key")
    eph_pub = b"\x04" + x + y
    try:
        eph = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), eph_pub)  # on-curve check
    except ValueError as e:
        raise BatchError("envelope: ephemeral key not on P-256 (%s)" % e)
    z = bo.exchange(ec.ECDH(), eph)
    idx = hdr.get(SEAL_INDEX)
    if idx is None:  # one ephemeral key for this seal alone
        key, nonce = derive(z, eph_pub, bo_pub, gate_pub65)
    elif isinstance(idx, int) and not isinstance(idx, bool) and 1 <= idx < 1 << 32:
        key, nonce = derive(z, eph_pub, bo_pub, gate_pub65 + idx.to_bytes(4, "big"))
    else:
        raise BatchError("envelope: bad seal index")
    aad = cbor2.dumps(["Encrypt0", prot, b""])
    try:
        signed = AESCCM(key, tag_length=16).decrypt(nonce, ct, aad)
    except InvalidTag:
        raise BatchError("envelope: authentication failed (tampered, or not for this back office)")

    # inner: COSE_Sign1 by the gate's device key, or (a session already bound) the bare plaintext
    if session is not None:
        if idx is not None and idx <= session.get("idx", 0) and session.get("eph") == eph_pub:
            raise BatchError("envelope: seal index %d not above the session's last (%d)" % (idx, session["idx"]))
    if signed[:1] != b"\xd2":
        if session is None or idx is None or session.get("bound") != eph_pub:
            raise BatchError("signature: an unsigned batch outside a session bound by the gate's signature")
        plain = _loads(signed, "batch")
        session.update(idx=idx, eph=eph_pub, signed=False)
    else:
        (sprot, _sunprot, payload, sig), shdr = _cose(signed, 18, 4, "signature")
        if shdr.get(1) != ALG_ES256 or shdr.get(4) != kid:
            raise BatchError("signature: not ES256 by this gate")
        if not isinstance(payload, bytes) or not isinstance(sig, bytes) or len(sig) != 64:
            raise BatchError("signature: bad structure")
        der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
        bound = False
        # under a session key the signature covers E (external_aad): it binds the key to this gate;
        # firmware before that signed with an empty external_aad (accepted, binds nothing)
        for aad in ((eph_pub, b"") if idx is not None else (b"",)):
            try:
                gate_key.verify(der, cbor2.dumps(["Signature1", sprot, aad, payload]), ec.ECDSA(hashes.SHA256()))
                bound = bool(aad)
                break
            except InvalidSignature:
                continue
        else:
            raise BatchError("signature: does not verify with the gate's key")
        plain = _loads(payload, "batch")
        if session is not None:
            if bound:
                session["bound"] = eph_pub
            if idx is not None:
                session.update(idx=idx, eph=eph_pub)
            session["signed"] = True
    if not isinstance(plain, dict) or plain.get("v") != 1:
        raise BatchError("batch: not a version 1 batch summary")
    return plain
