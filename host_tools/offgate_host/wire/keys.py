"""P-256 keys: generation, SEC1 encoding, kid derivation, PEM files."""
import hashlib
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ..atomicfile import atomic_write
from ..errors import OffgateError

KID_LEN = 4

CURVE = ec.SECP256R1()


def generate() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(CURVE)


def _public(key_or_pub):
    if isinstance(key_or_pub, ec.EllipticCurvePrivateKey):
        return key_or_pub.public_key()
    if isinstance(key_or_pub, ec.EllipticCurvePublicKey):
        return key_or_pub
    if isinstance(key_or_pub, (bytes, bytearray)):
        return pub_from_bytes(bytes(key_or_pub))
    raise TypeError("expected an EC private/public key or SEC1 bytes, got %r" % type(key_or_pub).__name__)


def pub_bytes(key_or_pub) -> bytes:
    """The 65-byte uncompressed SEC1 point (04 || x || y)."""
    return _public(key_or_pub).public_bytes(serialization.Encoding.X962,
                                            serialization.PublicFormat.UncompressedPoint)


def pub_from_bytes(data: bytes) -> ec.EllipticCurvePublicKey:
    """Public key from SEC1 bytes (65-byte uncompressed or 33-byte compressed)."""
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(CURVE, bytes(data))
    except Exception as e:
        raise ValueError("not a valid P-256 public key (%d bytes): %s" % (len(data), e)) from None


def pub_from_xy(x: bytes, y) -> ec.EllipticCurvePublicKey:
    """Public key from a COSE_Key's x and y (y = 32-byte bstr or the sign bit as bool)."""
    if len(x) != 32:
        raise ValueError("EC2 x must be 32 bytes")
    if isinstance(y, bool):
        return pub_from_bytes(bytes([0x03 if y else 0x02]) + x)
    if isinstance(y, (bytes, bytearray)) and len(y) == 32:
        return pub_from_bytes(b"\x04" + x + bytes(y))
    raise ValueError("EC2 y must be a 32-byte bstr or a bool")


def kid_of(pub65: bytes) -> bytes:
    """kid = first 4 bytes of SHA-256 of the 65-byte uncompressed public key (short to keep the QR
    small; keys that share a kid are all tried, so a collision costs a verification, not safety)."""
    if not isinstance(pub65, (bytes, bytearray)):
        pub65 = pub_bytes(pub65)
    if len(pub65) != 65 or pub65[0] != 4:
        raise ValueError("kid_of needs the 65-byte uncompressed public key")
    return hashlib.sha256(bytes(pub65)).digest()[:KID_LEN]


# Keys at rest (issue #13): PKCS#8 PEM, encrypted with a passphrase when one is configured (env
# OFFGATE_PASSPHRASE, or the CLI's prompt through set_passphrase_provider); without one, unencrypted
# as before (the demo and the tests need no prompt).
PASSPHRASE_ENV = "OFFGATE_PASSPHRASE"
_provider = None  # () -> str or None: asked when an encrypted key is read and the env var is unset


class KeyLocked(OffgateError):
    """An encrypted key and no (or a wrong) passphrase."""


def set_passphrase_provider(fn):
    """fn() -> passphrase (str) or None; the CLI installs a terminal prompt."""
    global _provider
    _provider = fn


def passphrase(required=False, path=None):
    """The configured passphrase (env first, then the provider), or None."""
    p = os.environ.get(PASSPHRASE_ENV)
    if not p and _provider is not None and required:
        p = _provider(path)
    if required and not p:
        raise KeyLocked("%s is encrypted: set %s or run the command from a terminal to be asked"
                        % (path or "the key", PASSPHRASE_ENV))
    return p or None


def private_pem(key, password=None) -> bytes:
    enc = serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)


def is_encrypted_pem(data: bytes) -> bool:
    return b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in data


def load_private_pem_bytes(data: bytes, path=None) -> ec.EllipticCurvePrivateKey:
    password = None
    if is_encrypted_pem(data):
        password = passphrase(required=True, path=path).encode()
    try:
        key = serialization.load_pem_private_key(data, password=password)
    except (ValueError, TypeError) as e:
        if password is not None:
            raise KeyLocked("%s: wrong passphrase (or a damaged key file)" % (path or "key")) from None
        raise ValueError("%s: not a PEM private key (%s)" % (path or "key", e)) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != CURVE.name:
        raise ValueError("not a P-256 private key")
    return key


def save_private_pem(path, key, password=None) -> None:
    """Write the key as PKCS#8 PEM, file mode 0600 (never briefly world-readable), encrypted with
    `password` or the configured passphrase (OFFGATE_PASSPHRASE), if any. Atomic (temp + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    explicit = password is not None  # encrypt_keys: checked against the store by its caller
    password = password or passphrase()
    locked = None if explicit else encrypted_key_in(path.parent)
    if locked is not None:
        # the store is encrypted: never add a plaintext key to it, nor one under another passphrase
        # (the environment's or the prompt's, checked against a key already there)
        password = password or passphrase(required=True, path=locked)
        load_private_pem_bytes(locked.read_bytes(), path=locked)
    atomic_write(path, private_pem(key, password), mode=0o600)


def encrypted_key_in(directory):
    """A PEM file under `directory` that is encrypted, or None."""
    for f in sorted(Path(directory).glob("*.pem")):
        try:
            if is_encrypted_pem(f.read_bytes()):
                return f
        except OSError:
            continue
    return None


def load_private_pem(path) -> ec.EllipticCurvePrivateKey:
    return load_private_pem_bytes(Path(path).read_bytes(), path=path)
