"""Sync framing, property-tested: the firmware's deframer (offgate/sync/frames.py, imported here under
CPython; tests/firmware/mp/test_frames.py runs it on MicroPython) and the host's independent one must
deliver every frame through garbage and arbitrary chunking, and never raise."""
from hypothesis import given, settings
from hypothesis import strategies as st

import synchelp  # noqa: F401  (puts firmware/ on sys.path)
from offgate.sync import frames as fw
from offgate_host.sync import frames as host

payloads = st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=600)), max_size=6)
garbage = st.binary(max_size=40).filter(lambda g: b"OGSY" not in g)


def chunks(data, cuts):
    cuts = sorted({c % (len(data) + 1) for c in cuts})
    out, prev = [], 0
    for c in cuts + [len(data)]:
        out.append(data[prev:c])
        prev = c
    return out


@settings(max_examples=300, deadline=None)
@given(payloads, st.lists(garbage, min_size=7, max_size=7), st.lists(st.integers(0, 10 ** 6), max_size=12))
def test_frames_survive_garbage_and_chunking(items, junk, cuts):
    stream = junk[0]
    for i, (t, p) in enumerate(items):
        assert fw.encode(t, p) == host.encode_frame(t, p)
        stream += fw.encode(t, p) + junk[(i + 1) % 7]
    for D in (fw.Deframer, host.Deframer):
        d = D()
        got = []
        for c in chunks(stream, cuts):
            got += d.feed(c)
        assert got == list(items)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000), st.lists(st.integers(0, 10 ** 6), max_size=8))
def test_random_bytes_never_raise_and_bound_the_buffer(data, cuts):
    for D in (fw.Deframer, host.Deframer):
        d = D()
        for c in chunks(data, cuts):
            for t, p in d.feed(c):
                assert len(p) <= fw.MAX_PAYLOAD
        assert len(d.buf) <= fw.HEADER + fw.MAX_PAYLOAD + fw.TRAILER


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=300), st.integers(0, 10 ** 6))
def test_truncated_or_bitflipped_frame_is_never_delivered(p, k):
    f = fw.encode(0x10, p)
    cut = k % len(f)
    assert fw.Deframer().feed(f[:cut]) == [] and host.Deframer().feed(f[:cut]) == []
    flipped = bytearray(f)
    flipped[k % len(f)] ^= 1 << (k % 8)
    for D in (fw.Deframer, host.Deframer):
        assert all(x != (0x10, p) for x in D().feed(bytes(flipped)))
