"""The documented entry point `offgate.ecdsa.verify(pub, msg, sig) -> bool` (and verify_key,
parse_public_key, PublicKey), kept at this path for the suites that call it. The code lives in
offgate.crypto.ecdsa; the firmware imports it from there, so this module is loaded only by callers
of the public path."""
from offgate.crypto.ecdsa import PublicKey, parse_public_key, verify, verify_key  # noqa: F401
