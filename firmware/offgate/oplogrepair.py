"""Rewrites of damaged operation-log segments (tmp file + atomic rename), loaded by
offgate.oplogrecover only when a recovery has to repair something: rare, so kept out of the
module every boot loads."""
import os
import struct

from offgate.oplog import HDR, REC, SEG_MAGIC, VERSION, _crc


def rewrite(log, segno, count, first, prev_chain):
    """Rewrite segment `segno` through a tmp file + rename: its first `count` records (all of
    them if count is None, e.g. to cut a torn tail), under its own header, or under a rebuilt one
    (first seq `first`, `prev_chain`) when first is not None (a damaged header)."""
    path = log._path(segno)
    tmp = path + ".tmp"
    h = log._hdr
    b = log._buf
    with open(path, "rb") as src:
        src.readinto(h)
        if first is not None:
            for i in range(HDR):
                h[i] = 0
            h[0:4] = SEG_MAGIC
            h[4] = VERSION
            struct.pack_into(">II", h, 8, segno, first)
            h[16:48] = prev_chain
            struct.pack_into(">I", h, 60, _crc(h, 60))
        with open(tmp, "wb") as dst:
            dst.write(h)
            n = 0
            while (count is None or n < count) and src.readinto(b) == REC:
                dst.write(b)
                n += 1
    os.rename(tmp, path)
