"""`offgate sync` against things that are not a gate, and what a failed sync reports (the QA run's
findings): a port that answers garbage, echoes, a scanner's lines or nothing fails at once with
one line, without the retries (it waited 30 s per try); a sync that fails after ingesting
batches says how many records it ingested (it under-reported them)."""
import os
import socket
import threading
import time

import pytest
from click.testing import CliRunner

from synchelp import FakeGate, LoopTransport  # first: it puts the firmware on the path
from offgate.sync import session  # noqa: E402
from offgate_host.backoffice.backoffice import BackOffice
from offgate_host.cli import main
from offgate_host.ledger import pull
from offgate_host.ledger.ledger import Ledger
from offgate_host.ledger.pull import sync_with_retries
from offgate_host.sync.frames import LinkError, NotAGate, SyncError
from offgate_host.sync.transports import SerialTransport, TcpTransport
from faults import DropAfter

NOW = int(time.time())


class Server:
    """A TCP listener on loopback that answers every connection with `reply(first bytes)`
    (None: says nothing and keeps the connection open); counts connections."""

    def __init__(self, reply):
        self.reply = reply
        self.connections = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            self.conns.append(c)
            try:
                data = c.recv(4096)
                out = self.reply(data)
                if out:
                    c.sendall(out)
            except OSError:
                pass

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


@pytest.fixture
def bo(tmp_path):
    r = CliRunner()
    assert r.invoke(main, ["init", "--data", str(tmp_path / "bo")]).exit_code == 0
    return tmp_path / "bo"


@pytest.mark.parametrize("reply,says", [
    (lambda d: b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", "not a gate's sync frame"),
    (lambda d: d, "sent back the HELLO it was sent"),
    (lambda d: b"OG1:NCFOXN%TS3DH0.5Y0Q4TA$N:*K\r\n", "a scanner's output"),
    (lambda d: None, "no answer from"),
])
def test_sync_to_something_else_fails_at_once_in_one_line(bo, reply, says):
    srv = Server(reply)
    try:
        # --timeout 2: the silent case waits that long once; the others answer at once
        res = CliRunner().invoke(main, ["sync", "tcp:127.0.0.1:%d" % srv.port, "--data", str(bo), "--timeout", "2",
                                        "--retries", "3"])
    finally:
        srv.close()
    assert res.exit_code == 1, res.output
    assert says in res.stderr and "not a gate, or not its sync port" in res.stderr, res.output
    assert srv.connections == 1, "retried %d times" % (srv.connections - 1)
    assert res.stderr.strip().startswith("offgate: 1 of 1 gate(s) failed to sync (tcp:127.0.0.1:%d: " % srv.port), \
        res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.output


def test_scanner_on_a_serial_pty_is_not_a_gate(tmp_path):
    """serial:/dev/pts/N whose other end is a scanner: its lines are not a gate's reply."""
    import pty
    master, slave = pty.openpty()
    os.set_blocking(master, False)
    name = os.ttyname(slave)
    import tty
    tty.setraw(slave)
    stop = threading.Event()

    def scanner():
        while not stop.is_set():
            try:
                os.read(master, 4096)  # whatever the host sends, then a rider's code
            except BlockingIOError:
                pass
            try:
                os.write(master, b"OG1:NCFOXN%TS3DH0.5Y0Q4TA$N:*K\r\n")
            except OSError:
                return
            time.sleep(0.05)
    threading.Thread(target=scanner, daemon=True).start()
    t = SerialTransport(name, timeout=5)
    from offgate_host.sync.client import SyncClient
    try:
        bo = BackOffice(tmp_path / "bo")
        k, c = bo.operator_identity()
        with pytest.raises(NotAGate) as ei:
            with SyncClient(t, k, c) as cl:
                cl.handshake()
        assert "a scanner's output" in str(ei.value)
    finally:
        stop.set()
        os.close(master)
        os.close(slave)


def test_noise_allowance_by_transport():
    # a board reset by opening its serial port prints boot messages before the gate's first frame
    assert TcpTransport.noise_allowance == 0 and SerialTransport.noise_allowance >= 1024


# -- a failed sync says what it ingested ------------------------------------------------------

@pytest.fixture
def gate(tmp_path):
    bo = BackOffice(tmp_path / "bo")
    bo.init_issuer("t", valid_from=NOW - 86400)
    g = FakeGate(tmp_path / "g1", 11, bo)
    for i in range(450):
        g.log(bytes([1 + i % 200]) * 8, 1 + i // 200)
    return bo, g, session.SyncServer(g.port()), Ledger.for_backoffice(bo)


def test_failed_sync_reports_what_it_ingested(gate):
    bo, g, srv, led = gate
    # HELLO, CHALLENGE, AUTH, AUTH_OK, status (2), pull (2), ack (2): the cut comes in the second pull
    with pytest.raises(LinkError) as ei:
        sync_with_retries(lambda: DropAfter(LoopTransport(srv), 12), bo, led, retries=0, delay=0, max_records=200)
    assert ei.value.summary["pulled"] == 200 and ei.value.summary["new"] == 200, ei.value.summary
    assert len(led.records(11)) == 200
    # retried: the summary counts every attempt's records, the cut one's too
    cuts = iter([12, 10 ** 6])
    s = sync_with_retries(lambda: DropAfter(LoopTransport(srv), next(cuts)), bo, led, retries=1, delay=0,
                          max_records=200)
    assert s["attempts"] == 2 and s["pulled"] == 250 and s["new"] == 250, s
    led.close()


def test_cli_failed_sync_line_counts_ingested(bo, monkeypatch):
    def failing(make_transport, bo_, led, **kw):
        e = SyncError("gate 11 refused the acknowledgement of seq 400")
        e.summary = {"pulled": 400, "new": 398, "duplicates": 2, "anomalies": 0, "fraud": 0, "batches": 2}
        raise e
    monkeypatch.setattr(pull, "sync_with_retries", failing)
    res = CliRunner().invoke(main, ["sync", "tcp:127.0.0.1:9", "--data", str(bo)])
    assert res.exit_code == 1
    assert "FAILED after ingesting 400 record(s) (398 new)" in " ".join(res.stdout.split()), res.stdout
    assert res.stderr.strip() == ("offgate: 1 of 1 gate(s) failed to sync (tcp:127.0.0.1:9: gate 11 refused the "
                                  "acknowledgement of seq 400); 400 record(s) ingested in all (398 new)")
    # unattended: the log line says it too
    monkeypatch.setattr("offgate_host.cli.ledger._sleep", lambda s: None)
    res = CliRunner().invoke(main, ["sync", "tcp:127.0.0.1:9", "--data", str(bo), "--rounds", "1"])
    assert "FAILED (1 in a row) after ingesting 400 record(s) (398 new): gate 11 refused" in res.output, res.output


def test_a_gate_short_of_heap_in_every_session_says_what_to_do(monkeypatch):
    """QA7: after a rush the gate's replay table is at its largest and a sync at 128k may find it
    short of heap in every fresh session ("gate refused: out of memory"). The error now says that
    nothing was lost and to sync again later, and still carries what the attempts ingested."""
    from offgate_host.sync.frames import GateShortOfHeap
    calls = []

    def short(transport, bo, led, **kw):
        calls.append(1)
        e = GateShortOfHeap("gate refused: out of memory")
        e.summary = {"pulled": 40, "new": 40} if len(calls) == 1 else {}
        raise e
    monkeypatch.setattr(pull, "sync_gate", short)
    with pytest.raises(GateShortOfHeap) as ei:
        sync_with_retries(lambda: None, None, None, retries=2, delay=0)
    msg = str(ei.value)
    assert len(calls) == 3 and msg.startswith("gate refused: out of memory (in each of 3 sessions"), msg
    assert "nothing was lost" in msg and "sync again" in msg and "\n" not in msg, msg
    assert ei.value.summary["pulled"] == 40 and ei.value.summary["attempts"] == 3, ei.value.summary
