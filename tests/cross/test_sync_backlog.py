"""A gate holding a full log syncs in one `sync_gate` call at the simulator's sync heap, on the
32-bit build (the ESP32 stand-in) and the 64-bit port, firmware from .mpy files: the gate sizes
each batch to its free heap (the response says so), keeps deciding scans between frames, and
nothing is lost or counted twice when the link is cut at every frame of a large-backlog sync.
Smallest heaps and gate CPU: bench/sync_heap.py (make bench)."""
import time

import pytest

from backlog import BacklogGate, backlog_gate_dir
from mpbridge import MP32, needs_mp32

from offgate_host.backoffice.backoffice import BackOffice
from offgate_host.device.simgate import SYNC_HEAP_64
from offgate_host.ledger.ledger import Ledger
from faults import DropAfter
from offgate_host.sync.frames import LinkError
from offgate_host.ledger.pull import sync_gate
from offgate_host.wallet import Wallet

NOW = int(time.time())
FULL_LOG = 2016      # a small log's capacity (16 segments of 4 KiB, 126 records each; the default holds 31,558)
SMALL_LOG = {"log_segment_bytes": 4096, "log_max_segments": 16}
# One session (sync_gate, no retry) with scans between its frames: at the device's 128k a session
# may end GateShortOfHeap, and `offgate sync` then starts a fresh one (sync_with_retries; the bench
# and test_deny_delta sync at 128k that way; 1 of ~6 runs here ended so). This test is about one
# session carrying a full log, so it gets 8k more (at 132k one of three full `make test` runs on a
# loaded machine ended "pull: gate low on heap" in its one session).
ONE_SESSION_HEAP32 = "136k"
HEAP64 = SYNC_HEAP_64


def _setup(tmp_path, n):
    bo = BackOffice(tmp_path / "bo")
    bo.init_issuer("t", valid_from=NOW - 86400)
    bo.create_account("a", balance=100000)
    w = Wallet.create(tmp_path / "w.json")
    w.set_credential(bo.issue_credential("a", w.pub65, zones=[1], valid_seconds=86400, now=NOW))
    cfg = backlog_gate_dir(tmp_path / "gate", bo, n, **SMALL_LOG)
    return bo, w, cfg, Ledger.for_backoffice(bo)


@pytest.mark.parametrize("mp,heap", [pytest.param(None, HEAP64, id="mp64"),
                                     pytest.param(MP32, ONE_SESSION_HEAP32, id="mp32", marks=needs_mp32)])
def test_full_log_syncs_in_one_go_while_the_gate_decides(tmp_path, mp, heap):
    bo, w, cfg, led = _setup(tmp_path, FULL_LOG - 8)
    g = BacklogGate(cfg, heap, mp=mp).start()
    decided = []

    def progress(gid, done, total):
        if done and len(decided) < 3:  # a rider at the gate between two frames of the sync
            decided.append(g.scan(w.qr_text(w.next_code()))["decision"])

    try:
        s = sync_gate(g.transport(), bo, led, progress=progress)
        assert s["pulled"] >= FULL_LOG - 8 and s["anomalies"] == 0
        # warned well before the log is full (LOG_WARN_PCT), with what happens then
        # said after the pull: the fill found before it, and what is left (0, or the riders since)
        assert any("operation log was 99% full before this sync" in x and "refuses every rider" in x
                   for x in s["warnings"]), s["warnings"]
        assert decided == ["OPEN"] * 3
        sizes = s["batch_sizes"]
        assert sizes[-1] == 0 or min(sizes) >= 1
        assert max(sizes) <= 200 and s["gate_heap_free"] > 0
        # one signature per session, not per batch: the first, every 32nd seal, the final empty one (a
        # seal lost to a retried pull, the gate short of heap, still counts towards the 32: one more)
        assert s["batches_signed"] <= 3 + len(sizes) // 32 < len(sizes), (s["batches_signed"], len(sizes))
        seqs = [r["seq"] for r in led.records(7)]
        assert len(seqs) == len(set(seqs))
        again = sync_gate(g.transport(), bo, led)
        assert again["pulled"] in (0, 1, 2, 3)  # only what came since
        assert not any("operation log" in x for x in again["warnings"])
    finally:
        g.kill()


def test_cut_at_every_frame_of_a_large_backlog(tmp_path):
    """~600 records in batches the heap allows; the link is cut after 1, 2, 3 ... frames until a
    sync completes: every record is in the ledger exactly once."""
    bo, w, cfg, led = _setup(tmp_path, 600)
    g = BacklogGate(cfg, HEAP64).start()
    try:
        k = 1
        while True:
            try:
                sync_gate(DropAfter(g.transport(), k), bo, led)
                break
            except LinkError:
                k += 1
        assert k > 5
        seqs = [r["seq"] for r in led.records(7)]
        assert seqs == list(range(1, 601))
    finally:
        g.kill()


def test_progress_of_a_retried_sync_counts_every_attempt(tmp_path):
    """A sync whose first session is cut after some batches committed: the retry's fresh session
    counts from 0 against what is left, yet the progress the caller sees is one sync (records
    pulled by every attempt, of the whole backlog), never going back (QA: "0/0 2250 new")."""
    from offgate_host.ledger.pull import sync_with_retries
    bo, w, cfg, led = _setup(tmp_path, 600)
    g = BacklogGate(cfg, HEAP64).start()
    seen, made = [], []

    def transport():
        made.append(1)
        return DropAfter(g.transport(), 12) if len(made) == 1 else g.transport()

    try:
        s = sync_with_retries(transport, bo, led, retries=2, delay=0, max_records=50,
                              progress=lambda gid, done, backlog: seen.append((done, backlog)))
    finally:
        g.kill()
    assert s["attempts"] == 2 and s["pulled"] == 600 and s["new"] == 600, s
    dones = [d for d, _b in seen]
    assert dones == sorted(dones) and seen[-1] == (600, 600), seen
    assert all(b >= d for d, b in seen) and min(b for _d, b in seen) == 600, seen


def test_cli_sync_progress_per_gate_and_totals(tmp_path):
    """`offgate sync` with a gate holding a backlog and a target that is not there: a bar per gate
    and one for all gates; the failed gate's bar is not full; one line of error, non-zero exit."""
    from click.testing import CliRunner

    from mpbridge import free_port
    from offgate_host.cli import main as cli
    bo, w, cfg, led = _setup(tmp_path, 300)
    led.close()
    g = BacklogGate(cfg, HEAP64).start()
    try:
        r = CliRunner().invoke(cli, ["sync", "--data", str(tmp_path / "bo"), "--retries", "0", "--timeout", "5",
                                     "tcp:127.0.0.1:%d" % g.port, "tcp:127.0.0.1:%d" % free_port()])
    finally:
        g.kill()
    assert r.exit_code == 1 and "1 of 2 gate(s) failed to sync" in r.output, r.output
    lines = r.output.splitlines()
    total = [x for x in lines if x.startswith("all gates")][-1]
    assert "2/2" in total and "300 record(s)" in total and "1 failed" in total, total
    ok = [x for x in lines if "gate 7" in x][-1]
    assert "300/300" in ok, ok
    bad = [x for x in lines if "FAILED" in x][-1]
    assert "0/1" in bad and "━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━" not in bad, bad


def test_log_warning_threshold():
    from offgate_host.ledger.pull import LOG_WARN_PCT, log_warning
    cap = 2016
    assert log_warning(3, {"backlog": cap * LOG_WARN_PCT // 100 - 1, "capacity_records": cap}) is None
    w = log_warning(3, {"backlog": cap // 2, "capacity_records": cap, "policy": "admit"})
    assert w.startswith("gate 3: operation log 50% full") and "opens without logging" in w
    assert log_warning(3, {}) is None  # an older gate's status without the fields
    w = log_warning(3, {"backlog": cap - 16, "capacity_records": cap}, synced=cap - 10)
    assert w.startswith("gate 3: operation log was 99% full before this sync") and "; 0 left)" in w, w
    assert "refuses every rider" in w
