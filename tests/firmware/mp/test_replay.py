from offgate.policy.replay import ReplayGuard, REC
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


def _rcti(i):
    """A random-looking 8-byte credential id for index i (as real ids are: 64 random bits)."""
    x = (i * 2654435761 + 12345) & 0xFFFFFFFF
    y = (x * 1103515245 + 12345) & 0xFFFFFFFF
    return bytes([x >> 24, (x >> 16) & 255, (x >> 8) & 255, x & 255,
                  y >> 24, (y >> 16) & 255, (y >> 8) & 255, y & 255])


def _check_reachable(g):
    """Every entry the table holds is found from its home slot; returns how many there are."""
    n = 0
    for mv in g.pages:
        for o in range(0, len(mv), 16):
            if mv[o + 12] or mv[o + 13] or mv[o + 14] or mv[o + 15]:
                n += 1
                i = g._find(bytes(mv[o:o + 8]))
                assert i is not None and i >= 0
    assert n == g.used
    return n


def test_many_times_slots_distinct_credentials_in_place_and_across_reboots():
    d = scratch_dir("rp")
    slots = 64
    g = ReplayGuard(d + "/r.log", slots)
    g.load(NOW)
    # 5 x slots distinct live credentials: the table evicts, in place, and never raises
    for i in range(5 * slots):
        c = _rcti(i)
        g.commit(c, i + 1, EXP + i, NOW)
        assert g.highest(c) == i + 1
        assert g.used * 4 <= slots * 3
    assert g.evictions >= 4 * slots - slots
    for i in range(5 * slots):
        assert g.highest(_rcti(i)) in (-1, i + 1)
    _check_reachable(g)
    for i in range(5 * slots - slots // 2, 5 * slots):  # the latest-expiring are the ones kept
        assert g.highest(_rcti(i)) == i + 1
    g.close()
    for boot in range(3):  # reboots: load takes the same in-place path
        h = ReplayGuard(d + "/r.log", slots)
        h.load(NOW)
        for i in range(5 * slots - slots // 2, 5 * slots):
            assert h.highest(_rcti(i)) == i + 1
        h.commit(_rcti(10000 + boot), 1, EXP + 10000, NOW)
        h.close()


def _colliding(i):
    return bytes([0, 0, i % 5]) + _rcti(i)[3:]  # five home slots only: long runs


def test_backward_shift_delete_keeps_every_probe_chain():
    # a small table, colliding homes, entries expiring out of order: every unexpired entry stays
    # reachable through the in-place deletions
    d = scratch_dir("rp")
    g = ReplayGuard(d + "/r.log", 32)
    g.load(NOW)
    for i in range(400):
        t = NOW + i
        g.commit(_colliding(i), i + 1, t + 3 + (i * 7) % 11, t)
        for j in range(max(0, i - 14), i + 1):
            if NOW + j + 3 + (j * 7) % 11 > t:
                assert g.highest(_colliding(j)) == j + 1
        _check_reachable(g)
    assert g.evictions == 0


def test_horizon_limits_how_long_a_counter_is_kept():
    d = scratch_dir("rp")
    g = ReplayGuard(d + "/r.log", 16, horizon=120)
    g.load(NOW)
    g.commit(cti(1), 5, EXP, NOW)
    assert not g.fresh(cti(1), 5)
    # 12 more riders two minutes later fill the table to 3/4: the first entry has served its
    # purpose and makes room, nothing live is evicted
    for i in range(12):
        g.commit(_rcti(i), 1, EXP, NOW + 121 + i)
    assert g.highest(cti(1)) == -1
    assert g.evictions == 0
    g.close()
    h = ReplayGuard(d + "/r.log", 16, horizon=120)
    h.load(NOW + 200)
    assert h.highest(_rcti(11)) == 1


def test_compaction_failure_is_housekeeping():
    d = scratch_dir("rp")
    g = ReplayGuard(d + "/r.log", 16)
    g.load(NOW)
    g.commit(cti(1), 3, EXP, NOW)
    g.path = d + "/missing-dir/r.log"  # any write there fails like a full filesystem
    assert g.compact() is False and g.compact_errors == 1
    assert g.highest(cti(1)) == 3


def test_unreadable_file_and_stale_tmp_do_not_stop_load():
    d = scratch_dir("rp")
    import os
    os.mkdir(d + "/r.log")           # a directory where the file should be
    write(d + "/r.log.tmp", b"x" * 7)
    g = ReplayGuard(d + "/r.log", 16)
    g.load(NOW)
    assert g.stale_tmp
    assert g.used == 0


def test_table_grows_with_live_entries_and_gives_heap_back_when_they_expire():
    # starts at LOW_SLOTS (2 KB), doubles up to the configured slots with no eviction while the
    # heap allows, and tidy() halves it again once the entries have expired
    from offgate.policy.replay import LOW_SLOTS
    d = scratch_dir("rp")
    g = ReplayGuard(d + "/r.log", 512, horizon=120)
    g.load(NOW)
    assert g.slots == LOW_SLOTS and len(g.pages) == LOW_SLOTS // 64
    for i in range(300):  # 300 credentials within one horizon (the full-fs field case's count)
        g.commit(_rcti(i), i + 1, EXP, NOW + i // 10)
    assert g.slots == 512 and g.evictions == 0 and g.grow_failed == 0 and g.resizes == 2
    for i in range(300):
        assert g.highest(_rcti(i)) == i + 1
    _check_reachable(g)
    assert not g.tidy(NOW + 60)                   # all still live: nothing to give back
    for i in range(20):                           # later riders, after the rush has expired
        g.commit(_rcti(1000 + i), 1, EXP, NOW + 480 + i)
    assert g.tidy(NOW + 500) and g.slots == 256
    assert not g.tidy(NOW + 501)                  # at most once a minute
    assert g.tidy(NOW + 561) and g.slots == LOW_SLOTS and len(g.pages) == LOW_SLOTS // 64
    assert not g.tidy(NOW + 700)                  # at its low size: nothing to do
    for i in range(20):
        assert g.highest(_rcti(1000 + i)) == 1
    for i in range(300):
        assert g.highest(_rcti(i)) == -1
    _check_reachable(g)
    g.close()
    h = ReplayGuard(d + "/r.log", 512, horizon=120)
    h.load(NOW + 560)
    assert h.slots == LOW_SLOTS and h.highest(_rcti(1019)) == 1


def test_growth_refused_by_a_short_heap_evicts_instead_and_changes_nothing():
    d = scratch_dir("rp")
    g = ReplayGuard(d + "/r.log", 512)
    g.load(NOW)

    def short(n, old):
        raise MemoryError

    g._alloc = short  # the heap has no 1 KB page left
    for i in range(200):
        g.commit(_rcti(i), i + 1, EXP + i, NOW)
        assert g.highest(_rcti(i)) == i + 1
    assert g.slots == 128 and g.grow_failed > 0 and g.evictions > 0 and g.resizes == 0
    _check_reachable(g)
    for i in range(200 - 64, 200):  # the latest-expiring are kept, as at the configured size
        assert g.highest(_rcti(i)) == i + 1
    # fail closed below the cap: an evicted credential is not forgotten while one of its codes
    # could be fresh (Gate.scan refuses it as REPLAY); those still in the table are not affected
    evicted = [i for i in range(200) if g.highest(_rcti(i)) < 0]
    assert evicted and all(g.maybe_evicted(_rcti(i), NOW) for i in evicted)
    assert not any(g.maybe_evicted(_rcti(i), NOW) for i in range(200 - 64, 200))
    assert not g.maybe_evicted(_rcti(evicted[0]), g.evict_until)  # its codes are stale by then


def test_eviction_at_the_cap_keeps_the_documented_rule():
    g = ReplayGuard(scratch_dir("rp") + "/r.log", 64)
    g.load(NOW)
    for i in range(200):
        g.commit(_rcti(i), i + 1, EXP + i, NOW)
    assert g.evictions > 0 and g.evict_until == 0
    assert not g.maybe_evicted(_rcti(0), NOW)
