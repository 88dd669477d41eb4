"""Helpers for the sync tests: the gate's sync server run in-process under CPython (the firmware is
plain Python), joined to the host client by an in-memory transport."""
import os
import sys
from pathlib import Path

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"
if str(FIRMWARE) not in sys.path:
    sys.path.insert(0, str(FIRMWARE))
try:
    import cryptolib  # noqa: F401  (MicroPython's AES; absent on CPython)
except ImportError:
    sys.path.append(str(Path(__file__).resolve().parent / "syncshim"))

from offgate.crypto import devicekey  # noqa: E402
from offgate.gateport import GatePort  # noqa: E402
from offgate.sync import session  # noqa: E402
from offgate.clock import Clock  # noqa: E402
from offgate.policy.denylist import DenyList  # noqa: E402
from offgate.log.oplog import OpLog  # noqa: E402
from offgate.policy.trust import TrustStore  # noqa: E402
from offgate.policy.verifier import Verifier  # noqa: E402

from offgate_host.wire import formats  # noqa: E402
from offgate_host.sync.frames import LinkError# noqa: E402
from offgate_host.device.provision import provision_gate_dir


class FakeGate:
    """What the sync link's gate port (offgate.gateport.GatePort) uses of a gate: cfg, clock, time,
    verifier (trust, deny), oplog, status(), deny_list_installed(), tidy(); and the device key."""

    def __init__(self, d, gate_id, bo, zone=1, clock_offset=0, register=True):
        d = Path(d)
        d.mkdir(parents=True, exist_ok=True)
        (d / "trust.cbor").write_bytes(bo.trust_bytes())
        (d / "deny.bin").write_bytes(bo.deny_bytes())
        provision_gate_dir(d, bo)
        self.cfg = {"gate_id": gate_id, "zone": zone, "state_dir": str(d), "relay_ms": 500}
        self.clock = Clock(clock_offset)
        self.time = None  # the clock is trusted as is (no offgate.clock.ClockTrust)
        self.deny_ok = True
        self.verifier = Verifier(TrustStore.from_bytes(bo.trust_bytes()), DenyList(str(d / "deny.bin")), None,
                                 gate_id, zone)
        self.oplog = OpLog(str(d / "oplog"))
        self.oplog.recover()
        self.device_key = devicekey.load_or_create(str(d / "device.key"))
        # provisioning: the back office registers the gate's device key under its id, which is
        # what the ledger enrols it with (it believes no gate on first contact)
        if register:
            bo.register_gate(gate_id, self.device_key.public_bytes(), "sim", replace=True)

    def status(self):
        return {"scans": 0, "opened": 0, "denied": 0}

    def deny_list_installed(self):
        self.deny_ok = True

    def tidy(self):
        pass  # no replay table here

    def port(self):
        """The gate port the sync link is given (offgate.gateport.GatePort), with this device key."""
        return GatePort(self, device_key=self.device_key)

    def log(self, cti, ctr, decision="OPEN", reason=0, t=None):
        return self.oplog.append(t or self.clock.now(), cti, ctr, decision, reason)


class LoopTransport:
    """The host client's transport, wired straight into a gate-side Session."""

    def __init__(self, server):
        self.server = server
        self.session = None
        self.out = b""
        self.sent = []

    def open(self):
        self.session = self.server.session()
        self.out = b""

    def send(self, data):
        if self.session is None:
            raise LinkError("closed")
        self.sent.append(bytes(data))
        self.out += self.session.feed(data)

    def recv(self):
        if not self.out:
            raise LinkError("gate sent nothing")
        d, self.out = self.out, b""
        return d

    def close(self):
        self.session = None

    def __str__(self):
        return "loop"
