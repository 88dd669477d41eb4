# Passback (offgate/policy/passback.py) and its place in the gate: an entry gate refuses a credential
# that entered there within passback_s; the refused code is not spent; the table stays bounded.
from fwutil import scratch_dir, cti
from offgate import reasons as R
from offgate.gate import Gate
from offgate.policy.passback import Passback, ENTRY
from offgate.policy.replay import ReplayGuard
from gatestubs import StubVerifier, Out, NOW


def test_refuses_within_window_only():
    pb = Passback(60, 32)
    assert not pb.refuses(cti(1), NOW)
    pb.passed(cti(1), NOW)
    assert pb.refuses(cti(1), NOW)
    assert pb.refuses(cti(1), NOW + 59)
    assert not pb.refuses(cti(1), NOW + 60)
    assert not pb.refuses(cti(2), NOW)       # other credentials are independent
    assert pb.refused == 2


def test_zero_window_is_off():
    pb = Passback(0, 32)
    pb.passed(cti(1), NOW)
    assert not pb.refuses(cti(1), NOW)
    assert pb.used() == 0


def test_table_is_bounded_and_forgets_the_oldest():
    pb = Passback(600, 16)
    size = len(pb.tab)
    assert size == 16 * ENTRY
    for i in range(1000):
        pb.passed(cti(i), NOW + i)
    assert len(pb.tab) == size and pb.used() <= 16
    assert pb.refuses(cti(999), NOW + 999)   # the newest are remembered
    assert not pb.refuses(cti(0), NOW + 999)  # the oldest forgotten: lenient, never a wrong refusal


def test_entry_again_after_window_is_remembered_anew():
    pb = Passback(60, 32)
    pb.passed(cti(1), NOW)
    assert not pb.refuses(cti(1), NOW + 100)
    pb.passed(cti(1), NOW + 100)
    assert pb.refuses(cti(1), NOW + 120)


class Act:
    def __init__(self):
        self.events = []

    def open(self, ms):
        self.events.append("open")

    def deny(self, reason):
        self.events.append(reason)


class Clock:
    def __init__(self):
        self.t = NOW

    def now(self):
        return self.t


def test_gate_refuses_passback_without_spending_the_code():
    d = scratch_dir("pb")
    rp = ReplayGuard(d + "/replay.log", 64)
    rp.load(NOW)
    clk = Clock()
    act = Act()
    g = Gate({"relay_ms": 500, "gate_id": 1, "zone": 1}, StubVerifier(), rp, act, Out(), clk)
    g.passback = Passback(120, 32)
    assert g.scan(b"open:1:5").reason == R.OK
    clk.t += 30
    d2 = g.scan(b"open:1:6")
    assert d2.reason == R.PASSBACK and R.name(R.PASSBACK) == "PASSBACK"
    assert act.events[-1] == R.PASSBACK
    assert rp.fresh(cti(1), 6)               # counter 6 not spent
    assert g.scan(b"open:2:1").reason == R.OK  # another rider passes
    clk.t += 120
    assert g.scan(b"open:1:6").reason == R.OK  # after the window
    assert g.status()["passback_refused"] == 1
