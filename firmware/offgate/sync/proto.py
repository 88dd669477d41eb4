"""Sync protocol constants and the small helpers every sync module shares (docs/protocol.md
"Sync protocol"). The ground floor of offgate.sync: imports nothing from the rest of it."""
import hashlib
import struct
import sys

try:
    from os import urandom
except ImportError:  # pragma: no cover - some ports keep it elsewhere
    from random import getrandbits

    def urandom(n):
        return bytes(getrandbits(8) for _ in range(n))

MICROPYTHON = sys.implementation.name == "micropython"
if MICROPYTHON:
    from gc import collect
else:  # CPython: a full collection per request costs more than it gives
    def collect():
        pass

PROTO = b"OGSYNC2"
NONCE_LEN = 16
MAC_LEN = 16        # the AES-CCM tag
ROLE_CLAIM = -65538
ROLE_OPERATOR = "operator"
DENY_CHUNK = 1024   # the host's deny list chunk (offgate_host.sync.frames): one heap block per request frame
BATCH_MAX_RECORDS = 200

# Status and config (offgate/sync/status.py), lists, tables and time (offgate/sync/admin.py): each
# module loaded only for its requests, so a pull's batch has the heap that code would take (none of
# them is in the heap together with another or with the pull's code).
STATUS_OPS = ("status", "config")
ADMIN_OPS = ("tables_begin", "tables_chunk", "tables_commit", "deny_begin", "deny_chunk",
             "deny_commit", "trust", "time_nonce", "set_time")
# What each scope may do (docs/protocol.md "Scopes"). "full": every op. "clock" (operator
# credential or its issuer key not valid at the gate's clock): read the gate's time, write
# root-signed time; nothing else is read or written.
CLOCK_OPS = ("time_nonce", "set_time")

# session states
IDLE = 0
CHALLENGED = 1
OPEN = 2
DEAD = 3


class SyncError(ValueError):
    """A command or handshake step refused: the message goes back to the host (ok: false / ERROR)."""


class Refused(SyncError):
    """A handshake or frame refused as a possible attack (counted in SyncServer.refused)."""


def sha256(data):
    return hashlib.sha256(data).digest()


def u32(v):
    return struct.pack(">I", v & 0xFFFFFFFF)


def uint(v):
    """True for a non-negative int that is not a bool (CBOR fields from the host)."""
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def eq(a, b):
    """Constant-time comparison of two byte strings (hmac256.equal)."""
    from offgate.crypto import hmac256
    return hmac256.equal(a, b)


def hkdf_sha256(ikm, salt, info, n):
    from offgate.crypto import hkdf
    return hkdf.hkdf_sha256(ikm, salt, info, n)


def mem_free():
    """Free heap (bytes) after a collection, or None where the port does not say (CPython)."""
    if not MICROPYTHON:
        return None
    import gc
    gc.collect()
    return gc.mem_free()


def grab(most, least=1024):
    """The largest bytearray of `least` .. `most` bytes the heap gives at once (largest first, by
    quarters), or None. A free total says little on a fragmented heap: this is what one
    contiguous object may take."""
    n = most
    while n >= least:
        try:
            return bytearray(n)
        except MemoryError:
            n = n * 3 // 4
    return None


def unload(*names):
    """Drop sync modules (names under offgate., e.g. "sync.admin") and give their heap back: on a
    gate running .mpy files the bytecode lives in the heap (the memory policy: offgate.unload)."""
    import offgate
    for name in names:
        offgate.unload("offgate." + name)
    collect()
