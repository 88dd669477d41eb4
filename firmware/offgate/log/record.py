"""The operation log's on-flash format: record and segment-header layout, magics, the chain and
CRC rules (offgate.log.oplog's docstring has the byte layout; docs/oplog.md the rules). Shared by
the log, its recovery and its repairs, so none of them imports another for the format."""
import hashlib
import struct

from offgate.checksum import crc32

from micropython import const  # under CPython: the stand-in in offgate/__init__.py

REC = const(32)
HDR = const(64)
BODY = const(28)      # the hashed part of a record (its CRC-32 follows it)
VERSION = const(2)    # segment format (1: 64-byte records that stored their chain)
MAGIC = const(0x4F)
SEG_MAGIC = b"OGL1"
ACK_MAGIC = b"OGA1"
HWM_MAGIC = b"OGH1"   # the high-water mark file: same layout as the ack, the head when last acked
ACK_LEN = const(44)   # magic 4 | seq 4 | chain 32 | crc 4
ZERO32 = bytes(32)
OPEN = const(1)
DENY = const(0)


def crc(buf, n):
    """CRC-32 of buf[:n] as an unsigned int."""
    return crc32(buf[:n]) & 0xFFFFFFFF


def ok(b):
    """A record with its magic and a good CRC (the rest of its checks are its place's)."""
    return b[0] == MAGIC and crc(b, BODY) == struct.unpack_from(">I", b, BODY)[0]


def chain(prev, body):
    """SHA-256(prev || body): the chain value after a record whose hashed part is `body`."""
    h = hashlib.sha256(prev)
    h.update(body)
    return h.digest()


def seg_name(segno):
    """File name of segment `segno` in the log's directory."""
    return "%08d.seg" % segno
