# batch._row (a pull's rows written head by head) must give exactly what cbor.dumps of the row list
# gives: the batch format (docs/protocol.md "Batch summaries") is unchanged by the faster encoder.
import sys

try:
    import cryptolib  # noqa: F401
except ImportError:  # CPython: the AES shim the sync tests use (batch imports aesccm)
    sys.path.append(__file__.rsplit("/", 2)[0] + "/syncshim")

from offgate import batch, cbor  # noqa: E402


def test_row_matches_generic_encoder():
    for seq in (1, 23, 24, 255, 256, 65535, 65536, 0xFFFFFFFF, 0x100000000):
        for cti in (None, b"\x01" * 8):
            for rc in (0, 14, 23, 24, "OK"):
                for op in (True, False):
                    out = bytearray()
                    batch._row(out, seq, 800000000 + seq, cti, seq % 300, op, rc, seq % 7)
                    want = cbor.dumps([seq, 800000000 + seq, cti, seq % 300, 1 if op else 0, rc, seq % 7])
                    assert bytes(out) == want, (seq, cti, rc, op)
