"""The simulated gate end to end: the real firmware in a MicroPython process, fed through its scanner
stream like a GM65 module would feed the ESP32's UART. Every test runs on the 64-bit PyPI port (144k)
and on the 32-bit build (the device budget, 128k), chosen as a user would: OFFGATE_MICROPYTHON."""
import json
import socket
import subprocess
import time

import pytest

from mpbridge import RUNTIMES, free_port

from offgate_host.wire import formats
from offgate_host.backoffice.backoffice import BackOffice
from offgate_host.device.simgate import SimGate, micropython_env, sim_command, write_gate_dir
from offgate_host.wallet import Wallet

NOW = int(time.time())


@pytest.fixture(autouse=True, params=RUNTIMES)
def runtime(request, monkeypatch):
    """The interpreter the simulator runs on, picked through OFFGATE_MICROPYTHON."""
    if request.param:
        monkeypatch.setenv("OFFGATE_MICROPYTHON", request.param)
    else:
        monkeypatch.delenv("OFFGATE_MICROPYTHON", raising=False)
    return request.param


@pytest.fixture
def gate_setup(tmp_path):
    bo = BackOffice(tmp_path / "bo")
    bo.init_issuer("t", valid_from=NOW - 86400)
    bo.create_account("a", balance=50000)  # many credentials, each holding the default cap
    w = Wallet.create(tmp_path / "w.json")
    w.set_credential(bo.issue_credential("a", w.pub65, zones=[1], now=NOW))
    cfg = write_gate_dir(tmp_path / "gate", gate_id=7, zone=1, trust=bo.trust_bytes(), deny=bo.deny_bytes())
    return cfg, w


def test_open_then_replay_and_relay_only_on_open(gate_setup):
    cfg, w = gate_setup
    with SimGate(cfg) as g:
        assert g.boot["trust_keys"] == 1
        code = w.qr_text(w.next_code())
        r = g.scan(code)
        assert (r["decision"], r["reason"], r["code"]) == ("OPEN", "OK", 0)
        assert r["cred"] == formats.parse_credential(w.credential)["cti"].hex()
        assert r["ctr"] == w.ctr and r["ms"] > 0
        assert g.scan(code)["reason"] == "REPLAY"
    acts = g.actions()
    assert sum("relay: pulse" in a for a in acts) == 1
    assert sum("REPLAY" in a for a in acts) == 1


def test_noise_never_stops_the_loop(gate_setup):
    cfg, w = gate_setup
    with SimGate(cfg) as g:
        g.send_raw(b"\r\n\r\n\n\r")  # terminators alone: no scan, no report
        assert g.scan(b"X" * 5000)["reason"] == "LINE_TOO_LONG"
        assert g.scan(b"\x00\x01\xfe\xff")["reason"] == "NOT_TEXT"
        assert g.scan(b"OG1:abc")["reason"] == "BAD_BASE45"
        assert g.scan(b"OG1:" + b"A" * 300)["reason"] in ("BAD_BASE45", "MALFORMED_CODE")
        assert g.scan(b"https://example.com/")["reason"] == "BAD_PREFIX"
        # a code split across writes, ending in CR LF, still reads as one line
        code = w.qr_text(w.next_code()).encode()
        g.send_raw(code[:50])
        g.send_raw(code[50:] + b"\r\n")
        rep = g.read_report()
        assert rep["decision"] == "OPEN", rep
        # an unterminated fragment (noise, a half read), then silence longer than line_gap_ms
        # (300 ms): dropped, not glued onto the next rider's code
        g.send_raw(b"OG1:HALFREAD")
        time.sleep(1.0)
        rep = g.scan(w.qr_text(w.next_code()))
        assert rep["decision"] == "OPEN", rep
        status = g.stop()
    assert status["scans"] == 7 and status["opened"] == 2 and status["denied"] == 5
    assert status["partial_lines_dropped"] == 1


def test_counters_survive_power_cut(gate_setup):
    """... and a scan line's seq is its operation-log record's (it goes on across boots); scan is
    the boot's scan counter."""
    cfg, w = gate_setup
    code = w.qr_text(w.next_code())
    g = SimGate(cfg).start()
    r = g.scan(code)
    assert r["decision"] == "OPEN" and (r["seq"], r["scan"]) == (1, 1)
    g.kill()  # no clean shutdown
    with SimGate(cfg) as g2:
        r = g2.scan(code)
        assert r["reason"] == "REPLAY" and (r["seq"], r["scan"]) == (2, 1)
        r = g2.scan(w.qr_text(w.next_code()))
        assert r["decision"] == "OPEN" and (r["seq"], r["scan"]) == (3, 2)


def test_replay_record_lost_with_the_power_is_restored_from_the_log(gate_setup):
    """An OPEN's replay record is written between scans, not before the relay (one flash sync per
    OPEN, the operation log's): if the power goes first, boot restores it from the log."""
    cfg, w = gate_setup
    code = w.qr_text(w.next_code())
    with SimGate(cfg) as g:
        assert g.scan(code)["decision"] == "OPEN"
    replay = list(cfg.parent.rglob("replay.log"))
    assert len(replay) == 1 and replay[0].stat().st_size > 0
    replay[0].write_bytes(b"")  # what the power cut leaves when it comes before the idle write
    with SimGate(cfg) as g2:
        assert any("1 accepted counters restored" in n for n in g2.boot["notes"]), g2.boot
        assert g2.scan(code)["reason"] == "REPLAY"
    with SimGate(cfg) as g3:  # restored durably: the next boot has nothing to restore
        assert not any("restored" in n for n in g3.boot["notes"]), g3.boot
        assert g3.scan(code)["reason"] == "REPLAY"


def test_gate_clock_offset_applies(gate_setup):
    cfg, w = gate_setup
    with SimGate(cfg, clock_offset=3600) as g:   # gate clock an hour ahead: the code is stale
        assert g.scan(w.qr_text(w.next_code()))["reason"] == "CODE_STALE"


def test_bad_config_named_at_startup(tmp_path):
    (tmp_path / "gate.json").write_text(json.dumps({"zone": "one", "skew_s": -5}))
    r = subprocess.run(sim_command(tmp_path / "gate.json"), capture_output=True, text=True,
                       env=micropython_env(), timeout=60, cwd=str(tmp_path))
    assert r.returncode == 2
    assert "gate_id: missing" in r.stderr and "zone" in r.stderr and "skew_s" in r.stderr


def test_missing_trust_store_refuses_everything_but_runs(gate_setup):
    cfg, w = gate_setup
    (cfg.parent / "trust.cbor").write_bytes(b"\xff garbage")
    with SimGate(cfg) as g:
        assert g.boot["trust_keys"] == 0 and g.boot["notes"]
        assert g.scan(w.qr_text(w.next_code()))["reason"] == "UNKNOWN_ISSUER"


def test_tcp_scanner_stream(gate_setup):
    cfg, w = gate_setup
    port = free_port()
    p = subprocess.Popen(sim_command(cfg, None, "--tcp", "127.0.0.1:%d" % port), stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, env=micropython_env(), text=True)
    try:
        assert json.loads(p.stdout.readline())["event"] == "boot"
        assert json.loads(p.stdout.readline())["event"] == "listening"
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"garbage\r" + w.qr_text(w.next_code()).encode() + b"\r")
            first = json.loads(p.stdout.readline())
            second = json.loads(p.stdout.readline())
        assert first["reason"] == "BAD_PREFIX"
        assert second["decision"] == "OPEN"
        # a connection that ends mid-line leaves nothing behind for the next one
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"OG1:HALF")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(w.qr_text(w.next_code()).encode() + b"\r")
            third = json.loads(p.stdout.readline())
        assert third["decision"] == "OPEN", third
    finally:
        p.kill()
        p.wait()


def test_tcp_connection_flood_does_not_stop_the_gate(gate_setup):
    """50 connections at once (a port scan, a confused client): one is served, two may wait, the
    rest are closed at once; the gate keeps its heap and serves the next real scanner (which may
    have to reconnect while the flood's queued connections drain)."""
    import queue
    import threading
    cfg, w = gate_setup
    port = free_port()
    p = subprocess.Popen(sim_command(cfg, None, "--tcp", "127.0.0.1:%d" % port), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=micropython_env(), text=True)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(ln) for ln in p.stdout], daemon=True).start()
    try:
        assert json.loads(lines.get(timeout=60))["event"] == "boot"
        assert json.loads(lines.get(timeout=60))["event"] == "listening"
        flood = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(50)]
        time.sleep(0.5)
        for s in flood:
            s.close()
        r = None
        for _ in range(20):  # bounded: a refused or drained connection is simply tried again
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                    s.sendall(w.qr_text(w.next_code()).encode() + b"\r")
                    r = json.loads(lines.get(timeout=5))
                    break
            except (OSError, queue.Empty):
                time.sleep(0.5)
        assert r is not None and r["decision"] == "OPEN", r
        assert p.poll() is None
    finally:
        p.kill()
        p.wait()
    err = p.stderr.read()
    assert "MemoryError" not in err and "Traceback" not in err, err


def test_pty_scanner_stream(gate_setup):
    """A pty stands in for the scanner's serial device, as on a bench with a USB-serial adapter."""
    import os
    cfg, w = gate_setup
    master, slave = os.openpty()
    p = subprocess.Popen(sim_command(cfg, None, "--pty", os.ttyname(slave)), stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, env=micropython_env(), text=True)
    try:
        assert json.loads(p.stdout.readline())["event"] == "boot"
        os.write(master, b"noise\r" + w.qr_text(w.next_code()).encode() + b"\r")
        assert json.loads(p.stdout.readline())["reason"] == "BAD_PREFIX"
        assert json.loads(p.stdout.readline())["decision"] == "OPEN"
    finally:
        p.kill()
        p.wait()
        os.close(master)
        os.close(slave)


def test_gate_run_takes_the_interpreter(gate_setup, runtime):
    """`offgate gate run --micropython PATH` (or OFFGATE_MICROPYTHON) runs the gate on that build;
    a wrong path is one line and a non-zero exit."""
    import os
    import sys
    from pathlib import Path
    from offgate_host.device.simgate import default_micropython_bin
    cfg, w = gate_setup
    mp = runtime or default_micropython_bin()
    off = str(Path(sys.executable).with_name("offgate"))
    env = {k: v for k, v in os.environ.items() if k != "OFFGATE_MICROPYTHON"}
    r = subprocess.run([off, "gate", "run", str(cfg), "--micropython", mp], input=w.qr_text(w.next_code()) + "\r",
                       capture_output=True, text=True, timeout=120, env=env)
    reps = [json.loads(ln) for ln in r.stdout.splitlines() if ln.startswith("{")]
    assert reps[0]["event"] == "boot" and [x["decision"] for x in reps if x.get("event") == "scan"] == ["OPEN"], r
    r = subprocess.run([off, "gate", "run", str(cfg), "--micropython", "/nonexistent/micropython"],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode != 0 and "not an executable file" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
