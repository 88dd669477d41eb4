"""Sync link framing (docs/protocol.md "Sync protocol"): the same on TCP and on USB serial.

    frame = b"OGSY" | version (1) | type (1) | length (2, BE) | payload (length) | CRC-32 (4, BE)

The CRC covers everything before it (magic to payload). It catches line noise, not attackers:
once a session is up every payload also carries a counter and an HMAC (see sync/session.py).

`Deframer.feed(data)` returns the whole frames found so far as (type, payload) pairs. Garbage
between frames, a frame with a bad version, an impossible length or a wrong CRC are skipped by
resynchronising on the next magic (one byte past the bad frame's start, so a real frame hidden
behind a forged length is still found); `errors` counts what was dropped. Nothing raises.
A truncated frame simply waits for the rest (and is dropped with the connection).
"""
import struct

from offgate.checksum import crc32

MAGIC = b"OGSY"
VERSION = 1
HEADER = 8          # magic 4, version 1, type 1, length 2
TRAILER = 4         # CRC-32
MAX_PAYLOAD = 16384  # the gate's heap (128 KiB) bounds what one frame may hold

# frame types
HELLO = 0x01        # host -> gate, clear
CHALLENGE = 0x02    # gate -> host, clear
AUTH = 0x03         # host -> gate, clear
AUTH_OK = 0x04      # gate -> host, secured (first MAC'd frame: proves the gate has the keys)
REQUEST = 0x10      # host -> gate, secured
RESPONSE = 0x11     # gate -> host, secured
ERROR = 0x7F        # either way, clear; ends the session


class FrameError(ValueError):
    pass


def _crc(data):
    return crc32(data) & 0xFFFFFFFF


def encode(ftype, payload):
    """One frame as bytes. Raises FrameError for a payload that does not fit."""
    n = len(payload)
    if n > MAX_PAYLOAD:
        raise FrameError("frame payload of %d bytes exceeds %d" % (n, MAX_PAYLOAD))
    if not 0 <= ftype <= 255:
        raise FrameError("bad frame type")
    head = MAGIC + struct.pack(">BBH", VERSION, ftype, n)
    body = head + bytes(payload)
    return body + struct.pack(">I", _crc(body))


def finish(buf):
    """A frame laid out in `buf` (header | payload | 4 spare bytes): fill in the CRC, return buf
    itself (no copy: a batch frame is the largest object of a sync session)."""
    n = len(buf) - TRAILER
    struct.pack_into(">I", buf, n, _crc(memoryview(buf)[:n]))
    return buf


def header(ftype, n):
    """The 8 header bytes of a frame of type `ftype` with an `n`-byte payload (MAC input)."""
    return MAGIC + struct.pack(">BBH", VERSION, ftype, n)


class Deframer:
    def __init__(self, max_payload=MAX_PAYLOAD):
        self.buf = b""
        self.max_payload = max_payload
        self.errors = 0     # frames or garbage runs dropped
        self.skipped = 0    # bytes dropped

    def _drop(self, n):
        self.buf = self.buf[n:]
        self.skipped += n

    def feed(self, data):
        out = []
        if data:
            self.buf += bytes(data)
        while True:
            buf = self.buf
            i = buf.find(MAGIC)
            if i < 0:
                # keep a tail that could be the start of a magic split across reads
                keep = 0
                for k in (3, 2, 1):
                    if len(buf) >= k and buf[-k:] == MAGIC[:k]:
                        keep = k
                        break
                if len(buf) > keep:
                    self.errors += 1
                    self._drop(len(buf) - keep)
                return out
            if i > 0:
                self.errors += 1
                self._drop(i)
                buf = self.buf
            if len(buf) < HEADER:
                return out
            ver, ftype, n = struct.unpack(">BBH", buf[4:HEADER])
            if ver != VERSION or n > self.max_payload:
                self.errors += 1
                self._drop(1)
                continue
            end = HEADER + n + TRAILER
            if len(buf) < end:
                return out  # truncated so far: wait for the rest
            crc = struct.unpack(">I", buf[end - TRAILER:end])[0]
            if crc != _crc(buf[:end - TRAILER]):
                self.errors += 1
                self._drop(1)
                continue
            out.append((ftype, buf[HEADER:end - TRAILER]))
            self.buf = buf[end:]

    def pending(self):
        return len(self.buf)
