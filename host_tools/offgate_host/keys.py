"""P-256 keys: generation, SEC1 encoding, kid derivation, PEM files."""
import hashlib
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

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


def private_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def load_private_pem_bytes(data: bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != CURVE.name:
        raise ValueError("not a P-256 private key")
    return key


def save_private_pem(path, key) -> None:
    """Write the key as unencrypted PKCS#8 PEM, file mode 0600 (never briefly world-readable)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private_pem(key))
    os.chmod(path, 0o600)


def load_private_pem(path) -> ec.EllipticCurvePrivateKey:
    return load_private_pem_bytes(Path(path).read_bytes())
