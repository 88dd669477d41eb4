"""Whole-file checks of a deny list (layout: offgate/policy/denylist.py, docs/protocol.md §6): header,
length, CRC-32 and strictly ascending ids, read in 512-byte pieces. Loaded only when a list is
opened or installed, and unloaded after: the gate's steady state needs only the lookup.

Written as two functions with private constants on purpose: every global name a loaded module
defines is interned for good on MicroPython (docs/performance.md, "interned names").
"""
import struct

from offgate.checksum import crc32

MAGIC = b"OGDL"  # the file's first bytes (docs/protocol.md §6)


class DenyListError(ValueError):
    """A deny list image that is malformed or damaged (offgate.policy.denylist re-raises it with the
    file's path). This module is the layer below denylist: it never imports it."""

from micropython import const  # under CPython: the stand-in in offgate/__init__.py

_V1 = const(12)      # header length, version 1
_V2 = const(24)      # header length, version 2
_ID = const(8)
_PIECE = const(512)  # bytes read at a time (a multiple of 8)
_SIG_MAX = const(512)  # a root COSE_Sign1 over the list's digest is ~150 bytes


def check_file(f, size, digest=None):
    """Check an open deny list file of `size` bytes: header, length, CRC (version 2) and strictly
    ascending ids, in 512-byte pieces (a 100,000-id list needs no 800 KB buffer). `digest` (a
    hashlib object), if given, is fed the header and the ids (what the signature covers).
    Returns (version, header length, count, serial, issued, signature bytes or None, id length);
    raises DenyListError naming the fault. Version 2 byte 6 is the stored id length: 0 for whole
    8-byte ids, 4 .. 7 for a prefix of each (docs/protocol.md §6)."""
    f.seek(0)
    head = f.read(_V2 if size >= _V2 else size)
    if len(head) < _V1 or head[:4] != MAGIC:
        raise DenyListError("deny list: bad header")
    v = head[4]
    serial = issued = 0
    L = _ID
    if v == 1:
        if head[5:8] != b"\x00\x00\x00":
            raise DenyListError("deny list: bad header")
        h = _V1
        n = struct.unpack(">I", head[8:12])[0]
    elif v == 2 and len(head) == _V2:
        if head[5] != 0:
            raise DenyListError("deny list: kind %d is not supported (only full lists)" % head[5])
        if (head[6] and not 4 <= head[6] <= 7) or head[7] or head[20:24] != b"\x00\x00\x00\x00":
            raise DenyListError("deny list: bad header (a full list has base 0)")
        if head[6]:
            L = head[6]
        h = _V2
        n = struct.unpack(">I", head[8:12])[0]
        serial = struct.unpack(">I", head[12:16])[0]
        issued = struct.unpack(">I", head[16:20])[0]
    else:
        raise DenyListError("deny list: unknown version %d" % v)
    end_ids = h + n * L
    if (v == 1 and size != end_ids) or (v == 2 and size < end_ids + 6):
        raise DenyListError("deny list: length does not match count %d" % n)
    if digest is not None:
        digest.update(head[:h])
    crc = crc32(head[:h])
    f.seek(h)
    buf = bytearray(_PIECE - _PIECE % L)  # whole ids in every piece
    pos = h
    prev = None
    i = 0
    while pos < end_ids:
        k = end_ids - pos
        if k > len(buf):
            k = len(buf)
        mv = memoryview(buf)[:k]
        if f.readinto(mv) != k:
            raise DenyListError("deny list: length does not match count %d" % n)
        crc = crc32(mv, crc)
        if digest is not None:
            digest.update(mv)
        for j in range(0, k, L):
            cur = bytes(mv[j:j + L])
            if prev is not None and cur <= prev:
                raise DenyListError("deny list: ids not strictly ascending at %d (damaged or tampered)" % i)
            prev = cur
            i += 1
        pos += k
    if v == 1:
        return v, h, n, serial, issued, None, L
    # the tail is the signature's length, the signature and the CRC: its size is checked before
    # it is read, so an oversized file cannot ask for a buffer of its own size
    ln = f.read(2)
    if len(ln) != 2 or ((ln[0] << 8) | ln[1]) > _SIG_MAX or size - end_ids != 2 + ((ln[0] << 8) | ln[1]) + 4:
        raise DenyListError("deny list: length does not match count %d" % n)
    tail = ln + f.read(size - end_ids - 2)
    if len(tail) != size - end_ids:
        raise DenyListError("deny list: length does not match count %d" % n)
    if struct.unpack(">I", tail[-4:])[0] != crc32(tail[:-4], crc) & 0xFFFFFFFF:
        raise DenyListError("deny list: CRC mismatch (damaged)")
    return v, h, n, serial, issued, bytes(tail[2:-4]), L


def check_bytes(data):
    """check_file for a whole image in memory. Returns the count."""
    import io
    return check_file(io.BytesIO(bytes(data)), len(data))[2]
