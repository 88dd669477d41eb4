"""End to end: several simulated gates (the real firmware, separate MicroPython processes, each with
its sync link on a loopback port), riders scanning, one rider using the same code at two gates (both
open it: the gates are offline and do not talk to each other), syncs cut at random frames, then
settlement: balances, the fraud flag, and the deny list reaching every gate and refusing the
fraudulent credential at its next scan."""
import random
import time

import pytest

from backlog import SyncSimGate
from mpbridge import free_port

from offgate_host.wire import formats
from offgate_host.backoffice.backoffice import BackOffice
from offgate_host.ledger.ledger import Ledger
from offgate_host.device.simgate import firmware_dir, write_gate_dir
from faults import DropAfter
from offgate_host.sync.frames import LinkError
from offgate_host.device.provision import provision_gate_dir
from offgate_host.ledger.pull import sync_gate
from offgate_host.wallet import Wallet

NOW = int(time.time())
FARE = 250

pytestmark = pytest.mark.skipif(not (firmware_dir() / "offgate" / "sync" / "batch.py").exists(),
                                reason="needs the gate-side batch summaries (offgate/sync/batch.py)")


def test_offline_gates_sync_settle_and_stop_a_double_user(tmp_path):
    rnd = random.Random(20240601)
    bo = BackOffice(tmp_path / "bo")
    bo.init_issuer("e2e", valid_from=NOW - 86400)
    riders = {}
    for name, cap in (("alice", 1000), ("bob", None), ("mallory", 1000)):
        bo.create_account(name, balance=5000)
        w = Wallet.create(tmp_path / (name + ".json"))
        w.set_credential(bo.issue_credential(name, w.pub65, zones=[1], cap=cap, valid_seconds=3600, now=NOW))
        riders[name] = w
    cti = {n: formats.parse_credential(w.credential)["cti"] for n, w in riders.items()}
    led = Ledger.for_backoffice(bo)
    led.set_fare(1, FARE)

    gates = {}
    for gid in (1, 2, 3):
        cfg = write_gate_dir(tmp_path / ("gate%d" % gid), gate_id=gid, zone=1, trust=bo.trust_bytes(),
                             deny=bo.deny_bytes())
        provision_gate_dir(cfg.parent, bo, gate_id=gid)
        gates[gid] = SyncSimGate(cfg, free_port()).start()
    try:
        g1, g2, g3 = gates[1], gates[2], gates[3]
        code = lambda w: w.qr_text(w.next_code())  # noqa: E731
        assert g1.scan(code(riders["alice"]))["decision"] == "OPEN"
        assert g2.scan(code(riders["alice"]))["decision"] == "OPEN"
        assert g3.scan(code(riders["bob"]))["decision"] == "OPEN"
        assert g3.scan("garbage")["decision"] == "DENY"
        twice = code(riders["mallory"])
        assert g1.scan(twice)["decision"] == "OPEN"
        assert g2.scan(twice)["decision"] == "OPEN"   # offline: gate 2 cannot know gate 1 saw it
        assert g1.scan(twice)["reason"] == "REPLAY"   # the same gate does know

        # syncs cut at random frames, then completed: nothing lost, nothing counted twice
        for gid, g in gates.items():
            for _ in range(2):
                with pytest.raises(LinkError):
                    sync_gate(DropAfter(g.transport(), rnd.randint(1, 14)), bo, led)
            s = sync_gate(g.transport(), bo, led)
            assert s["gate_id"] == gid
        recs = led.records()
        assert len({(r["gate"], r["seq"]) for r in recs}) == len(recs)
        per_gate = {gid: [r["seq"] for r in led.records(gid)] for gid in gates}
        assert per_gate == {1: [1, 2, 3], 2: [1, 2], 3: [1, 2]}
        assert led.anomalies() == []

        fraud = led.fraud()
        assert [(f["kind"], f["cti"]) for f in fraud] == [("double_use", cti["mallory"])]
        assert cti["mallory"] in bo.deny_list()

        s = led.settle(bo, now=NOW + 60)
        assert s["trips"] == 5 and s["charged"] == 5 * FARE
        assert bo.get_account("alice")["balance"] == 5000 - 2 * FARE
        assert bo.get_account("bob")["balance"] == 5000 - FARE
        assert bo.get_account("mallory")["balance"] == 5000 - 2 * FARE  # both passages happened
        assert bo.available("alice") == 5000 - 1000  # the hold still covers the rest of the cap
        assert led.settle(bo, now=NOW + 61)["trips"] == 0  # settling again changes nothing

        # the next sync brings the deny list to every gate; the fraudulent credential is refused
        for g in gates.values():
            assert sync_gate(g.transport(), bo, led)["deny_count"] == 1
        for g in gates.values():
            assert g.scan(code(riders["mallory"]))["reason"] == "REVOKED"
        assert g3.scan(code(riders["alice"]))["decision"] == "OPEN"

        rel = led.settle(bo, now=NOW + 7200)  # after expiry the unused holds are released
        assert rel["released"] == 3  # every credential holds its cap (bob: the default)
        assert bo.available("alice") == bo.get_account("alice")["balance"]
        rep = led.report()
        assert {g["gate"] for g in rep["gates"]} == {1, 2, 3}
        assert all(g["drift"] is not None for g in rep["gates"])
    finally:
        for g in gates.values():
            if g.proc and g.proc.poll() is None:
                g.kill()
