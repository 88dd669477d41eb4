"""Decision reason codes: one distinct, stable number per way a scan can end.

The number is what the gate logs and reports; the name is what people read. Documented in
docs/protocol.md §7; keep the two in step (tests/test_docs.py checks they agree).
"""
from micropython import const  # under CPython: the stand-in in offgate/__init__.py

OK = const(0)
# The scanner line itself is unusable.
EMPTY = const(10)            # an empty line (e.g. a stray terminator)
LINE_TOO_LONG = const(11)    # longer than any code can be: noise or an attack on memory
NOT_TEXT = const(12)         # bytes outside printable ASCII: binary noise, wrong baud rate
BAD_PREFIX = const(13)       # not an offgate code (no "OG1:" version prefix)
BAD_BASE45 = const(14)       # prefix right, base45 wrong
# The code decodes but is not a well-formed offgate authorization code.
MALFORMED_CODE = const(20)        # CBOR/COSE structure of the authorization code
BAD_ALG = const(21)               # algorithm missing or not ES256: never guessed, never fallen back from
MALFORMED_CREDENTIAL = const(22)  # the credential inside is not a well-formed CWT
# Chain of trust.
UNKNOWN_ISSUER = const(30)        # no trusted issuer key has this kid
ISSUER_KEY_INACTIVE = const(31)   # the issuer key exists but is outside its validity window
BAD_ISSUER_SIG = const(32)        # the credential's signature does not verify
CRED_NOT_YET_VALID = const(33)    # gate time < nbf
CRED_EXPIRED = const(34)          # gate time >= exp
BAD_RIDER_SIG = const(35)         # the code's signature does not verify with the credential's cnf key
CODE_STALE = const(36)            # iat older than max_age + skew
CODE_FUTURE = const(37)           # iat ahead of the gate clock by more than skew
# Policy.
WRONG_ZONE = const(40)
WRONG_GATE = const(41)
REVOKED = const(42)               # credential id on the deny list
REPLAY = const(43)                # counter not above the highest already accepted here
LOG_FULL = const(44)              # the operation log is full of unacknowledged records ("refuse")
PASSBACK = const(45)              # entered at this entry gate moments ago, no exit since (passback.py)
LIST_STALE = const(46)            # the deny list is older than list_max_age_s and list_stale_policy is "refuse"
# The gate itself.
INTERNAL_ERROR = const(50)        # an unexpected failure while deciding: deny, log, keep running
CLOCK_UNTRUSTED = const(51)       # the clock lost its time (power loss) and policy says refuse (docs/security.md)
DISK_FULL = const(52)             # the filesystem is full: an OPEN cannot be recorded (not LOG_FULL)
DENY_LIST_MISSING = const(53)     # no valid deny list and deny_list_policy "refuse": revocations unknown

NAMES = {
    OK: "OK",
    EMPTY: "EMPTY",
    LINE_TOO_LONG: "LINE_TOO_LONG",
    NOT_TEXT: "NOT_TEXT",
    BAD_PREFIX: "BAD_PREFIX",
    BAD_BASE45: "BAD_BASE45",
    MALFORMED_CODE: "MALFORMED_CODE",
    BAD_ALG: "BAD_ALG",
    MALFORMED_CREDENTIAL: "MALFORMED_CREDENTIAL",
    UNKNOWN_ISSUER: "UNKNOWN_ISSUER",
    ISSUER_KEY_INACTIVE: "ISSUER_KEY_INACTIVE",
    BAD_ISSUER_SIG: "BAD_ISSUER_SIG",
    CRED_NOT_YET_VALID: "CRED_NOT_YET_VALID",
    CRED_EXPIRED: "CRED_EXPIRED",
    BAD_RIDER_SIG: "BAD_RIDER_SIG",
    CODE_STALE: "CODE_STALE",
    CODE_FUTURE: "CODE_FUTURE",
    WRONG_ZONE: "WRONG_ZONE",
    WRONG_GATE: "WRONG_GATE",
    REVOKED: "REVOKED",
    REPLAY: "REPLAY",
    LOG_FULL: "LOG_FULL",
    PASSBACK: "PASSBACK",
    LIST_STALE: "LIST_STALE",
    INTERNAL_ERROR: "INTERNAL_ERROR",
    CLOCK_UNTRUSTED: "CLOCK_UNTRUSTED",
    DISK_FULL: "DISK_FULL",
    DENY_LIST_MISSING: "DENY_LIST_MISSING",
}


def name(code):
    return NAMES.get(code, "UNKNOWN")
