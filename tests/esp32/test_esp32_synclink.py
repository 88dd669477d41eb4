"""The ESP32's sync link over a serial line: esp32gate.synclink serving the real firmware's sync
sessions on its console, the host's `offgate sync serial:…` transport (pyserial) on the other end
of a pty. What only a board adds: the USB-serial chip and the detached REPL."""
import os
import subprocess
import time

from offgate_host.backoffice.backoffice import BackOffice
from offgate_host.ledger.ledger import Ledger
from offgate_host.device.simgate import SimGate, micropython_bin, micropython_env, repo_root, write_gate_dir
from offgate_host.sync.transports import SerialTransport
from offgate_host.device.provision import provision_gate_dir
from offgate_host.ledger.pull import sync_gate
from offgate_host.wallet import Wallet

NOW = int(time.time())
SYNC_HEAP = os.environ.get("OFFGATE_SYNC_HEAP", "208k")  # the ESP32 app and its serial link on the 64-bit port: 200k measured to do, 192k not (was 224k)


def test_sync_over_serial_console(tmp_path):
    bo = BackOffice(tmp_path / "bo")
    bo.init_issuer("t", valid_from=NOW - 86400)
    bo.create_account("a", balance=50000)  # many credentials, each holding the default cap
    w = Wallet.create(tmp_path / "w.json")
    w.set_credential(bo.issue_credential("a", w.pub65, zones=[1], now=NOW))
    cfg = write_gate_dir(tmp_path / "gate", gate_id=31, zone=1, trust=bo.trust_bytes(), deny=bo.deny_bytes())
    provision_gate_dir(cfg.parent, bo, gate_id=31)
    with SimGate(cfg) as g:                      # three passages, logged
        for _ in range(3):
            assert g.scan(w.qr_text(w.next_code()))["decision"] == "OPEN"

    master, slave = os.openpty()
    err = open(tmp_path / "sync.err", "w")
    p = subprocess.Popen([micropython_bin(), "-X", "heapsize=" + SYNC_HEAP,
                          str(repo_root() / "tests" / "esp32" / "synclink_driver.py"), str(cfg)],
                         stdin=master, stdout=master, stderr=err, env=micropython_env(), cwd=str(tmp_path))
    try:
        led = Ledger.for_backoffice(bo)
        s = sync_gate(SerialTransport(os.ttyname(slave), timeout=60), bo, led)
        assert s["new"] == 3 and s["anomalies"] == 0
        again = sync_gate(SerialTransport(os.ttyname(slave), timeout=60), bo, led)   # a second session
        assert again["new"] == 0
    finally:
        p.kill()
        p.wait()
        err.close()
        os.close(master)
        os.close(slave)
    assert p.returncode is not None
