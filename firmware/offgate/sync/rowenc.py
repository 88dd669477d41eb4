"""A pull's batch rows from the raw 32-byte operation-log records, in viper (offgate.sync.batch; the
record layout is offgate.log.record's). One call per record instead of ~40 interpreted operations: the
row encoding was most of batch.build's gate CPU (docs/performance.md "Sync on the gate").

32-bit safe: only byte loads and stores, and one 32-bit time difference (wraps like the ESP32's
machine word; exact while a batch's times are within 2^31 s of its first). CPython and ports
without viper use offgate.sync.batchrows.row_raw, the same encoding in Python (tests/firmware/mp/test_batchrow.py
compares the two byte for byte, on the 32-bit build too). Each uint field is written inline (its
CBOR head and bytes copied from the record): a viper-to-viper call would box its arguments."""
import micropython


@micropython.viper
def row(b: ptr8, dst: ptr8, p: int, agg: ptr32) -> int:
    """Write record b's row [seq, t, cti or null, ctr, open, reason, missed] (CBOR) at dst[p] and
    count it in agg (array 'i': 0 opened, 1 denied, 2..3 the current hour window [lo, hi) in
    seconds after agg[4], 4 the window's start as a wrapped 32-bit int, 5 set while a build runs,
    8 + reason: records
    of that reason in the window). Returns the new end, or -1 (nothing written) if the record's
    time is outside the window: the caller moves the window and calls again."""
    t = (int(b[8]) << 24) | (int(b[9]) << 16) | (int(b[10]) << 8) | int(b[11])
    rel = t - agg[4]
    if rel < agg[2] or rel >= agg[3]:
        return -1
    dst[p] = 0x87
    p += 1
    # uint at b[4:8]
    if int(b[4]) or int(b[5]):
        dst[p] = 0x1A
        dst[p + 1] = b[4]
        dst[p + 2] = b[5]
        dst[p + 3] = b[6]
        dst[p + 4] = b[7]
        p += 5
    elif int(b[6]):
        dst[p] = 0x19
        dst[p + 1] = b[6]
        dst[p + 2] = b[7]
        p += 3
    else:
        v = int(b[7])
        if v >= 24:
            dst[p] = 0x18
            p += 1
        dst[p] = v
        p += 1
    # uint at b[8:12]
    if int(b[8]) or int(b[9]):
        dst[p] = 0x1A
        dst[p + 1] = b[8]
        dst[p + 2] = b[9]
        dst[p + 3] = b[10]
        dst[p + 4] = b[11]
        p += 5
    elif int(b[10]):
        dst[p] = 0x19
        dst[p + 1] = b[10]
        dst[p + 2] = b[11]
        p += 3
    else:
        v = int(b[11])
        if v >= 24:
            dst[p] = 0x18
            p += 1
        dst[p] = v
        p += 1
    if int(b[3]) & 1:
        dst[p] = 0x48
        i = 0
        while i < 8:
            dst[p + 1 + i] = b[16 + i]
            i += 1
        p += 9
    else:
        dst[p] = 0xF6
        p += 1
    # uint at b[12:16]
    if int(b[12]) or int(b[13]):
        dst[p] = 0x1A
        dst[p + 1] = b[12]
        dst[p + 2] = b[13]
        dst[p + 3] = b[14]
        dst[p + 4] = b[15]
        p += 5
    elif int(b[14]):
        dst[p] = 0x19
        dst[p + 1] = b[14]
        dst[p + 2] = b[15]
        p += 3
    else:
        v = int(b[15])
        if v >= 24:
            dst[p] = 0x18
            p += 1
        dst[p] = v
        p += 1
    if int(b[1]) == 1:
        dst[p] = 1
        agg[0] = agg[0] + 1
    else:
        dst[p] = 0
        agg[1] = agg[1] + 1
    p += 1
    rc = int(b[2])
    if rc >= 24:
        dst[p] = 0x18
        p += 1
    dst[p] = rc
    p += 1
    agg[8 + rc] = agg[8 + rc] + 1
    # uint at b[24:28]
    if int(b[24]) or int(b[25]):
        dst[p] = 0x1A
        dst[p + 1] = b[24]
        dst[p + 2] = b[25]
        dst[p + 3] = b[26]
        dst[p + 4] = b[27]
        p += 5
    elif int(b[26]):
        dst[p] = 0x19
        dst[p + 1] = b[26]
        dst[p + 2] = b[27]
        p += 3
    else:
        v = int(b[27])
        if v >= 24:
            dst[p] = 0x18
            p += 1
        dst[p] = v
        p += 1
    return p
