# Stand-ins around the gate for its firmware tests (tests/firmware/mp/test_oplog_gate.py,
# test_passback.py): a verifier that opens "open:<i>:<ctr>" lines, an actuator, a clock and an
# output sink that record what the gate did. Runs on MicroPython and CPython.
from fwutil import cti
from offgate import reasons as R
from offgate.policy.verifier import Decision

NOW = 1800000000


class Cred:
    def __init__(self, i):
        self.cti = cti(i)
        self.exp = NOW + 86400


class Empty:
    keys = ()
    count = 0
    hits = 0

    def __len__(self):
        return 0


class StubVerifier:
    """Opens "open:<i>:<ctr>" lines, denies anything else as BAD_PREFIX."""
    trust = deny = cache = Empty()

    def decide(self, line, now):
        p = line.split(b":")
        if p[0] == b"open":
            return Decision(R.OK, Cred(int(p[1])), int(p[2]))
        return Decision(R.BAD_PREFIX)


class Actuator:
    def __init__(self, log):
        self.log = log
        self.events = []

    def open(self, ms):
        # the record of this OPEN must already be on the log when the relay moves
        self.events.append(("open", self.log.head()[0]))

    def deny(self, reason):
        self.events.append(("deny", reason))


class Clock:
    offset = 0

    def now(self):
        return NOW


class Out:
    def write(self, s):
        pass
