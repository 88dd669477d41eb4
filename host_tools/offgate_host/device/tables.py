"""Fixed-point comb tables for the gate's P-256 verification, built on the host.

A comb table for a point P holds, for every idx in 1..255, the affine point
    T[idx] = sum over the set bits b of idx of 2^(32*b) * P
as 64 bytes x || y (big-endian), rows in idx order (16,320 bytes). With it, k*P for a 256-bit k
is 31 doublings and <= 32 additions (Lim-Lee comb, 8 teeth, spacing 32); with tables for both G
and the issuer key the two share the doublings (firmware/offgate/crypto/p256.py: verify_comb).

* G's table is a constant: `python -m offgate_host.tables --gtable` regenerates
  firmware/offgate/crypto/_gen_p256_gtable.py (checked in; tests/firmware/crypto/test_p256_fast.py checks it is current).
* Issuer keys' tables are built by the back office and shipped beside the trust store as
  `issuer_tables.bin` (ISSUER_TABLES). File format (all big-endian):
      b"OGKT" | version 1 | teeth 8 | spacing 32 | count (1 byte)
      count records of: pub (65 bytes, SEC1 uncompressed) | digest (32) | table (16,320)
  digest = SHA-256(b"offgate comb v1\\0" || pub || table). The gate refuses a record whose digest
  or first row (T[1] must be the key itself) does not match; it then verifies that key the
  generic way. The table is as trusted as the trust store beside it (same directory, same
  writer); see docs/performance.md.
"""
import hashlib
import sys
from functools import lru_cache
from pathlib import Path

P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
GX = 0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296
GY = 0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5

TEETH = 8
SPACING = 32
ROWS = (1 << TEETH) - 1
ROW_BYTES = 64
TABLE_BYTES = ROWS * ROW_BYTES  # 16,320
MAGIC = b"OGKT"
VERSION = 1
FILE_HEADER = 8
RECORD_HEADER = 65 + 32
RECORD_BYTES = RECORD_HEADER + TABLE_BYTES
DIGEST_TAG = b"offgate comb v1\0"
ISSUER_TABLES = "issuer_tables.bin"
GTABLE_CHUNK = 17 * ROW_BYTES


# ------------------------------------------------------------------ affine arithmetic (CPython)

def _add(a, b):
    if a is None:
        return b
    if b is None:
        return a
    x1, y1 = a
    x2, y2 = b
    if x1 == x2:
        if (y1 + y2) % P == 0:
            return None
        lam = 3 * (x1 * x1 - 1) * pow(2 * y1, -1, P) % P
    else:
        lam = (y2 - y1) * pow(x2 - x1, -1, P) % P
    x3 = (lam * lam - x1 - x2) % P
    return x3, (lam * (x1 - x3) - y1) % P


def _mul(k, pt):
    r = None
    for i in range(k.bit_length() - 1, -1, -1):
        r = _add(r, r)
        if (k >> i) & 1:
            r = _add(r, pt)
    return r


def _on_curve(x, y):
    return (y * y - x * x * x + 3 * x - B) % P == 0


def comb_points(x, y):
    """[T[1], ..., T[255]] as affine (x, y) for the point (x, y)."""
    if not (0 <= x < P and 0 <= y < P and _on_curve(x, y)):
        raise ValueError("not a P-256 point")
    t = [None] * (ROWS + 1)
    t[1] = (x, y)
    for b in range(1, TEETH):
        q = t[1 << (b - 1)]
        for _ in range(SPACING):
            q = _add(q, q)
        t[1 << b] = q
    for i in range(3, ROWS + 1):
        lo = i & -i
        if lo != i:
            t[i] = _add(t[lo], t[i - lo])
    return t[1:]


def comb_bytes(x, y) -> bytes:
    return b"".join(px.to_bytes(32, "big") + py.to_bytes(32, "big") for px, py in comb_points(x, y))


def g_table() -> bytes:
    return comb_bytes(GX, GY)


def _pub_xy(pub65: bytes):
    pub65 = bytes(pub65)
    if len(pub65) != 65 or pub65[0] != 4:
        raise ValueError("pub must be a 65-byte uncompressed SEC1 point")
    return int.from_bytes(pub65[1:33], "big"), int.from_bytes(pub65[33:], "big")


def table_digest(pub65: bytes, table: bytes) -> bytes:
    return hashlib.sha256(DIGEST_TAG + bytes(pub65) + bytes(table)).digest()


@lru_cache(maxsize=64)
def key_table(pub65: bytes) -> bytes:
    return g_table() if pub65 == G_PUB else comb_bytes(*_pub_xy(pub65))


def issuer_tables_bytes(pubs) -> bytes:
    """The issuer_tables.bin file for these 65-byte public keys (duplicates dropped)."""
    seen = []
    for p in pubs:
        p = bytes(p)
        if p not in seen:
            seen.append(p)
    if len(seen) > 255:
        raise ValueError("at most 255 issuer tables per file")
    out = [MAGIC, bytes([VERSION, TEETH, SPACING, len(seen)])]
    for p in seen:
        t = key_table(p)
        out += [p, table_digest(p, t), t]
    return b"".join(out)


G_PUB = b"\x04" + GX.to_bytes(32, "big") + GY.to_bytes(32, "big")


def issuer_tables_from_trust(trust: bytes, with_g=True) -> bytes:
    """issuer_tables.bin for a trust store's keys, plus (with_g) a record for G itself: the gate
    then reads G's rows from the file too instead of holding p256_gtable (16 KB) in its heap,
    which is what a gate running non-frozen .mpy firmware (e.g. the unix-port simulator) wants."""
    from ..wire import formats
    return issuer_tables_bytes(([G_PUB] if with_g else []) + [k["pub"] for k in formats.parse_trust_store(trust)])


def gtable_module_source() -> str:
    t = g_table()
    lines = [
        '"""Comb table for the P-256 base point G (8 teeth, spacing 32): row idx-1 (64 bytes, x || y',
        "big-endian) is the affine point sum over the set bits b of idx of 2^(32*b) * G, idx = 1..255.",
        "Held as 15 chunks of 17 rows so that loading it never needs one 16 KB block of heap.",
        "",
        "GENERATED by host_tools/offgate_host/device/tables.py (`python -m offgate_host.device.tables --gtable`);",
        'do not edit. tests/firmware/crypto/test_p256_fast.py checks that it equals a fresh generation."""',
        "",
        "TABLE = (",
    ] + ["    %r," % t[i:i + GTABLE_CHUNK] for i in range(0, len(t), GTABLE_CHUNK)] + [
        ")",
        "",
    ]
    return "\n".join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--gtable"]:
        from .paths import firmware_dir
        out = firmware_dir() / "offgate" / "crypto" / "_gen_p256_gtable.py"
        out.write_text(gtable_module_source())
        print("wrote", out)
        return 0
    if len(argv) == 3 and argv[0] == "--issuer":
        Path(argv[2]).write_bytes(issuer_tables_from_trust(Path(argv[1]).read_bytes()))
        print("wrote", argv[2])
        return 0
    print("usage: python -m offgate_host.tables --gtable | --issuer TRUST.cbor OUT.bin", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
