"""Rewrites of damaged operation-log segments (tmp file + atomic rename), loaded by
offgate.log.oplogrecover only when a recovery has to repair something: rare, so kept out of the
module every boot loads."""
import struct

from offgate import statedir
from offgate.log.record import HDR, REC, SEG_MAGIC, VERSION, crc


def rewrite(path, h, b, segno, count, first, prev_chain):
    """Rewrite segment `segno` (file `path`) through a tmp file + statedir.replace: its first
    `count` records (all of them if count is None, e.g. to cut a torn tail), under its own header,
    or under a rebuilt one (first seq `first`, `prev_chain`) when first is not None (a damaged
    header). `h`, `b`: 64-byte scratch buffers (the log's)."""
    tmp = path + statedir.TMP
    with open(path, "rb") as src:
        src.readinto(h)
        if first is not None:
            for i in range(HDR):
                h[i] = 0
            h[0:4] = SEG_MAGIC
            h[4] = VERSION
            struct.pack_into(">II", h, 8, segno, first)
            h[16:48] = prev_chain
            struct.pack_into(">I", h, 60, crc(h, 60))
        with open(tmp, "wb") as dst:
            dst.write(h)
            n = 0
            while (count is None or n < count) and src.readinto(b) == REC:
                dst.write(b)
                n += 1
    statedir.replace(tmp, path)
