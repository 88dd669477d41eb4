import struct
from offgate.denylist import DenyList, DenyListError, check_bytes
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
