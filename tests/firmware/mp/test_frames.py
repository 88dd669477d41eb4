# Sync link framing (offgate/frames.py), on MicroPython and CPython.
from offgate.sync import frames
from offgate.sync.frames import Deframer, encode

# docs/protocol.md "Sync protocol" test vectors
VEC_ERROR = "4f475359017f0011a1016e65787065637465642048454c4c4f7acf8e39"
VEC_REQUEST = ("4f4753590110001f00000001a1626f706673746174757390eff014b12aa739594be8944b55dd48a32a3725")


def unhex(s):
    return bytes(int(s[i:i + 2], 16) for i in range(0, len(s), 2))


def test_vector_encodes_and_decodes():
    f = unhex(VEC_ERROR)
    payload = b"\xa1\x01\x6eexpected HELLO"
    assert encode(frames.ERROR, payload) == f
    assert Deframer().feed(f) == [(frames.ERROR, payload)]
    r = Deframer().feed(unhex(VEC_REQUEST))
    assert len(r) == 1 and r[0][0] == frames.REQUEST and len(r[0][1]) == 31


def test_roundtrip_and_byte_by_byte():
    fs = [encode(t, bytes([t]) * n) for t, n in ((1, 0), (2, 1), (16, 300), (17, 5000))]
    stream = b"".join(fs)
    d = Deframer()
    assert d.feed(stream) == [(1, b""), (2, b"\x02"), (16, b"\x10" * 300), (17, b"\x11" * 5000)]
    d = Deframer()
    got = []
    for i in range(len(stream)):
        got += d.feed(stream[i:i + 1])
    assert [t for t, _ in got] == [1, 2, 16, 17] and d.errors == 0 and d.pending() == 0


def test_garbage_between_frames_is_skipped():
    a, b = encode(1, b"hello"), encode(2, b"world")
    d = Deframer()
    out = d.feed(b"\x00\xffOGS" + b"noise" + a + b"OGSY" + b"OGSYjunk" + b + b"tail")
    assert out == [(1, b"hello"), (2, b"world")]
    assert d.errors > 0


def test_bad_crc_bad_version_and_oversize_rejected_then_resync():
    good = encode(3, b"ok")
    bad_crc = bytearray(encode(3, b"xx"))
    bad_crc[-1] ^= 1
    bad_ver = bytearray(encode(3, b"yy"))
    bad_ver[4] = 9
    huge = b"OGSY\x01\x10\xff\xff"  # length 65535 > MAX_PAYLOAD
    d = Deframer()
    assert d.feed(bytes(bad_crc) + bytes(bad_ver) + huge + good) == [(3, b"ok")]
    assert d.errors >= 3


def test_forged_length_does_not_hide_a_real_frame():
    good = encode(4, b"real")
    forged = b"OGSY\x01\x10\x00\x30"  # claims 48 bytes: swallows the good frame, then fails its CRC
    d = Deframer()
    out = d.feed(forged + good + bytes(60))
    assert (4, b"real") in out


def test_truncated_frame_waits_then_completes_or_is_dropped():
    f = encode(5, b"abcdef")
    d = Deframer()
    assert d.feed(f[:7]) == [] and d.feed(f[7:-1]) == []
    assert d.feed(f[-1:]) == [(5, b"abcdef")]
    d2 = Deframer()
    assert d2.feed(f[:-2]) == []  # the link closes here: nothing was delivered


def test_encode_refuses_oversize():
    try:
        encode(1, bytes(frames.MAX_PAYLOAD + 1))
        assert False, "oversize frame encoded"
    except frames.FrameError:
        pass


def test_a_frame_read_in_pieces_is_one_buffer_of_its_size():
    """A 4 KiB request frame arriving in 1 KiB reads: once its header is in, the deframer holds one
    buffer of the frame's size (no growth by copies), and lets it go once the frame is out."""
    f = encode(16, bytes(range(256)) * 16)
    d = Deframer()
    assert d.feed(f[:1024]) == [] and len(d.buf) == len(f)
    held = d.buf
    assert d.feed(memoryview(f)[1024:3000]) == [] and d.buf is held
    assert d.feed(f[3000:]) == [(16, bytes(range(256)) * 16)]
    assert d.pending() == 0 and len(d.buf) == 0
