# offgate.codec.base45 on MicroPython: RFC 9285 examples and strict rejects.
from offgate.codec import base45

EXAMPLES = [
    (b"AB", "BB8"), (b"Hello!!", "%69 VD92EX0"), (b"base-45", "UJCLQE7W581"), (b"ietf!", "QED8WEX0"),
    (b"", ""), (b"\x00", "00"), (b"\x00\x00", "000"), (b"\xff", "U5"), (b"\xff\xff", "FGW"),
]


def test_rfc_examples_encode():
    for raw, text in EXAMPLES:
        assert base45.encode(raw) == text, (raw, base45.encode(raw))


def test_rfc_examples_decode():
    for raw, text in EXAMPLES:
        assert base45.decode(text) == raw, text
        assert base45.decode(text.encode()) == raw, text
        assert base45.decode(bytearray(text.encode())) == raw, text
        assert type(base45.decode(text)) is bytes


def _rejects(t):
    try:
        r = base45.decode(t)
    except ValueError as e:
        return str(e)
    raise AssertionError("accepted %r -> %r" % (t, r))


def test_out_of_range():
    assert "range" in _rejects("GGW")  # 65536
    assert "range" in _rejects(":::")  # 44 + 44*45 + 44*2025 = 91124
    assert "range" in _rejects("V5")  # 256
    assert "range" in _rejects("::")
    assert "range" in _rejects("BB8GGW")


def test_dangling_char():
    for t in ("0", "BB80", "BB8BB80"):
        assert "dangling" in _rejects(t)


def test_bad_chars():
    for t in ("bb8", "BB8a", "BB\n", "BB8\x00\x00\x00", "AB=", "A\u00e9B", "AB#", "AB_", "AB,",
              b"\xff\xff\xff", "\t00"):
        assert "character" in _rejects(t), t


def test_every_alphabet_char_accepted():
    a = base45.ALPHABET
    for i in range(45):
        c = chr(a[i])
        assert base45.decode(c + "0") == bytes([i])


def test_roundtrip_all_pairs_sampled():
    for hi in range(0, 256, 7):
        for lo in range(0, 256, 5):
            b = bytes([hi, lo, lo ^ hi])
            assert base45.decode(base45.encode(b)) == b


def test_max_values():
    assert base45.decode("FGW") == b"\xff\xff"
    assert base45.decode("U5") == b"\xff"
