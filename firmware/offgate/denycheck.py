"""Whole-file checks of a deny list (layout: offgate/denylist.py, docs/protocol.md §6): header,
length, CRC-32 and strictly ascending ids, read in 512-byte pieces. Loaded only when a list is
opened or installed, and unloaded after: the gate's steady state needs only the lookup.
"""
import struct

from offgate.checksum import crc32
from offgate.denylist import HEADER, HEADER2, ID_LEN, KIND_FULL, MAGIC, DenyListError

_PIECE = 512         # bytes read at a time (a multiple of ID_LEN)


def parse_header(head):
    """(version, header length, count, serial, issued) from the first 24 (v2) or 12 (v1) bytes.
    Raises DenyListError for anything else."""
    if len(head) < HEADER or head[:4] != MAGIC:
        raise DenyListError("deny list: bad header")
    v = head[4]
    if v == 1:
        if head[5:8] != b"\x00\x00\x00":
            raise DenyListError("deny list: bad header")
        return 1, HEADER, struct.unpack(">I", head[8:12])[0], 0, 0
    if v != 2 or len(head) < HEADER2:
        raise DenyListError("deny list: unknown version %d" % v)
    if head[5] != KIND_FULL:
        raise DenyListError("deny list: kind %d is not supported (only full lists)" % head[5])
    if head[6:8] != b"\x00\x00":
        raise DenyListError("deny list: bad header")
    n, serial, issued, base = struct.unpack(">IIII", head[8:24])
    if base != 0:
        raise DenyListError("deny list: a full list must have base 0")
    return 2, HEADER2, n, serial, issued


class _Checker:
    """Feeds pieces of a file in order: CRC-32 of everything, ids strictly ascending."""

    def __init__(self):
        self.crc = 0
        self.prev = None
        self.i = 0

    def ids(self, piece):
        prev = self.prev
        for k in range(0, len(piece), ID_LEN):
            cur = bytes(piece[k:k + ID_LEN])
            if prev is not None and cur <= prev:
                raise DenyListError("deny list: ids not strictly ascending at %d (damaged or tampered)" % self.i)
            prev = cur
            self.i += 1
        self.prev = prev


def _sig_len(data, off):
    if len(data) < off + 2:
        raise DenyListError("deny list: truncated before its signature")
    return struct.unpack(">H", data[off:off + 2])[0]


def check_bytes(data):
    """Validate a whole deny list image: header, length, ids strictly ascending and, for version 2,
    the CRC. Returns the count. (The signature is the installer's business: syncops.)"""
    v, h, n, serial, issued = parse_header(data[:HEADER2])
    end_ids = h + n * ID_LEN
    if v == 1:
        if len(data) != end_ids:
            raise DenyListError("deny list: length does not match count %d" % n)
    else:
        if len(data) < end_ids + 2 + 4:
            raise DenyListError("deny list: length does not match count %d" % n)
        if len(data) != end_ids + 2 + _sig_len(data, end_ids) + 4:
            raise DenyListError("deny list: length does not match count %d" % n)
        if struct.unpack(">I", data[-4:])[0] != crc32(data[:-4]) & 0xFFFFFFFF:
            raise DenyListError("deny list: CRC mismatch (damaged)")
    c = _Checker()
    c.ids(memoryview(data)[h:end_ids])
    return n


def check_file(f, size, digest=None):
    """check_bytes for an open file of `size` bytes, read in 512-byte pieces (a 100,000-id list
    needs no 800 KB buffer). `digest` (a hashlib object), if given, is fed the header and the ids
    (what the signature covers). Returns (version, header length, count, serial, issued,
    signature bytes or None)."""
    f.seek(0)
    head = f.read(HEADER2 if size >= HEADER2 else size)
    v, h, n, serial, issued = parse_header(head)
    if digest is not None:
        digest.update(head[:h])
    end_ids = h + n * ID_LEN
    if v == 1:
        if size != end_ids:
            raise DenyListError("deny list: length does not match count %d" % n)
    elif size < end_ids + 6:
        raise DenyListError("deny list: length does not match count %d" % n)
    c = _Checker()
    crc = crc32(head[:h])
    f.seek(h)
    buf = bytearray(_PIECE)
    pos = h
    while pos < end_ids:
        k = end_ids - pos
        if k > _PIECE:
            k = _PIECE
        mv = memoryview(buf)[:k]
        if f.readinto(mv) != k:
            raise DenyListError("deny list: short read")
        crc = crc32(mv, crc)
        if digest is not None:
            digest.update(mv)
        c.ids(mv)
        pos += k
    if v == 1:
        return v, h, n, serial, issued, None
    tail = f.read(size - end_ids)
    if len(tail) != size - end_ids or 2 + _sig_len(tail, 0) + 4 != len(tail):
        raise DenyListError("deny list: length does not match count %d" % n)
    crc = crc32(tail[:-4], crc)
    if struct.unpack(">I", tail[-4:])[0] != crc & 0xFFFFFFFF:
        raise DenyListError("deny list: CRC mismatch (damaged)")
    return v, h, n, serial, issued, bytes(tail[2:-4])


