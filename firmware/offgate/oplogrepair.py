"""Rewrites of damaged operation-log segments (tmp file + atomic rename), loaded by
offgate.oplogrecover only when a recovery has to repair something: rare, so kept out of the
module every boot loads."""
import os
import struct

from offgate.oplog import HDR, REC, SEG_MAGIC, _crc


def truncate(log, segno, count):
    """Keep the first `count` records of a segment: copy them to a tmp file, rename over."""
    path = log._path(segno)
    tmp = path + ".tmp"
    b = log._buf
    with open(path, "rb") as src:
        with open(tmp, "wb") as dst:
            src.readinto(log._hdr)
            dst.write(log._hdr)
            for _ in range(count):
                src.readinto(b)
                dst.write(b)
    os.rename(tmp, path)

def rewrite_header(log, segno, first, prev_chain):
    """Write a good header in place of a damaged one (tmp + rename), keeping every record."""
    path = log._path(segno)
    tmp = path + ".tmp"
    h = log._hdr
    for i in range(HDR):
        h[i] = 0
    h[0:4] = SEG_MAGIC
    h[4] = 1
    struct.pack_into(">II", h, 8, segno, first)
    h[16:48] = prev_chain
    struct.pack_into(">I", h, 60, _crc(h, 60))
    b = log._buf
    with open(path, "rb") as src:
        with open(tmp, "wb") as dst:
            dst.write(h)
            src.seek(HDR)
            while src.readinto(b) == REC:
                dst.write(b)
    os.rename(tmp, path)
