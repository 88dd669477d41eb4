"""The replay table's boot-time file side (offgate.policy.replay): reading the replay file, and
completing the table from the operation log. ReplayGuard.load loads this module for the call and
drops it; gate.build drops it after restore: this code is not resident between scans (issue 12,
docs/performance.md "The gate's heap after boot"). Compaction stays in replay.py: moved here it
saved 128 bytes of resident heap for a module load inside an OPEN's commit (measured, not kept)."""
import struct

from offgate.checksum import crc32


def load(path, now, put, buf):
    """Read the replay file at `path` (20-byte records, offgate/policy/replay.py; `buf` a
    bytearray of one record) and put(cti, ctr, keep_until, now) every counter whose keep-until
    (Unix seconds) is after `now`.
    Returns (records, skipped, corrupt, torn, missing, load_error): good records read, torn or
    corrupt ones skipped, of which bad-CRC ones, whether the file ended mid-record, whether there
    was no file, and the errno of an unreadable file (else None). Never raises."""
    records = skipped = corrupt = 0
    torn = missing = False
    err = None
    rec = len(buf)
    f = None
    try:
        f = open(path, "rb")
        while True:
            n = f.readinto(buf)
            if not n:
                break
            if n < rec:
                skipped += 1  # torn tail
                torn = True
                break
            body = bytes(buf[:16])
            if (crc32(body) & 0xFFFFFFFF) != struct.unpack_from(">I", buf, 16)[0]:
                skipped += 1
                corrupt += 1
                continue
            ctr, exp = struct.unpack_from(">II", buf, 8)
            if exp == 0:
                skipped += 1
                continue
            records += 1
            if exp > now:
                put(body[:8], ctr, exp, now)
    except OSError as e:
        if e.args and e.args[0] != 2:  # ENOENT: no file yet, nothing accepted yet
            err = e.args[0]
        else:
            missing = True
    finally:
        if f is not None:
            f.close()
    return records, skipped, corrupt, torn, missing, err


def restore(records, now, horizon, highest, put, keep_max):
    """For every OPEN in `records` (OpLog.read's dicts) whose counter is above highest(cti):
    put(cti, ctr, keep_until, now), kept `horizon` seconds from the record's time (0: until
    evicted, keep_max) and never past keep_max; records older than the horizon are skipped.
    Returns how many were put. (No import of offgate.policy.replay: it loads this module.)"""
    n = 0
    h = horizon
    for r in records:
        c = r["cti"]
        if r["decision"] != "OPEN" or c is None or r["ctr"] <= highest(c):
            continue
        t = r.get("t") or now
        keep = keep_max if not h else max(t, now) + h
        if h and t + h <= now:
            continue
        put(c, r["ctr"], min(keep, keep_max), now)
        n += 1
    return n

