# The gate's use of the operation log: every decision logged, an OPEN logged before the relay
# moves, LOG_FULL (and no relay, no spent counter) when the log is full under "refuse".
from offgate.log.oplog import OpLog, HDR, REC
from fwutil import cti, scratch_dir
from gatestubs import NOW, Actuator, Clock, Out, StubVerifier  # noqa: F401
from offgate import reasons as R
from offgate.gate import Gate
from offgate.policy.replay import ReplayGuard


def _gate(policy, max_segments=1):
    d = scratch_dir("og")
    lg = OpLog(d + "/oplog", HDR + 3 * REC, max_segments, policy)
    lg.recover()
    rp = ReplayGuard(d + "/replay.log", 64)
    rp.load(NOW)
    act = Actuator(lg)
    cfg = {"relay_ms": 500, "gate_id": 1, "zone": 1}
    return Gate(cfg, StubVerifier(), rp, act, Out(), Clock(), lg), lg, rp, act


def test_every_decision_logged_open_before_relay():
    g, lg, rp, act = _gate("refuse")
    assert g.scan(b"open:1:5").reason == R.OK
    assert g.scan(b"junk").reason == R.BAD_PREFIX
    assert g.scan(R.EMPTY).reason == R.EMPTY
    assert act.events[0] == ("open", 1)       # seq 1 was durable when the relay moved
    recs = lg.read(1, 10)
    assert [(r["decision"], r["reason"]) for r in recs] == [("OPEN", 0), ("DENY", R.BAD_PREFIX), ("DENY", R.EMPTY)]
    assert recs[0]["cti"] == cti(1) and recs[0]["ctr"] == 5 and recs[0]["t"] == NOW
    assert recs[1]["cti"] is None


def test_refuse_when_full_denies_without_relay_or_spending_the_code():
    g, lg, rp, act = _gate("refuse")
    for i in range(3):
        g.scan(b"open:%d:1" % i)
    assert lg.full()
    d = g.scan(b"open:9:1")
    assert d.reason == R.LOG_FULL and R.name(R.LOG_FULL) == "LOG_FULL"
    assert act.events[-1] == ("deny", R.LOG_FULL)
    assert sum(1 for e in act.events if e[0] == "open") == 3
    assert rp.fresh(cti(9), 1)               # the rider's code is not spent
    st = g.status()
    assert st["log_full"] and st["log_not_logged"] == 1 and st["log_policy"] == "refuse"
    assert lg.acknowledge(3, lg.head()[1])
    assert g.scan(b"open:9:1").reason == R.OK
    assert lg.read(4, 1)[0]["missed"] == 1


def test_admit_keeps_opening_and_counts():
    g, lg, rp, act = _gate("admit")
    for i in range(5):
        assert g.scan(b"open:%d:1" % i).reason == R.OK
    st = g.status()
    assert st["log_not_logged"] == 2 and st["log_backlog"] == 3 and st["log_policy"] == "admit"



class _Lines:
    def __init__(self):
        self.buf = []

    def write(self, s):
        self.buf.append(s)


def test_scan_line_ms_is_a_short_decimal():
    """The scan line's "ms" is n/10 written as decimal digits: MicroPython's float repr of 8.2 is
    8.199999999999999 (found by the QA run)."""
    import json
    g, lg, rp, act = _gate("refuse")
    for us in (8200, 8300, 12300, 0, 99, 1234567):
        g.out = _Lines()
        d = g.scan(b"open:1:%d" % (us + 1))
        g.out = _Lines()
        g.report(d, NOW, us, 7)
        line = "".join(g.out.buf).strip()
        want = "%d.%d" % (us // 1000, us // 100 % 10)
        assert line.endswith('"ms": %s}' % want), line
        rec = json.loads(line)
        assert rec["ms"] == float(want) and rec["event"] == "scan" and rec["seq"] == 7, rec
