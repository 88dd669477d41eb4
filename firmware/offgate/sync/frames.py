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
    """Frames out of a byte stream: feed(bytes) -> [(type, payload: bytes, or a memoryview of a frame
    larger than 256 bytes that filled the buffer alone)], resynchronising on the
    magic after garbage or a bad CRC. The bytes wait in one buffer sized for the frame being
    received once its header is in (a 4 KiB upload chunk is one allocation, not one per read)
    and dropped when it is empty."""

    def __init__(self, max_payload=MAX_PAYLOAD):
        self.buf = bytearray(0)
        self.fill = 0       # bytes of buf in use
        self.max_payload = max_payload
        self.errors = 0     # frames or garbage runs dropped
        self.skipped = 0    # bytes dropped
        self.drop_left = 0  # bytes still to come of a frame the heap had no buffer for
        self.drop_type = 0  # its type
        self.dropped = 0    # frames dropped for want of heap

    def _no_room(self):
        """The heap has no buffer for the frame at the start of buf (its header is in): its bytes
        are skipped as they come and it is reported as (type, None) once they are all in, so the
        session can answer it ("retry"). False if the header is not in (the MemoryError stands)."""
        if self.fill < HEADER or self.buf[:4] != MAGIC:
            return False
        ver, ftype, n = struct.unpack_from(">BBH", self.buf, 4)
        if ver != VERSION or n > self.max_payload:
            return False
        self.drop_left = HEADER + n + TRAILER - self.fill
        self.drop_type = ftype
        self.dropped += 1
        self.buf = bytearray(0)
        self.fill = 0
        return True

    def _add(self, data):
        k = len(data)
        need = self.fill + k
        if need > len(self.buf):
            cap = need
            if self.fill >= HEADER:  # the frame's length is known: room for all of it at once
                n = struct.unpack_from(">H", self.buf, 6)[0]
                if n <= self.max_payload:
                    cap = max(cap, HEADER + n + TRAILER)
            b = bytearray(cap)
            b[:self.fill] = memoryview(self.buf)[:self.fill]
            self.buf = b
        self.buf[self.fill:need] = data
        self.fill = need

    def _drop(self, n):
        """Forget the first n bytes of the buffer."""
        rest = self.fill - n
        if rest:
            self.buf[:rest] = memoryview(self.buf)[n:self.fill]
        self.fill = rest
        if not rest and len(self.buf) > 256:
            self.buf = bytearray(0)  # an upload's chunk buffer is not kept between frames

    def _skip(self, n):
        self.skipped += n
        self._drop(n)

    def feed(self, data):
        out = []
        if self.drop_left and data:
            k = min(self.drop_left, len(data))
            self.drop_left -= k
            data = memoryview(data)[k:]
        if not self.drop_left and self.drop_type:
            out.append((self.drop_type, None))
            self.drop_type = 0
        if data:
            try:
                self._add(data)
            except MemoryError:
                if self.fill + len(data) < HEADER or self.fill >= HEADER and not self._no_room():
                    raise
                if self.fill < HEADER:  # the header is in data: take it, then drop the frame
                    k = HEADER - self.fill
                    self._add(memoryview(data)[:k])
                    data = memoryview(data)[k:]
                    if not self._no_room():
                        raise
                out += self.feed(data)  # what the dropped frame left of this read
                return out
        while True:
            buf = memoryview(self.buf)[:self.fill]
            i = self.buf.find(MAGIC, 0, self.fill)
            if i < 0:
                # keep a tail that could be the start of a magic split across reads
                keep = 0
                for k in (3, 2, 1):
                    if self.fill >= k and buf[self.fill - k:] == MAGIC[:k]:
                        keep = k
                        break
                if self.fill > keep:
                    self.errors += 1
                    buf = None
                    self._skip(self.fill - keep)
                return out
            if i > 0:
                self.errors += 1
                buf = None
                self._skip(i)
                continue
            if self.fill < HEADER:
                return out
            ver, ftype, n = struct.unpack_from(">BBH", buf, 4)
            if ver != VERSION or n > self.max_payload:
                self.errors += 1
                buf = None
                self._skip(1)
                continue
            end = HEADER + n + TRAILER
            if self.fill < end:
                if len(self.buf) < end:  # room for the whole frame now, not one read at a time
                    buf = None
                    try:
                        b = bytearray(end)
                    except MemoryError:
                        if i or not self._no_room():
                            raise
                        return out
                    b[:self.fill] = memoryview(self.buf)[:self.fill]
                    self.buf = b
                return out  # truncated so far: wait for the rest
            crc = struct.unpack_from(">I", buf, end - TRAILER)[0]
            if crc != _crc(buf[:end - TRAILER]):
                self.errors += 1
                buf = None
                self._skip(1)
                continue
            if end == self.fill and end > 256:
                # the frame is the whole buffer (an upload chunk): its payload is handed over as a
                # view of it, not copied (a second chunk-sized block is what a low heap lacks)
                out.append((ftype, buf[HEADER:end - TRAILER]))
                buf = None
                self.buf = bytearray(0)
                self.fill = 0
                continue
            out.append((ftype, bytes(buf[HEADER:end - TRAILER])))
            buf = None
            self._drop(end)

    def pending(self):
        return self.fill
