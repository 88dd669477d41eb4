from offgate.log.oplog import OpLog, LogFull, REC, HDR, ZERO32
from offgate.log.oplogverify import verify_records
from fwutil import scratch_dir, read, write, cti
import os

T = 1800000000


def _log(d, **kw):
    kw.setdefault("segment_bytes", HDR + 4 * REC)   # 4 records per segment
    kw.setdefault("max_segments", 3)
    lg = OpLog(d + "/log", **kw)
    lg.recover()
    return lg


def _fill(lg, n, start=0):
    for i in range(start, start + n):
        lg.append(T + i, cti(i), i + 1, "OPEN" if i % 3 else "DENY", 0 if i % 3 else 43)


def test_append_read_chain_and_reboot():
    d = scratch_dir("ol")
    lg = _log(d)
    assert lg.head() == (0, ZERO32)
    _fill(lg, 6)
    seq, chain = lg.head()
    assert seq == 6
    recs = lg.read(1, 100)
    assert [r["seq"] for r in recs] == [1, 2, 3, 4, 5, 6]
    assert recs[1]["cti"] == cti(1) and recs[1]["ctr"] == 2 and recs[1]["decision"] == "OPEN"
    assert recs[0]["decision"] == "DENY" and recs[0]["reason"] == 43
    assert verify_records(ZERO32, recs) == chain
    assert [r["seq"] for r in lg.read(5, 1)] == [5]
    lg.close()
    lg2 = _log(d)
    assert lg2.head() == (6, chain)
    lg2.append(T + 9, None, None, "DENY", 13)   # noise scan: no credential
    r = lg2.read(7, 5)[0]
    assert r["cti"] is None and r["ctr"] == 0 and r["reason"] == 13
    assert verify_records(ZERO32, lg2.read(1, 100)) == lg2.head()[1]


def test_torn_tail_and_corrupt_record_are_cut():
    d = scratch_dir("ol")
    lg = _log(d)
    _fill(lg, 6)                       # segments: 4 + 2 records
    lg.close()
    p = d + "/log/00000002.seg"
    data = bytearray(read(p))
    write(p, bytes(data) + b"\x4f\x01\x02")   # torn third record
    lg = _log(d)
    assert lg.head()[0] == 6 and lg.cut == 1
    assert len(read(p)) == HDR + 2 * REC
    data[HDR + REC + 7] ^= 1            # corrupt record 6 (second in segment 2)
    write(p, bytes(data))
    lg = _log(d)
    assert lg.head()[0] == 5
    assert verify_records(ZERO32, lg.read(1, 10)) == lg.head()[1]
    assert lg.append(T, cti(9), 9, "OPEN", 0) == 6    # the chain resumes after the cut
    lg = _log(d)
    assert lg.head()[0] == 6


def test_damaged_record_in_the_middle_is_skipped_not_cut():
    """One flipped bit no longer cuts everything after it: the record is kept in place and read
    back as damaged (with its bytes), everything after it stays."""
    d = scratch_dir("ol")
    lg = _log(d)
    _fill(lg, 10)                      # 4 + 4 + 2
    lg.close()
    p = d + "/log/00000002.seg"
    data = bytearray(read(p))
    data[HDR + 2 * REC + 30] ^= 0x80   # corrupt seq 7's CRC
    write(p, bytes(data))
    lg = _log(d)
    assert lg.head()[0] == 10 and lg.damaged == 1 and lg.cut == 0
    recs = lg.read(1, 20)
    assert [r["seq"] for r in recs] == list(range(1, 11))
    assert "damaged" in recs[6] and len(recs[6]["damaged"]) == REC and "damaged" not in recs[7]
    assert recs[7]["cti"] == cti(7)
    assert lg.append(T, cti(11), 11, "OPEN", 0) == 11
    lg = _log(d)
    assert lg.head()[0] == 11 and lg.damaged == 1


def test_damaged_segment_header_is_rebuilt_from_its_records():
    d = scratch_dir("ol")
    lg = _log(d)
    _fill(lg, 10)
    lg.close()
    p = d + "/log/00000002.seg"
    data = bytearray(read(p))
    data[13] ^= 0x04                   # first_seq in the header
    write(p, bytes(data))
    lg = _log(d)
    assert lg.head()[0] == 10 and [r["seq"] for r in lg.read(1, 20)] == list(range(1, 11))
    lg = _log(d)
    assert lg.head()[0] == 10


def test_lost_ack_file_never_reuses_a_seq():
    d = scratch_dir("ol")
    lg = _log(d)
    _fill(lg, 6)
    assert lg.acknowledge(6, lg.head()[1])      # everything acknowledged: no segment left
    lg.close()
    os.remove(d + "/log/ack")
    lg = _log(d)
    assert lg.head()[0] == 6 and lg.acked()[0] == 6
    assert lg.append(T, cti(1), 50, "OPEN", 0) == 7   # not 1


def test_acknowledge_frees_segments_and_checks_chain():
    d = scratch_dir("ol")
    lg = _log(d)
    _fill(lg, 10)
    recs = lg.read(1, 10)
    assert not lg.acknowledge(5, bytes(32))           # wrong chain
    assert not lg.acknowledge(11, recs[-1]["chain"])  # beyond head
    assert lg.acknowledge(5, recs[4]["chain"])
    assert lg.acked() == (5, recs[4]["chain"])
    assert lg.status()["segments"] == 2               # segment 1 (seq 1-4) freed
    assert lg.read(1, 100)[0]["seq"] == 5             # seg 2 still holds 5..8
    assert lg.acknowledge(5, recs[4]["chain"])        # idempotent
    lg.close()
    lg = _log(d)
    assert lg.acked()[0] == 5 and lg.head()[0] == 10
    assert lg.acknowledge(10, recs[9]["chain"])
    assert lg.status()["segments"] == 0 and lg.status()["backlog"] == 0
    lg.append(T, cti(1), 99, "OPEN", 0)
    lg.close()
    lg = _log(d)
    r = lg.read(1, 10)
    assert [x["seq"] for x in r] == [11]
    assert verify_records(recs[9]["chain"], r) == lg.head()[1]


def test_refuse_policy_raises_when_full():
    d = scratch_dir("ol")
    lg = _log(d, max_segments=2)
    _fill(lg, 8)
    assert lg.full()
    try:
        lg.append(T, cti(1), 1, "OPEN", 0)
        assert False
    except LogFull:
        pass
    st = lg.status()
    assert st["not_logged"] == 1 and st["full"] and st["policy"] == "refuse" and st["backlog"] == 8
    assert lg.acknowledge(4, lg.read(4, 1)[0]["chain"])
    s = lg.append(T, cti(1), 1, "OPEN", 0)
    assert s == 9 and lg.read(9, 1)[0]["missed"] == 1  # the gap is on record


def test_admit_policy_counts():
    d = scratch_dir("ol")
    lg = _log(d, max_segments=1, full_policy="admit")
    _fill(lg, 4)
    assert lg.append(T, cti(1), 1, "OPEN", 0) is None
    assert lg.append(T, cti(1), 2, "OPEN", 0) is None
    assert lg.status()["not_logged"] == 2


def test_bad_header_segment_is_dropped():
    d = scratch_dir("ol")
    lg = _log(d)
    _fill(lg, 5)
    lg.close()
    write(d + "/log/00000002.seg", b"")            # created, never written (cut at open)
    write(d + "/log/00000003.seg", b"junk" * 20)
    write(d + "/log/ack.tmp", b"xx")
    lg = _log(d)
    assert lg.head()[0] == 4
    assert sorted(os.listdir(d + "/log")) == ["00000001.seg"]
    assert lg.append(T, cti(7), 7, "OPEN", 0) == 5


def test_lost_segment_is_a_reported_chain_break_and_acks_still_work():
    """Records do not store their chain: a walk restarts it at a segment header that says
    otherwise (here: segment 2 lost) and reports that as a break; an acknowledge with the chain
    the walk gave (what a batch carries) is accepted."""
    d = scratch_dir("ol")
    lg = _log(d)
    _fill(lg, 10)                      # 4 + 4 + 2
    lg.close()
    os.remove(d + "/log/00000002.seg")
    lg = _log(d)
    assert lg.head()[0] == 10
    breaks = []
    walk = list((s, c) for s, _b, ok, c in lg.chained(1, 10, ZERO32, breaks))
    assert [s for s, _c in walk] == [1, 2, 3, 4, 9, 10]
    assert len(breaks) == 1 and breaks[0][0] == 9 and walk[-1][1] == lg.head()[1]
    assert lg.acknowledge(10, walk[-1][1])
    assert lg.acked()[0] == 10


def test_chain_is_over_the_bytes_as_stored():
    """A damaged record is chained over its stored bytes, by the gate as by the host, so a batch
    across it still ends on the gate's chain; the chain after recovery is the same recomputed one."""
    d = scratch_dir("ol")
    lg = _log(d)
    _fill(lg, 7)
    lg.close()
    p = d + "/log/00000002.seg"
    data = bytearray(read(p))
    data[HDR + 8] ^= 0x10              # seq 5's time: its CRC no longer matches
    write(p, bytes(data))
    lg = _log(d)
    recs = lg.read(1, 10)
    assert "damaged" in recs[4] and verify_records(ZERO32, recs) == lg.head()[1]
    assert lg.acknowledge(6, recs[5]["chain"])


def test_status_warns_from_half_full():
    d = scratch_dir("ol")
    lg = _log(d)                       # 3 segments of 4: 12 records
    _fill(lg, 5)
    st = lg.status()
    assert st["fill_pct"] == 41 and not st["warn"] and st["capacity_records"] == 12
    _fill(lg, 1, 5)
    assert lg.status()["warn"] and lg.status()["fill_pct"] == 50


def test_boot_scan_fast_path_agrees_with_the_record_checks():
    """offgate.log.oplogscan (viper, recovery's fast path) accepts exactly the records the per-record
    checks accept: a run of intact records with consecutive seqs, stopping at a flipped bit, a
    wrong seq or a wrong magic."""
    try:
        from offgate.log.oplogscan import good_run
    except Exception:
        return  # no viper here (CPython): recovery uses the per-record checks only
    d = scratch_dir("ol")
    lg = _log(d, segment_bytes=HDR + 16 * REC, max_segments=2)
    _fill(lg, 16)
    lg.close()
    seg = bytearray(read(d + "/log/00000001.seg"))
    recs = seg[HDR:]
    assert good_run(recs, 16, 0, 1) == 16
    assert good_run(recs, 16, 0, 2) == 0                 # not the seqs expected
    for pos in (0, 5, 17, 27, 28, 31):                  # magic, seq, body, CRC bytes
        bad = bytearray(recs)
        bad[9 * REC + pos] ^= 0x40
        assert good_run(bad, 16, 0, 9 * 0 + 1) == 9, pos
    big = bytearray(recs[:REC])                          # a seq above 2^16 (split in two halves)
    big[4:8] = b"\x00\x01\x00\x07"
    from offgate.checksum import crc32
    v = crc32(bytes(big[:28])) & 0xFFFFFFFF
    big[28:32] = bytes(((v >> 24) & 0xFF, (v >> 16) & 0xFF, (v >> 8) & 0xFF, v & 0xFF))
    assert good_run(big, 1, 1, 7) == 1 and good_run(big, 1, 0, 7) == 0
