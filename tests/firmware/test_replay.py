from offgate.replay import ReplayGuard, REC
from fwutil import scratch_dir, write, read, cti

NOW = 1800000000
EXP = NOW + 86400


def test_counter_must_rise():
    d = scratch_dir("rp")
    g = ReplayGuard(d + "/r.log", 64)
    g.load(NOW)
    assert g.fresh(cti(1), 1)
    g.commit(cti(1), 5, EXP, NOW)
    assert not g.fresh(cti(1), 5)      # the same code again
    assert not g.fresh(cti(1), 3)      # an older code
    assert g.fresh(cti(1), 6)
    assert g.fresh(cti(2), 1)          # other credentials are independent


def test_survives_reboot():
    d = scratch_dir("rp")
    g = ReplayGuard(d + "/r.log", 64)
    g.load(NOW)
    for i in range(20):
        g.commit(cti(i), i + 1, EXP, NOW)
    g.close()
    h = ReplayGuard(d + "/r.log", 64)
    h.load(NOW)
    for i in range(20):
        assert h.highest(cti(i)) == i + 1
        assert not h.fresh(cti(i), i + 1)


def test_torn_tail_and_corrupt_record_are_skipped():
    d = scratch_dir("rp")
    p = d + "/r.log"
    g = ReplayGuard(p, 64)
    g.load(NOW)
    g.commit(cti(1), 7, EXP, NOW)
    g.commit(cti(2), 9, EXP, NOW)
    g.close()
    data = bytearray(read(p))
    data[REC + 3] ^= 0xFF                 # corrupt the second record
    write(p, bytes(data) + b"\x01\x02\x03")  # and a torn third
    h = ReplayGuard(p, 64)
    h.load(NOW)
    assert h.highest(cti(1)) == 7
    assert h.skipped == 2
    assert len(read(p)) % REC == 0        # compacted clean at boot


def test_expired_entries_make_room_and_live_ones_survive_compaction():
    d = scratch_dir("rp")
    g = ReplayGuard(d + "/r.log", 16)
    g.load(NOW)
    for i in range(8):
        g.commit(cti(i), 1, NOW + 10, NOW)        # short-lived
    for i in range(100, 110):
        g.commit(cti(i), 2, EXP, NOW + 20)        # after the first ones expired
    assert g.evictions == 0
    for i in range(100, 110):
        assert g.highest(cti(i)) == 2
    g.close()
    h = ReplayGuard(d + "/r.log", 16)
    h.load(NOW + 20)
    for i in range(100, 110):
        assert h.highest(cti(i)) == 2


def test_full_table_evicts_earliest_expiry_and_counts_it():
    d = scratch_dir("rp")
    g = ReplayGuard(d + "/r.log", 16)
    g.load(NOW)
    for i in range(40):
        g.commit(cti(i), 1, EXP + i, NOW)
    assert g.evictions > 0
    assert g.highest(cti(39)) == 1          # the latest-expiring are kept
    assert g.used <= 16


def test_file_compacts_when_large():
    d = scratch_dir("rp")
    g = ReplayGuard(d + "/r.log", 16)
    g.load(NOW)
    for n in range(1, 200):
        g.commit(cti(1), n, EXP, NOW)
    assert g.records <= 4 * 16
    g.close()
    h = ReplayGuard(d + "/r.log", 16)
    h.load(NOW)
    assert h.highest(cti(1)) == 199


def test_expiry_beyond_2106_is_clamped_not_wrapped():
    d = scratch_dir("rp")
    g = ReplayGuard(d + "/r.log", 16)
    g.load(NOW)
    g.commit(cti(1), 3, (1 << 32) + 5, NOW)     # would wrap to 5 (long expired) if not clamped
    g.close()
    h = ReplayGuard(d + "/r.log", 16)
    h.load(NOW)
    assert h.highest(cti(1)) == 3
