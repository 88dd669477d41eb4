import struct
from offgate.policy.denylist import DenyList, DenyListError, check_bytes
from fwutil import scratch_dir, write, cti


def image(ids):
    ids = sorted(set(ids))
    return b"OGDL\x01\x00\x00\x00" + struct.pack(">I", len(ids)) + b"".join(ids)


def test_lookup():
    d = scratch_dir("dl")
    ids = [cti(i * 7) for i in range(500)]
    write(d + "/deny.bin", image(ids))
    dl = DenyList(d + "/deny.bin")
    assert dl.count == 500
    for i in range(0, 500, 13):
        assert dl.contains(cti(i * 7))
        assert not dl.contains(cti(i * 7 + 1))
    assert not dl.contains(b"short")


def test_missing_file_is_empty_list():
    dl = DenyList("/nonexistent/deny.bin")
    assert dl.count == 0 and not dl.contains(cti(1))


def test_bad_file_rejected_and_current_list_kept():
    d = scratch_dir("dl")
    write(d + "/good.bin", image([cti(1)]))
    write(d + "/bad.bin", image([cti(1), cti(2)])[:-3])
    dl = DenyList(d + "/good.bin")
    try:
        dl.open(d + "/bad.bin")
        assert False, "truncated list accepted"
    except DenyListError:
        pass
    assert dl.contains(cti(1))


def test_check_bytes():
    assert check_bytes(image([cti(3), cti(1)])) == 2
    for bad in (b"", b"XXXX" + image([])[4:], image([cti(1)]) + b"\x00",
                b"OGDL\x01\x00\x00\x00" + struct.pack(">I", 2) + cti(2) + cti(1)):
        try:
            check_bytes(bad)
            assert False
        except DenyListError:
            pass


def image2(ids, serial=5, issued=1800000000, sig=b"\xd2\x84sig"):
    """A version-2 list (the signature is not checked at load, only at install: any bytes)."""
    from offgate.checksum import crc32
    body = b"OGDL\x02\x00\x00\x00" + struct.pack(">IIII", len(ids), serial, issued, 0) + b"".join(ids)
    out = body + struct.pack(">H", len(sig)) + sig
    return out + struct.pack(">I", crc32(out) & 0xFFFFFFFF)


def test_v2_lookup_serial_and_age():
    d = scratch_dir("dl2")
    ids = [cti(i * 3) for i in range(300)]
    write(d + "/deny.bin", image2(ids))
    dl = DenyList(d + "/deny.bin")
    assert dl.count == 300 and dl.serial == 5 and dl.issued == 1800000000
    assert dl.contains(cti(299 * 3)) and dl.contains(cti(0)) and not dl.contains(cti(1))
    assert dl.issued == 1800000000 and dl._h == 24
    assert not dl.stale(1800000100, 0) and not dl.stale(1800000100, 100) and dl.stale(1800000101, 100)
    assert check_bytes(image2(ids)) == 300


def test_v2_damage_at_rest_is_detected_and_reported():
    """A flipped bit inside an id, two swapped ids, a cut tail: found at load, never searched."""
    d = scratch_dir("dl2")
    ids = [cti(i * 3) for i in range(100)]
    good = image2(ids)
    write(d + "/good.bin", good)
    dl = DenyList(d + "/good.bin")
    flipped = bytearray(good)
    flipped[24 + 8 * 40 + 3] ^= 0x10
    swapped = image2(ids[:10] + [ids[11], ids[10]] + ids[12:])
    for name, data, what in (("flip", bytes(flipped), "damaged"), ("swap", swapped, "ascending"),
                             ("cut", good[:-1], "length"), ("hdr", good[:5] + b"\x01" + good[6:], "kind")):
        write(d + "/" + name, data)
        try:
            dl.open(d + "/" + name)
            assert False, name + " accepted"
        except DenyListError as e:
            assert what in str(e) and name in str(e), (name, str(e))
        try:
            check_bytes(data)
            assert False, name + " accepted by check_bytes"
        except DenyListError:
            pass
    assert dl.count == 100 and dl.serial == 5 and dl.contains(ids[40])  # the good list stays


def test_v1_still_loads_unsigned():
    d = scratch_dir("dl2")
    write(d + "/deny.bin", image([cti(1)]))
    dl = DenyList(d + "/deny.bin")
    assert dl.count == 1 and dl.serial == 0 and dl.issued == 0 and dl._h == 12 and dl.stale(5, 10)
