"""PASSBACK on the real firmware in the simulator: an entry gate built from gate.json (station,
direction, passback_s) refuses the same rider's fresh code moments after an entry; an exit or
"both" gate does not (docs/fares.md §6)."""
import time

from offgate_host.backoffice.backoffice import BackOffice
from offgate_host.device.simgate import SimGate, write_gate_dir
from offgate_host.wallet import Wallet

NOW = int(time.time())


def _setup(tmp_path, direction):
    bo = BackOffice(tmp_path / "bo")
    bo.init_issuer("t", valid_from=NOW - 86400)
    bo.create_account("a", balance=50000)  # many credentials, each holding the default cap
    riders = []
    for i in range(2):
        w = Wallet.create(tmp_path / ("w%d.json" % i))
        w.set_credential(bo.issue_credential("a", w.pub65, zones=[1], now=NOW))
        riders.append(w)
    cfg = write_gate_dir(tmp_path / "gate", gate_id=7, zone=1, trust=bo.trust_bytes(), deny=bo.deny_bytes(),
                         station="100", direction=direction, passback_s=300)
    return cfg, riders


def test_entry_gate_refuses_passback_and_does_not_spend_the_code(tmp_path):
    cfg, (w, other) = _setup(tmp_path, "entry")
    with SimGate(cfg) as g:
        assert g.scan(w.qr_text(w.next_code()))["decision"] == "OPEN"
        code = w.qr_text(w.next_code())
        r = g.scan(code)
        assert (r["decision"], r["reason"], r["code"]) == ("DENY", "PASSBACK", 45)
        assert g.scan(other.qr_text(other.next_code()))["decision"] == "OPEN"
        assert g.scan(code)["reason"] == "PASSBACK"  # still refused, and not as REPLAY: not spent


def test_both_gate_has_no_passback(tmp_path):
    cfg, (w, _) = _setup(tmp_path, "both")
    with SimGate(cfg) as g:
        assert g.scan(w.qr_text(w.next_code()))["decision"] == "OPEN"
        assert g.scan(w.qr_text(w.next_code()))["decision"] == "OPEN"
