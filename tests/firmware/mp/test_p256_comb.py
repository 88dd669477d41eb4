# Firmware unit tests for the comb (fixed-point table) path: offgate.crypto.p256 comb helpers and
# offgate.crypto.keytables table binding; run on MicroPython (128k heap) and CPython by mptest.py.
# probe_* functions are called from tests/firmware/crypto/test_p256_fast.py through the MicroPython oracle.
import hashlib

from offgate import ecdsa
from offgate.crypto import keytables, p256, p256ref
from p256vectors import G_MSG, G_PUB, G_SIG

N = p256.N
P = p256.P
TMP = "/tmp/offgate_test_p256_comb.bin"


def _write_file(path, records):
    """records: [(pub65, [table chunks], digest or None for the right one)]; chunks are
    memoryview slices and small patches, so no 16 KB copy is made (128k heap)."""
    with open(path, "wb") as f:
        f.write(keytables.MAGIC + bytes([keytables.VERSION, keytables.TEETH, keytables.SPACING, len(records)]))
        for pub, chunks, dig in records:
            if dig is None:
                h = hashlib.sha256(b"offgate comb v1\0")
                h.update(pub)
                for c in chunks:
                    h.update(c)
                dig = h.digest()
            f.write(pub)
            f.write(dig)
            for c in chunks:
                f.write(c)


def _flip(t, i, bit):
    """t (a list of chunks) with bit flipped in byte i, as a new list of chunks (no copy)."""
    out = []
    for c in t:
        if 0 <= i < len(c):
            out += [c[:i], bytes([c[i] ^ bit]), c[i + 1:]]
        else:
            out.append(c)
        i -= len(c)
    return out


def _gtable():
    """G's table as a list of memoryview chunks (joining would need one 16 KB block)."""
    return list(p256.gcomb().chunks())


def _reset_g():
    p256.set_gcomb(None)


def test_comb_digits_reconstruct():
    for k in (0, 1, 2, N - 1, N >> 1, (1 << 256) - 1, 0x8000000000000000000000000000000000000000000000000000000000000001,
              0xC0FFEE1234567890ABCDEF):
        d = p256.comb_digits(k)
        v = 0
        for j in range(32):
            for b in range(8):
                if (d[j] >> b) & 1:
                    v += 1 << (32 * b + j)
        assert v == k, k


def test_g_table_rows():
    g = p256.gcomb()
    assert g.row(1) == (p256.GX, p256.GY)
    assert g.row(2) == p256ref.mul(1 << 32, p256.GX, p256.GY)
    assert g.row(3) == p256ref.mul((1 << 32) + 1, p256.GX, p256.GY)
    assert g.row(255)[0] < P and p256.on_curve(*g.row(255))


def test_madd_edge_cases():
    G = (p256.GX, p256.GY)
    two = p256.to_affine(*p256ref.jdouble(G[0], G[1], 1))
    assert p256.to_affine(*p256ref.madd(G[0], G[1], 1, G[0], G[1])) == two  # P + P
    assert p256ref.madd(G[0], G[1], 1, G[0], P - G[1])[2] == 0  # P + (-P)
    assert p256ref.madd(0, 0, 0, G[0], G[1]) == (G[0], G[1], 1)  # infinity + P
    X, Y, Z = p256ref.jdouble(two[0], two[1], 1)  # 4G, Z != 1
    assert p256.to_affine(*p256ref.madd(X, Y, Z, G[0], G[1])) == p256ref.mul(5, *G)


def test_comb_verify_for_key_g():
    k = ecdsa.parse_public_key(G_PUB)
    assert ecdsa.verify_key(k, G_MSG, G_SIG) is True
    k.comb = p256.gcomb()  # G's own table is a valid comb table for the key G
    assert ecdsa.verify_key(k, G_MSG, G_SIG) is True
    assert ecdsa.verify_key(k, G_MSG + b"!", G_SIG) is False
    bad = bytearray(G_SIG)
    bad[40] ^= 4
    assert ecdsa.verify_key(k, G_MSG, bytes(bad)) is False
    s = int.from_bytes(G_SIG[32:], "big")
    assert ecdsa.verify_key(k, G_MSG, G_SIG[:32] + (N - s).to_bytes(32, "big")) is True


def test_comb_core_edge_scalars():
    # u1 == 0 and u2 == 0 cannot come through SHA-256 / range checks; drive verify_comb directly
    g = p256.gcomb()
    d = 1  # key G, so the G table is the key's table
    k = 0x1234567
    r = p256ref.mul(k, p256.GX, p256.GY)[0] % N
    s = p256.inv(k, N) * r * d % N  # signature of e = 0: u1 = 0
    assert p256ref.verify_comb(0, r, s, g) is True
    assert p256ref.verify_core(0, r, s, p256.GX, p256.GY) is True
    # e = -r*d: the result is infinity (u1*G = -u2*G), which must fail
    assert p256ref.verify_comb((N - r) % N, r, 1, g) is False
    assert p256ref.verify_core((N - r) % N, r, 1, p256.GX, p256.GY) is False


def test_attach_good_and_bound():
    t = _gtable()
    _write_file(TMP, [(G_PUB, t, None)])
    k = ecdsa.parse_public_key(G_PUB)
    other = ecdsa.parse_public_key(b"\x04" + p256.GX.to_bytes(32, "big") + (P - p256.GY).to_bytes(32, "big"))
    try:
        assert keytables.attach(TMP, [k, other]) == (1, 0)
        assert k.comb is not None and other.comb is None  # a record binds to its own key only
        assert ecdsa.verify_key(k, G_MSG, G_SIG) is True
        assert ecdsa.verify_key(k, G_MSG + b"x", G_SIG) is False
        k2 = ecdsa.parse_public_key(G_PUB)
        assert keytables.attach(TMP, [k2], in_ram=True) == (1, 0)
        assert ecdsa.verify_key(k2, G_MSG, G_SIG) is True
    finally:
        _reset_g()


def test_attach_refuses_corrupt_or_mismatched():
    t = _gtable()
    neg_g = b"\x04" + p256.GX.to_bytes(32, "big") + (P - p256.GY).to_bytes(32, "big")
    try:
        for records in (
            [(G_PUB, _flip(t, 100, 1), None)],  # G record, right digest, not G's table (pin)
            [(G_PUB, t, b"\x00" * 32)],  # wrong digest
            [(G_PUB, _flip(t, 5000, 0x10), hashlib.sha256(b"x").digest())],  # corrupted
            [(neg_g, t, None)],  # G's table under the key -G: row 1 is not the key
        ):
            _write_file(TMP, records)
            k = ecdsa.parse_public_key(records[0][0])
            assert keytables.attach(TMP, [k]) == (0, 1)
            assert k.comb is None
            # the key still verifies, the generic way
            assert ecdsa.verify_key(k, G_MSG, G_SIG) is (records[0][0] == G_PUB)
        # truncated file, bad magic, missing file
        for case in range(3):
            _write_file(TMP, [(G_PUB, t[:len(t) // 2] if case == 0 else t, None)])  # 0: truncated
            if case:
                with open(TMP, "r+b") as f:  # 1: bad magic, 2: bad version
                    f.seek(0 if case == 1 else 4)
                    f.write(b"X" if case == 1 else b"\x02")
            k = ecdsa.parse_public_key(G_PUB)
            assert keytables.attach(TMP, [k]) == (0, 1)
            assert k.comb is None
        assert keytables.attach(TMP + ".missing", [k]) == (0, 0)
    finally:
        _reset_g()


def test_validate_catches_crafted_table():
    # the table of the key -G with row 1 replaced by G: right digest, right row 1, yet rows
    # 2..255 belong to another key. Only validate() can tell; attach() refuses it.
    g = p256.gcomb()

    class Crafted:
        def row(self, c):
            x, y = g.row(c)
            return (x, y) if c == 1 else (x, P - y)

    assert keytables.validate(Crafted(), p256.GX, p256.GY) is False
    assert keytables.validate(p256.gcomb(), p256.GX, p256.GY) is True


# ---------------------------------------------------------------- probes for tests/firmware/crypto/test_p256_fast.py
_keys = {}


def probe_attach(path, pubs, full):
    """Attach the tables in path to fresh keys for the 65-byte pubs (concatenated); returns
    (attached, refused). Closes the files of the previous probe_attach."""
    for k in _keys.values():
        if isinstance(k.comb, keytables.FileComb):
            k.comb.f.close()
    if isinstance(p256.GCOMB, keytables.FileComb):  # a G record in the file became G's table
        p256.GCOMB.f.close()
        p256.set_gcomb(None)
    _keys.clear()
    keys = []
    for i in range(0, len(pubs), 65):
        k = ecdsa.parse_public_key(pubs[i:i + 65])
        _keys[pubs[i:i + 65]] = k
        keys.append(k)
    return list(keytables.attach(path, keys, full=bool(full)))


def probe_verify(pub, msg, sig):
    """[generic verify, verify with the attached key (comb path if its table attached), attached?]"""
    k = _keys[pub]
    return [ecdsa.verify(pub, msg, sig), ecdsa.verify_key(k, msg, sig), k.comb is not None]


def probe_count():
    return len(_keys)
