"""The sync link's framing and errors, host side (docs/protocol.md "Sync protocol", "Framing").

A frame is MAGIC | version | type | length (big-endian 16 bits) | payload | CRC-32. The framing is
implemented again here (not imported from the firmware) so the two implementations check each
other in the tests.
"""
import struct
import zlib

from ..errors import OffgateError

MAGIC = b"OGSY"
VERSION = 1
HEADER = 8
MAX_PAYLOAD = 16384
HELLO, CHALLENGE, AUTH, AUTH_OK, REQUEST, RESPONSE, ERROR = 0x01, 0x02, 0x03, 0x04, 0x10, 0x11, 0x7F
PROTO = b"OGSYNC2"
NONCE_LEN = 16
MAC_LEN = 16
# like TABLES_CHUNK: each request frame is one block of the gate's heap, split by then by a long pull
# session (a 4 KiB chunk frame did not fit the 32-bit build at its sync heap, 144k)
DENY_CHUNK = 1024
TABLES_CHUNK = 1024  # smaller: the comb tables come right after a trust list install, on a fragmented heap


class SyncError(OffgateError):
    """A sync failed in a way a retry will not fix (authentication, a refused command)."""


class LinkError(SyncError):
    """The link broke (timeout, closed, dropped on purpose): a retry may succeed."""


class ReplyTimeout(LinkError):
    """Nothing (more) arrived within the transport's timeout."""


class NoAnswer(LinkError):
    """The target connected but sent nothing at all within the timeout (a first attempt that hears
    nothing is not retried: sync_with_retries makes it NotAGate)."""


class NotAGate(SyncError):
    """What answered is not a gate's sync link (garbage, our own bytes echoed, or silence from the
    start): one line at once, no retries (a retry would wait the same timeout for the same)."""


class GateRefused(SyncError):
    """The gate answered with an ERROR frame or ok=False."""


class GateShortOfHeap(GateRefused):
    """The gate answered {"retry": true} (short of heap, docs/protocol.md "Heap") every time a
    command was repeated. Nothing was carried out; a fresh session (the old one's heap given back)
    usually fits: sync_with_retries starts one."""


class GateNotEnrolled(SyncError):
    """The gate is not enrolled in the ledger with the device key it presented: nothing is pulled."""


def frame_header(ftype, n):
    return MAGIC + struct.pack(">BBH", VERSION, ftype, n)


def encode_frame(ftype, payload: bytes) -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise ValueError("frame payload too long (%d > %d)" % (len(payload), MAX_PAYLOAD))
    body = frame_header(ftype, len(payload)) + payload
    return body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


class Deframer:
    """Stream -> frames; garbage, bad versions/lengths/CRCs are skipped (resync on the magic)."""

    def __init__(self):
        self.buf = bytearray()
        self.errors = 0
        self.skipped = 0  # bytes dropped as not part of a frame

    def feed(self, data: bytes):
        self.buf += data
        out = []
        while True:
            i = self.buf.find(MAGIC)
            if i < 0:
                keep = next((k for k in (3, 2, 1) if self.buf.endswith(MAGIC[:k])), 0)
                if len(self.buf) > keep:
                    self.errors += 1
                    self.skipped += len(self.buf) - keep
                    del self.buf[:len(self.buf) - keep]
                return out
            if i:
                self.errors += 1
                self.skipped += i
                del self.buf[:i]
            if len(self.buf) < HEADER:
                return out
            ver, ftype, n = struct.unpack(">BBH", self.buf[4:8])
            if ver != VERSION or n > MAX_PAYLOAD:
                self.errors += 1
                self.skipped += 1
                del self.buf[:1]
                continue
            end = HEADER + n + 4
            if len(self.buf) < end:
                return out
            (crc,) = struct.unpack(">I", self.buf[end - 4:end])
            if crc != zlib.crc32(bytes(self.buf[:end - 4])) & 0xFFFFFFFF:
                self.errors += 1
                self.skipped += 1
                del self.buf[:1]
                continue
            out.append((ftype, bytes(self.buf[HEADER:end - 4])))
            del self.buf[:end]
