"""A version-1 operation log (64-byte records that stored their chain, firmware up to commit
017a642) written on the host, for the upgrade tests and bench (tests/firmware/log/test_oplog_upgrade.py checks
its bytes against the fixture the old firmware wrote, tests/fixtures/oplog_v1)."""
import hashlib
import struct
import zlib


def _fields(i):
    # gen_v1.py's records: (t, cti, ctr, decision, reason)
    t0 = 800000000
    if i % 7 == 3:
        return t0 + i, None, None, "DENY", 13
    if i % 5 == 4:
        return t0 + i, bytes([i & 255, 1, 2, 3, 4, 5, 6, 7]), i, "DENY", 43
    return t0 + i, bytes([i & 255, 9, 9, 9, 9, 9, 9, 9]), i + 1, "OPEN", 0


def write_v1_log(d, n, per=63):
    """A version-1 log of records 1..n (gen_v1.py's fields), `per` 64-byte records a segment, laid
    out as the old firmware did (checked against the fixture below). Returns the chains by seq."""
    d.mkdir(parents=True, exist_ok=True)
    chain = bytes(32)
    chains = {}
    for segno, first in enumerate(range(1, n + 1, per), 1):
        h = bytearray(64)
        h[0:5] = b"OGL1\x01"
        struct.pack_into(">II", h, 8, segno, first)
        h[16:48] = chain
        struct.pack_into(">I", h, 60, zlib.crc32(h[:60]))
        out = bytearray(h)
        for seq in range(first, min(first + per, n + 1)):
            t, cti, ctr, dec, reason = _fields(seq)
            body = struct.pack(">BBBBIII8sI", 0x4F, 1 if dec == "OPEN" else 0, reason, 1 if cti else 0, seq, t,
                               ctr or 0, cti or bytes(8), 0)
            chain = hashlib.sha256(chain + body).digest()
            chains[seq] = chain
            rec = body + chain
            out += rec + struct.pack(">I", zlib.crc32(rec))
        (d / ("%08d.seg" % segno)).write_bytes(bytes(out))
    return chains
