"""Comb tables for trusted issuer keys, built on the host and shipped beside the trust store.

File `issuer_tables.bin` (host_tools/offgate_host/device/tables.py writes it), big-endian:
    b"OGKT" | version 1 | teeth 8 | spacing 32 | count
    count records of: pub (65, SEC1 uncompressed) | digest (32) | table (255 rows x 64 bytes)
    (a record whose pub is G carries G's own table, read from the file like the others)
    digest = SHA-256(b"offgate comb v1\\0" || pub || table)

attach() binds a record to a trusted key only if the record's pub is that key, the digest over
pub and table matches, row 1 (T[1]) is the key itself, and validate() proves every row is the
right multiple of the key (no trust in the file at all: a crafted table with a recomputed
digest is refused too). G's record must match G's table's SHA-256 pinned below. Anything else
is refused and the key keeps verifying the generic way, so no table file can change a result.

Rows are read from the open file on demand by default (p256.FileComb: 64 bytes per addition, no
heap kept); in_ram=True keeps each 16 KB table as bytes instead. Boot-time code: TrustStore
unloads this module once the tables are attached (its bytecode is ~3 KB of heap on the unix
port); what verification needs afterwards (FileComb, Comb) lives in offgate.crypto.p256.
"""
import hashlib

from offgate.crypto import p256, p256fast

MAGIC = b"OGKT"
VERSION = 1
TEETH = 8
SPACING = 32
FILE_HEADER = 8
RECORD_HEADER = 97  # pub 65 + digest 32
RECORD_BYTES = RECORD_HEADER + p256.COMB_BYTES
_TAG = b"offgate comb v1\0"
# SHA-256 of G's table (= p256_gtable.TABLE): a G record is accepted only with exactly this table
_G_SHA256 = b"\xa9\xcaIjR\xe92\x90\x82\x85A\xdc\xe5}\xce\xd5\xe0)$\x8b\x0e`\xc1\xb1\x05\x8a\xa1L\xaf6\x11,"

FileComb = p256.FileComb  # attach() hands these out; the class lives in p256 (kept after unload)


def _read_exact(f, n):
    b = f.read(n)
    if b is None or len(b) != n:
        raise ValueError("truncated table file")
    return b


def _body_digest(f, pub, off):
    h = hashlib.sha256(_TAG)
    h.update(pub)
    g = hashlib.sha256()  # the table alone, for G's pinned digest
    f.seek(off)
    buf = bytearray(1020)  # 16 chunks make one table
    mv = memoryview(buf)
    left = p256.COMB_BYTES
    while left:
        n = f.readinto(buf) if left >= 1020 else f.readinto(mv[:left])
        if not n:
            raise ValueError("truncated table file")
        h.update(mv[:n])
        g.update(mv[:n])
        left -= n
    return h.digest(), g.digest()


def attach(path, keys, in_ram=False, full=True):
    """Attach tables from the file at path to the matching ecdsa.PublicKey objects in keys
    (sets key.comb); a record for G itself becomes G's table (p256.set_gcomb). Returns (attached, refused): refused counts records that matched a key
    but failed a check, or a bad file. Never raises; a missing file attaches nothing.
    full (default) also runs validate() on each issuer key's table (~65M host instructions,
    ~0.5 s estimated on an ESP32, per key, once per trust-store load); G's table is instead
    pinned by its SHA-256 compiled into this module. full=False trusts the digest and row 1:
    that catches corruption and a table for another key, but NOT a crafted table (one with a
    right row 1 and rows of another key elsewhere can make a forgery verify), so use it only
    where the file is as protected as the code."""
    try:
        f = open(path, "rb")
    except OSError:
        return 0, 0
    attached = refused = 0
    keep = False
    try:
        head = _read_exact(f, FILE_HEADER)
        if head[:4] != MAGIC or head[4] != VERSION or head[5] != TEETH or head[6] != SPACING:
            return 0, 1
        for i in range(head[7]):
            rec = FILE_HEADER + i * RECORD_BYTES
            f.seek(rec)
            hdr = _read_exact(f, RECORD_HEADER)
            pub = hdr[:65]
            if pub[0] != 4:
                refused += 1
                continue
            x = int.from_bytes(pub[1:33], "big")
            y = int.from_bytes(pub[33:65], "big")
            targets = [k for k in keys if k.x == x and k.y == y]
            is_g = x == p256.GX and y == p256.GY
            if not targets and not is_g:
                continue
            body = rec + RECORD_HEADER
            dig, gdig = _body_digest(f, pub, body)
            if dig != hdr[65:] or (is_g and gdig != _G_SHA256):
                refused += 1
                continue
            if in_ram:
                f.seek(body)
                comb = p256.Comb(_read_exact(f, p256.COMB_BYTES))
            else:
                comb = FileComb(f, body)
            if comb.row(1) != (x, y) or (full and not is_g and not validate(comb, x, y)):
                refused += 1
                continue
            for k in targets:
                k.comb = comb
            if is_g:
                p256.set_gcomb(comb)
            attached += 1
            keep = keep or not in_ram
    except Exception:  # a bad file must never stop the trust store from loading
        refused += 1
    finally:
        if not keep:
            f.close()
    return attached, refused


def validate(comb, x, y):
    """True iff comb's rows are exactly the comb table of the point (x, y): T[1] == (x, y),
    T[2^b] == 2^32 * T[2^(b-1)], and T[i] == T[lo] + T[i - lo] for the lowest set bit lo of i
    (checked without inversions). Costly (~51M host instructions): for tests, or a gate that
    does not trust its storage."""
    p = p256.P
    if comb.row(1) != (x, y):
        return False
    for b in range(1, TEETH):
        px, py = comb.row(1 << (b - 1))
        q = p256fast.mul_pow2(px, py, SPACING)  # viper doublings; None on a port without viper
        if q is None:
            from offgate.crypto import p256ref  # the big-integer doublings, loaded on first use
            X, Y, Z = px, py, 1
            for _ in range(SPACING):
                X, Y, Z = p256ref.jdouble(X, Y, Z)
            q = p256.to_affine(X, Y, Z)
        if q != comb.row(1 << b):
            return False
    for i in range(3, p256.COMB_ROWS + 1):
        lo = i & -i
        if lo == i:
            continue
        ax, ay = comb.row(lo)
        bx, by = comb.row(i - lo)
        cx, cy = comb.row(i)
        if not p256.on_curve(cx, cy):
            return False
        dx = bx - ax
        dy = by - ay
        if not dx % p:  # distinct multiples below n: never equal or opposite in a good table
            return False
        # C = A + B  <=>  dy^2 == (xC + xA + xB) dx^2  and  (yC + yA) dx == dy (xA - xC)
        if (dy * dy - (cx + ax + bx) * dx * dx) % p or ((cy + ay) * dx - dy * (ax - cx)) % p:
            return False
    return True
