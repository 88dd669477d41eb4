from offgate.scanner import LineAssembler
from offgate import reasons as R


def feed_all(asm, chunks):
    out = []
    for c in chunks:
        out.extend(asm.feed(c))
    return out


def test_terminators_cr_lf_crlf():
    asm = LineAssembler(64)
    assert feed_all(asm, [b"A\rB\nC\r\nD\r", b"\nE\r"]) == [b"A", b"B", b"C", b"D", b"E"]


def test_split_anywhere():
    asm = LineAssembler(64)
    data = b"OG1:ABC\r\nOG1:DEF\r"
    out = feed_all(asm, [data[i:i + 1] for i in range(len(data))])
    assert out == [b"OG1:ABC", b"OG1:DEF"]


def test_empty_lines_reported():
    asm = LineAssembler(64)
    assert feed_all(asm, [b"\r\r\n\n"]) == [b"", b"", b""]


def test_over_long_line_dropped_once_then_recovers():
    asm = LineAssembler(64)
    out = feed_all(asm, [b"X" * 50, b"Y" * 500, b"\rOK\r"])
    assert out == [R.LINE_TOO_LONG, b"OK"]
    assert asm.pending() == 0


def test_unterminated_noise_costs_no_memory():
    asm = LineAssembler(64)
    for _ in range(100):
        assert feed_all(asm, [b"\x00" * 128]) == []
    assert asm.pending() == 64
