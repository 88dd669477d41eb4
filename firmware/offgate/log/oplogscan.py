"""Boot-time check of operation-log records in viper (offgate.log.oplogrecover's fast path): a full
default log is ~31,500 records, and checking each in interpreted code (magic, seq, CRC-32) cost
~16 k host instructions a record, seconds at boot on an ESP32. CPython and ports without viper
use oplogrecover's per-record loop (the same checks).

32-bit safe: uint arithmetic only (CRC-32 with a byte table, reflected polynomial 0xEDB88320,
as binascii.crc32), seq passed as two 16-bit halves."""
import micropython
from binascii import crc32

# the CRC-32 byte table, little-endian u32s (1 KB, only while recovery runs), from binascii itself:
# with an initial value of 0xFFFFFFFF crc32 runs the register from 0, so one byte gives its entry
TABLE = bytearray(1024)
for _i in range(256):
    _v = crc32(bytes((_i,)), 0xFFFFFFFF) ^ 0xFFFFFFFF
    for _j in range(4):
        TABLE[4 * _i + _j] = (_v >> (8 * _j)) & 0xFF


@micropython.viper
def _run(b: ptr8, k: int, hi: int, lo: int, tab: ptr8) -> int:
    ones = (uint(0xFFFF) << 16) | uint(0xFFFF)
    s = (uint(hi) << 16) | uint(lo)
    i = 0
    while i < k:
        o = i * 32
        if int(b[o]) != 0x4F:
            break
        st = (uint(b[o + 4]) << 24) | (uint(b[o + 5]) << 16) | (uint(b[o + 6]) << 8) | uint(b[o + 7])
        if st != s:
            break
        crc = ones
        j = 0
        while j < 28:
            x = int((crc ^ uint(b[o + j])) & 0xFF) << 2
            t = uint(tab[x]) | (uint(tab[x + 1]) << 8) | (uint(tab[x + 2]) << 16) | (uint(tab[x + 3]) << 24)
            crc = ((crc >> 8) ^ t) & ones
            j += 1
        crc = (crc ^ ones) & ones
        stc = (uint(b[o + 28]) << 24) | (uint(b[o + 29]) << 16) | (uint(b[o + 30]) << 8) | uint(b[o + 31])
        if crc != stc:
            break
        s += 1
        i += 1
    return i


def good_run(b, k, hi, lo):
    """How many of the k 32-byte records in b, from the first, are intact (magic 0x4F, CRC-32 of
    bytes 0..27 in bytes 28..31) and carry the consecutive seqs (hi << 16 | lo), +1, ..."""
    return _run(b, k, hi, lo, TABLE)
