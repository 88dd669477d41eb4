"""The operation log's 32-byte record format (docs/oplog.md "Records"): the firmware's writer (on
MicroPython) against the host's own decoder (offgate_host.ledger.ledger.ledger.decode_record: struct + zlib) and
chain (hashlib), on a fixed vector and on a few hundred records over several segments."""
import hashlib
import json
import random
import struct
import zlib
from pathlib import Path

import pytest

from offgate_host.ledger.ledger import chain_next, chain_next_body, decode_record
from offgate_host.ledger.pull import _normalize_batch


@pytest.fixture(scope="module")
def mp(mp_isolated):
    return mp_isolated


T = 1800000000
# docs/oplog.md "Vector": segment 1 of a new log holding an OPEN (cti 0102..08, ctr 7) and a noise DENY
# (reason 14, no cti, 3 decisions not logged before it)
VECTOR = bytes.fromhex(
    "4f474c310200000000000001000000010000000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000ed9b772c"
    "4f01000100000001 6b49d200 00000007 0102030405060708 00000000 0ffcc1f7".replace(" ", "")
    + "4f000e0000000002 6b49d23c 00000000 0000000000000000 00000003 eed5f3e4".replace(" ", ""))
VECTOR_RECS = [[T, bytes(range(1, 9)), 7, "OPEN", 0, 0], [T + 60, None, 0, "DENY", 14, 3]]


def _spec(recs):
    return json.dumps([[t, c.hex() if c else None, ctr, d, rc, m] for t, c, ctr, d, rc, m in recs])


def _segments(root):
    return sorted((Path(root) / "oplog").glob("*.seg"))


def _host_read(root):
    """Every record of every segment, decoded by the host, with its chain (restarting at a header
    whose stored chain differs, as the gate does)."""
    out, chain = [], None
    for p in _segments(root):
        data = p.read_bytes()
        hdr = data[:64]
        assert hdr[:4] == b"OGL1" and hdr[4] == 2 and zlib.crc32(hdr[:60]) == struct.unpack(">I", hdr[60:])[0]
        first = struct.unpack(">I", hdr[12:16])[0]
        if chain is None or hdr[16:48] != chain:
            chain = hdr[16:48]
        for i in range(64, len(data), 32):
            r = decode_record(data[i:i + 32])
            assert r["ok"] and r["seq"] == first + (i - 64) // 32
            chain = chain_next_body(chain, data[i:i + 28])
            r["chain"] = chain
            out.append(r)
    return out


def test_record_vector(mp, tmp_path):
    root = str(tmp_path / "v")
    seq, chain, _ = mp.call("oplog_probe.write_log", root, _spec(VECTOR_RECS))
    data = _segments(root)[0].read_bytes()
    assert data == VECTOR, data.hex()
    a, b = decode_record(VECTOR[64:96]), decode_record(VECTOR[96:128])
    assert (a["seq"], a["t"], a["cti"], a["ctr"], a["decision"], a["reason"], a["missed"], a["ok"]) == \
        (1, T, bytes(range(1, 9)), 7, "OPEN", 0, 0, True)
    assert (b["seq"], b["t"], b["cti"], b["ctr"], b["decision"], b["reason"], b["missed"], b["ok"]) == \
        (2, T + 60, None, 0, "DENY", 14, 3, True)
    # the chain is not stored: the host recomputes it from the bodies, as the ledger does from a batch
    c = chain_next(chain_next(bytes(32), a), b)
    assert (seq, chain) == (2, c)
    assert hashlib.sha256(hashlib.sha256(bytes(32) + VECTOR[64:92]).digest() + VECTOR[96:124]).digest() == c
    bad = bytearray(VECTOR[64:96])
    bad[9] ^= 1
    assert decode_record(bytes(bad))["ok"] is False


def test_firmware_writer_and_host_decoder_agree(mp, tmp_path):
    rnd = random.Random(12)
    recs = []
    for i in range(110):
        cti = None if i % 6 == 0 else rnd.randbytes(8)
        recs.append([T + i * rnd.randrange(1, 4000), cti, rnd.randrange(0, 1 << 32) if cti else 0,
                     "OPEN" if i % 4 else "DENY", rnd.randrange(0, 60), rnd.choice([0, 0, 0, 1, 70000])])
    root = str(tmp_path / "x")
    seq, chain, chains = mp.call("oplog_probe.write_log", root, _spec(recs), 64 + 32 * 40, 8)  # 40 per segment
    got = _host_read(root)
    assert len(_segments(root)) == 3 and seq == 110 and len(got) == 110
    for want, r in zip(recs, got):
        assert [r["t"], r["cti"], r["ctr"], r["decision"], r["reason"], r["missed"]] == want
    assert hashlib.sha256(b"".join(r["chain"] for r in got)).digest() == chains and got[-1]["chain"] == chain


def test_batch_breaks_restart_the_chain_and_are_reported():
    """A batch's `breaks` entry restarts the host's chain there; one that differs from the recomputed
    chain is reported (meta["breaks"]) so the ledger records a chain_mismatch."""
    row = lambda s: [s, T + s, None, 0, 0, 14, 0]  # noqa: E731
    prev = bytes(32)
    c1 = chain_next(prev, {"seq": 1, "t": T + 1, "cti": None, "ctr": 0, "decision": "DENY", "reason": 14})
    other = hashlib.sha256(b"elsewhere").digest()
    c3 = chain_next(other, {"seq": 3, "t": T + 3, "cti": None, "ctr": 0, "decision": "DENY", "reason": 14})
    opened = {"gate": 7, "prev": prev, "recs": [row(1), row(3)], "breaks": [[3, other]], "chain": c3}
    _gid, meta, out = _normalize_batch(opened, 7)
    assert meta["chain_ok"] and meta["breaks"] == [3] and out[0]["chain"] == c1 and out[1]["chain"] == c3
    same = dict(opened, breaks=[[3, out[0]["chain"]]], chain=chain_next(c1, out[1]))
    assert _normalize_batch(same, 7)[1]["breaks"] == []
