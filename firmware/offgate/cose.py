"""The documented entry point `offgate.cose.sign1_verify(data, pub) -> bytes` (and sign1_parse,
verify_parsed, sig_structure, the error classes), kept at this path for the suites that call it.
The code lives in offgate.codec.cose; the firmware imports it from there, so this module is loaded
only by callers of the public path."""
from offgate.codec.cose import (BadAlgorithm, BadSignature, Malformed, Sign1, check_alg, sig_structure,  # noqa: F401
                                sign1_parse, sign1_verify, verify_parsed)
