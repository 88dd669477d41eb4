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


def test_a_run_of_terminators_is_one_and_empty_lines_are_no_scan():
    # field case double-terminator: CR CR, LF CR, CR LF CR LF after one code gave a phantom EMPTY
    for term in (b"\r\r", b"\n\r", b"\r\n\r\n", b"\r\n\n\r\r"):
        asm = LineAssembler(64)
        assert feed_all(asm, [b"OG1:A" + term + b"OG1:B" + term]) == [b"OG1:A", b"OG1:B"], term
        asm = LineAssembler(64)  # split between the terminators
        assert feed_all(asm, [b"OG1:A" + term[:1], term[1:]]) == [b"OG1:A"], term
    assert feed_all(LineAssembler(64), [b"\r\r\n\n"]) == []


def test_partial_line_dropped_not_glued():
    asm = LineAssembler(64)
    assert feed_all(asm, [b"NOISE"]) == []
    assert asm.drop_partial() and asm.dropped == 1 and asm.pending() == 0
    assert feed_all(asm, [b"OG1:A\r"]) == [b"OG1:A"]
    assert not asm.drop_partial()


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
