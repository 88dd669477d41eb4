# batchrows.row (a pull's rows from read() dicts, written head by head) must give exactly what cbor.dumps of the row list
# gives: the batch format (docs/protocol.md "Batch summaries") is unchanged by the faster encoder.
import sys

try:
    import cryptolib  # noqa: F401
except ImportError:  # CPython: the AES shim the sync tests use (batch imports aesccm)
    sys.path.append(__file__.rsplit("/", 3)[0] + "/support/syncshim")

from offgate.codec import cbor
from offgate.sync import batch, batchrows  # noqa: E402


def test_row_matches_generic_encoder():
    for seq in (1, 23, 24, 255, 256, 65535, 65536, 0xFFFFFFFF, 0x100000000):
        for cti in (None, b"\x01" * 8):
            for rc in (0, 14, 23, 24, "OK"):
                for op in (True, False):
                    out = bytearray()
                    batchrows.row(out, seq, 800000000 + seq, cti, seq % 300, op, rc, seq % 7)
                    want = cbor.dumps([seq, 800000000 + seq, cti, seq % 300, 1 if op else 0, rc, seq % 7])
                    assert bytes(out) == want, (seq, cti, rc, op)


class _DictsOnly:
    """The same log seen only through read() (the dict path of batch.build)."""

    def __init__(self, log):
        self._log = log
        self.not_logged = log.not_logged

    def acked(self):
        return self._log.acked()

    def head(self):
        return self._log.head()

    def read(self, a, n):
        return self._log.read(a, n)


def test_build_from_raw_records_equals_dict_path():
    import os
    from offgate.log.oplog import OpLog
    d = "/tmp/offgate_test_batchrow_%d" % (int.from_bytes(os.urandom(4), "big"))
    os.mkdir(d)
    log = OpLog(d + "/log", 64 + 32 * 40, 8)  # 40 records per segment
    log.recover()
    for i in range(150):  # over two segments; small and large times, with and without cti, misses
        t = 1800000000 + i * 997 if i % 7 else 60000 + i
        log.append(t, bytes([i % 256]) * 8 if i % 3 else None, i * 70000, "OPEN" if i % 4 else "DENY", i % 30)
        if i % 11 == 0:
            log._missed = i  # decisions not logged before the next record
    for n in (1, 39, 40, 100):
        import gc
        import hashlib
        raw = batch.build(log, 3, {}, n)
        # the raw path also reports chain breaks (none here): a 12th map entry "breaks": []
        assert raw[0] == 0xAC and raw[-8:] == b"\x66breaks\x80", n
        want = hashlib.sha256(memoryview(raw)[1:-8]).digest()
        raw = None
        gc.collect()
        via = batch.build(_DictsOnly(log), 3, {}, n)
        assert via[0] == 0xAB and hashlib.sha256(memoryview(via)[1:]).digest() == want, n
        via = None
        gc.collect()
