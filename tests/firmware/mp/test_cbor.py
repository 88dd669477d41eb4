# offgate.codec.cbor on MicroPython: RFC 8949 Appendix A vectors (the accepted subset) and strict rejects.
from binascii import unhexlify as H

from offgate.codec import cbor

# (value, hex) from RFC 8949 Appendix A that are inside the gate's subset.
VECTORS = [
    (0, "00"), (1, "01"), (10, "0a"), (23, "17"), (24, "1818"), (25, "1819"), (100, "1864"),
    (1000, "1903e8"), (1000000, "1a000f4240"), (1000000000000, "1b000000e8d4a51000"),
    (18446744073709551615, "1bffffffffffffffff"), (-18446744073709551616, "3bffffffffffffffff"),
    (-1, "20"), (-10, "29"), (-100, "3863"), (-1000, "3903e7"),
    (False, "f4"), (True, "f5"), (None, "f6"),
    (b"", "40"), (b"\x01\x02\x03\x04", "4401020304"),
    ("", "60"), ("a", "6161"), ("IETF", "6449455446"), ("\"\\", "62225c"),
    ("\u00fc", "62c3bc"), ("\u6c34", "63e6b0b4"), ("\U00010151", "64f0908591"),
    ([], "80"), ([1, 2, 3], "83010203"), ([1, [2, 3], [4, 5]], "8301820203820405"),
    (list(range(1, 26)), "98190102030405060708090a0b0c0d0e0f101112131415161718181819"),
    ({}, "a0"), ({1: 2, 3: 4}, "a201020304"), ({"a": 1, "b": [2, 3]}, "a26161016162820203"),
    (["a", {"b": "c"}], "826161a161626163"),
    ({"a": "A", "b": "B", "c": "C", "d": "D", "e": "E"}, "a56161614161626142616361436164614461656145"),
]

# RFC 8949 Appendix A items outside the subset, plus other strict-rule violations.
REJECTS = [
    "f90000", "f93c00", "f97bff", "fa47c35000", "fb3ff199999999999a", "f97c00", "f97e00",  # floats
    "f7",  # undefined
    "f0", "f818", "f8ff", "e0", "f3",  # other simple values
    "c074323031332d30332d32315432303a30343a30305a", "c11a514b67b0", "d74401020304",  # tags
    "d818456449455446", "d82076687474703a2f2f7777772e6578616d706c652e636f6d",
    "c249010000000000000000", "c349010000000000000000",  # bignums (tags 2/3)
    "5f42010243030405ff", "7f657374726561646d696e67ff", "9fff", "9f018202039f0405ffff",  # indefinite
    "bf61610161629f0203ffff", "bf6346756ef563416d7421ff", "ff",
    "1c", "3d", "5e", "7c", "9d", "be", "dc", "fd",  # reserved additional info 28-30
    "", "18", "19ff", "1a0000", "1b00000000000000",  # truncated heads
    "4401", "62c3", "8301", "a101",  # truncated bodies
    "0000", "80ff", "f6f6",  # trailing bytes
    "a201020103", "a2616101616102",  # duplicate keys
    "a14001", "a1f401", "a1f601", "a18001", "a1a001",  # keys other than int/text
    "62c080", "63eda080", "64f4908080", "61ff", "6180", "62e282", "63e08080", "64f0808080",  # bad UTF-8
    "5bffffffffffffffff", "9bffffffffffffffff", "bbffffffffffffffff",  # huge counts
    "9a00010000", "ba00008000",  # counts larger than the input
]


def test_vectors_decode():
    for v, h in VECTORS:
        got = cbor.loads(H(h))
        assert got == v, (h, got)
        assert type(got) is type(v), h


def test_vectors_encode():
    for v, h in VECTORS:
        assert cbor.dumps(v) == H(h), (v, cbor.dumps(v))


def test_bytes_result_type():
    r = cbor.loads(H("4401020304"))
    assert type(r) is bytes
    r = cbor.loads(bytearray(H("4401020304")))
    assert type(r) is bytes
    r = cbor.loads(memoryview(H("824101f6")))
    assert r == [b"\x01", None] and type(r[0]) is bytes


def test_rejects():
    for h in REJECTS:
        try:
            r = cbor.loads(H(h))
        except cbor.CBORError:
            continue
        raise AssertionError("accepted %s -> %r" % (h, r))


def test_error_is_valueerror():
    assert issubclass(cbor.CBORError, ValueError)
    try:
        cbor.loads(b"\x9f\xff")
    except ValueError as e:
        assert "indefinite" in str(e)
    else:
        raise AssertionError


def test_error_messages():
    cases = [("f97e00", "float"), ("f7", "undefined"), ("c1 00", "tag 1"), ("0000", "trailing"),
             ("a2 01 02 01 03", "duplicate"), ("62c080", "UTF-8"), ("1c", "reserved")]
    for h, word in cases:
        try:
            cbor.loads(H(h.replace(" ", "")))
        except cbor.CBORError as e:
            assert word in str(e), (h, str(e))
        else:
            raise AssertionError(h)


def test_tag18_default_and_allow_set():
    t = cbor.loads(H("d28400"[:4] + "40a040f6"))
    assert isinstance(t, cbor.Tag) and t.tag == 18 and t.value == [b"", {}, b"", None]
    for bad in ("c100", "d800", "d81300"):
        try:
            cbor.loads(H(bad))
        except cbor.CBORError:
            pass
        else:
            raise AssertionError(bad)
    t = cbor.loads(H("c11a514b67b0"), tags=(1,))
    assert t == cbor.Tag(1, 1363896240)
    try:
        cbor.loads(H("d200"), tags=())
    except cbor.CBORError:
        pass
    else:
        raise AssertionError
    # non-shortest tag head is still tag 18
    assert cbor.loads(H("d81200")) == cbor.Tag(18, 0)


def test_depth_limit():
    ok = b"\x81" * 8 + b"\x00"
    assert cbor.loads(ok) == [[[[[[[[0]]]]]]]]
    for bad in (b"\x81" * 9 + b"\x00", b"\xa1\x00" * 9 + b"\x00", b"\xd2" * 9 + b"\x00",
                b"\x81" * 10000 + b"\x00"):
        try:
            cbor.loads(bad)
        except cbor.CBORError as e:
            assert "nesting" in str(e)
        else:
            raise AssertionError(bad[:12])
    assert cbor.loads(b"\x81\x81\x00", max_depth=2) == [[0]]
    try:
        cbor.loads(b"\x81\x81\x00", max_depth=1)
    except cbor.CBORError:
        pass
    else:
        raise AssertionError


def test_string_length_limit():
    assert cbor.loads(b"\x59\x04\x00" + b"x" * 1024) == b"x" * 1024
    assert cbor.loads(b"\x79\x04\x00" + b"x" * 1024) == "x" * 1024
    for h in (b"\x59\x04\x01", b"\x79\x04\x01"):
        try:
            cbor.loads(h + b"x" * 1025)
        except cbor.CBORError as e:
            assert "longer" in str(e)
        else:
            raise AssertionError
    assert cbor.loads(b"\x45abcde", max_len=5) == b"abcde"
    try:
        cbor.loads(b"\x45abcde", max_len=4)
    except cbor.CBORError:
        pass
    else:
        raise AssertionError


def test_non_shortest_heads_accepted():
    assert cbor.loads(H("1800")) == 0
    assert cbor.loads(H("1b0000000000000001")) == 1
    assert cbor.loads(H("5800")) == b""
    assert cbor.loads(H("980101")) == [1]


def test_valid_utf8():
    for s in ("\u007f", "\u0080", "\u07ff", "\u0800", "\ud7ff"[:0] + "\ue000", "\uffff",
              "\U00010000", "\U0010ffff", "za\u00e9\u4e2d\U0001f600"):
        assert cbor.loads(cbor.dumps(s)) == s


def test_map_keys_order_and_types():
    d = cbor.loads(H("a3 20 01 61 61 02 00 03".replace(" ", "")))
    assert d == {-1: 1, "a": 2, 0: 3}
    # plain dict: deterministic (bytewise encoded-key) order; OrderedDict: order as given
    assert cbor.dumps({3: 0, 1: 0, "a": 0, -1: 0, 24: 0}) == H("a5010003001818002000616100")
    from collections import OrderedDict
    o = OrderedDict()
    o[3] = 0
    o[1] = 0
    assert cbor.dumps(o) == H("a203000100")


def test_dumps_types():
    assert cbor.dumps((1, 2)) == H("820102")
    assert cbor.dumps(bytearray(b"\x01")) == H("4101")
    assert cbor.dumps(cbor.Tag(18, [])) == H("d280")
    assert cbor.dumps(-65537) == H("3a00010000")
    for bad in (1.5, 2 ** 64, -(2 ** 64) - 1, object()):
        try:
            cbor.dumps(bad)
        except ValueError:
            pass
        else:
            raise AssertionError(bad)


def test_roundtrip_nested():
    obj = {1: [b"\x00" * 300, "t" * 300, {"k": None}], -65537: [True, False], "z": 2 ** 32}
    assert cbor.loads(cbor.dumps(obj)) == obj
