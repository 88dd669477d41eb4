"""Boot-time conversion of a version-1 operation log (64-byte records, stored chain) to the
32-byte format, on real MicroPython (docs/oplog.md "Upgrading from the 64-byte format").

The fixture tests/fixtures/oplog_v1/ was written by the OLD firmware code (commit 017a642,
tests/fixtures/oplog_v1/make_fixture.py): 30 records in 512-byte segments, acknowledged up to 9
(its first segment freed), record 17 damaged on flash; expected.json is what the old code read.
"""
import json
import tempfile
import time
from pathlib import Path

import pytest

from mpbridge import FW_TESTS, MP32, RUNTIMES, needs_mp32, run_micropython
from offgate_host.ledger.ledger import chain_next_body, decode_record
from oplogv1 import write_v1_log

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "oplog_v1"


def test_v1_writer_matches_the_old_firmware():
    """The version-1 writer above gives the bytes the old firmware wrote (the fixture's segment 2:
    records 8..14, undamaged), so the large log below is the old format."""
    with tempfile.TemporaryDirectory() as d:
        write_v1_log(Path(d), 14, per=7)
        assert (Path(d) / "00000002.seg").read_bytes() == (FIXTURE / "log" / "00000002.seg").read_bytes()


def _expected():
    return json.loads((FIXTURE / "expected.json").read_text())


def _convert(tmp_path, seg_bytes, mp, fixture=FIXTURE):
    r = run_micropython(FW_TESTS / "oplog_upgrade.py", "convert", fixture, tmp_path / "log", seg_bytes, mp=mp,
                        heap="128k")
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    assert lines and r.returncode == 0, r.stdout + r.stderr
    return json.loads(lines[-1])


@pytest.mark.parametrize("mp", RUNTIMES)
@pytest.mark.parametrize("seg_bytes", [224, 16368])  # 5 records a segment (several), the default (one)
def test_v1_log_converted_at_boot(tmp_path, seg_bytes, mp):
    exp = _expected()
    out = _convert(tmp_path, seg_bytes, mp)
    s = out["summary"]
    dmg = exp["damaged"]
    # every unsynced record is there under its seq; the acknowledged point and its chain unchanged
    assert (out["acked"], out["head"]) == (exp["acked"], exp["head"]) == (9, 30)
    assert out["acked_chain"] == exp["acked_chain"]
    assert [r[0] for r in out["records"]] == list(range(10, 31))
    assert s["upgraded"] == [20, 0, 0] and s["damaged"] == [dmg] and s["cut"] == 0 and not s["gap"]
    # only version-2 segments (numbered above the old ones), ack and hwm are left; the conversion
    # code is not left loaded
    assert all(nm in ("ack", "hwm") or (nm.endswith(".seg") and int(nm[:8]) > 5) for nm in out["files"])
    assert out["loaded"] == ["offgate.log.oplog", "offgate.log.record"]
    # the host's decoder and chain (the ledger's) agree with the old firmware's records
    prev = bytes.fromhex(out["acked_chain"])
    old = {r["seq"]: r for r in exp["records"]}
    for seq, raw, ok, chain in out["records"]:
        raw = bytes.fromhex(raw)
        d = decode_record(raw)
        assert d["ok"] is ok is (seq != dmg)
        prev = chain_next_body(prev, raw[:28])
        assert prev.hex() == chain
        if seq < dmg:
            assert chain == old[seq]["chain"]  # the same chain the old firmware stored
        if ok:
            o = old[seq]
            assert (d["seq"], d["t"], d["ctr"], d["decision"], d["reason"], d["missed"]) == \
                (seq, o["t"], o["ctr"], o["decision"], o["reason"], o["missed"])
            assert (d["cti"].hex() if d["cti"] else None) == o["cti"]
    assert prev.hex() == out["head_chain"]
    # the second boot finds nothing to convert and the same log
    assert out["again"] and out["summary2"]["upgraded"] is None


@pytest.mark.parametrize("mp,block,blocks", [
    pytest.param(None, 512, 96, id="mp64-512"),
    pytest.param(MP32, 512, 96, id="mp32-512", marks=needs_mp32),
    pytest.param(None, 4096, 24, id="mp64-4096"),  # the ESP32's flash sector
])
def test_power_cut_at_every_flash_operation_of_the_conversion(mp, block, blocks):
    """A cut at each erase/program of the converting boot: the next boot ends with exactly the log
    the uncut conversion gives (no record lost or duplicated), nothing staged left over."""
    r = run_micropython(FW_TESTS / "oplog_upgrade.py", "powercut", FIXTURE, 224, block, blocks, mp=mp, heap="4m",
                        timeout=600)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    assert lines, r.stdout + r.stderr
    res = json.loads(lines[-1])
    print(res)
    assert res["failed"] == 0 and r.returncode == 0, res["first_failure"]
    assert res["cut_points"] == res["ops_uncut"] > 30
    assert res["cuts_after_commit"] > 0 and res["records"] == 21


@pytest.mark.parametrize("mp", RUNTIMES)
def test_upgraded_gate_boots_with_a_note_and_a_sync_pulls_the_records(tmp_path, mp):
    """The simulated gate (real firmware, the sync heap) boots on a state directory holding the
    old firmware's log: its boot report says what was converted, and one sync brings every
    unsynced record into the ledger under its seq, the damaged one as damaged."""
    import shutil
    import time

    from backlog import BacklogGate
    from offgate_host.backoffice.backoffice import BackOffice
    from offgate_host.ledger.ledger import Ledger
    from offgate_host.device.simgate import SYNC_HEAP_32, SYNC_HEAP_64, write_gate_dir
    from offgate_host.device.provision import provision_gate_dir
    from offgate_host.ledger.pull import sync_with_retries

    now = int(time.time())
    bo = BackOffice(tmp_path / "bo")
    bo.init_issuer("t", valid_from=now - 86400)
    cfg = write_gate_dir(tmp_path / "gate", gate_id=7, zone=1, trust=bo.trust_bytes(), deny=bo.deny_bytes())
    provision_gate_dir(cfg.parent, bo, gate_id=7)
    shutil.copytree(FIXTURE / "log", cfg.parent / "oplog")
    led = Ledger.for_backoffice(bo)
    g = BacklogGate(cfg, SYNC_HEAP_64 if mp is None else SYNC_HEAP_32, mp=mp).start()
    try:
        assert "oplog: 20 records converted from the 64-byte format" in g.boot["notes"], g.boot
        # as `offgate sync` does: at 128k a session may end short of heap (a loaded CI rehearsal:
        # "pull: gate low on heap") and a fresh one goes on from the last acknowledgement
        s = sync_with_retries(g.transport, bo, led, delay=0.2)
        assert s["pulled"] == 21, s
        seqs = [r["seq"] for r in led.records(7)]
        # the damaged record is held apart (with its bytes, an anomaly), every other one is a record
        assert sorted(seqs) == [q for q in range(10, 31) if q != 17], seqs
        assert s["new"] == 20 and s["duplicates"] == 0 and s["fraud"] == 0, s
        # no chain break: the only anomalies are the damaged record and records 1..9, which this
        # fresh ledger never got (the old firmware's sync acknowledged them to another one)
        assert sorted((a["kind"], a["seq"]) for a in led.anomalies()) == [("damaged_record", 17), ("gap", 10)]
    finally:
        g.kill()



@pytest.mark.parametrize("mp", RUNTIMES)
def test_full_old_default_log_converted_at_the_device_heap(tmp_path, mp):
    """The old firmware's whole default log (16 segments of 4096 bytes, 1008 unsynced records) on a
    gate booting at the device heap (128k on the 32-bit build): every record converted, and the
    next boot opens the converted log with nothing to say."""
    from offgate_host.backoffice.backoffice import BackOffice
    from offgate_host.device.simgate import SimGate, write_gate_dir

    bo = BackOffice(tmp_path / "bo")
    bo.init_issuer("t", valid_from=int(time.time()) - 86400)
    cfg = write_gate_dir(tmp_path / "gate", gate_id=7, zone=1, trust=bo.trust_bytes(), deny=bo.deny_bytes())
    write_v1_log(cfg.parent / "oplog", 1008)
    g = SimGate(cfg, mp=mp).start()
    try:
        assert "oplog: 1008 records converted from the 64-byte format" in g.boot["notes"], g.boot
    finally:
        g.kill()
    names = sorted(p.name for p in (cfg.parent / "oplog").iterdir())
    assert names == ["00000017.seg", "00000018.seg"], names  # 509 + 499 records, above the old segnos
    g = SimGate(cfg, mp=mp).start()
    try:
        assert not any("oplog" in n for n in g.boot["notes"]), g.boot
    finally:
        g.kill()


def test_bench_driver_runs(tmp_path):
    """bench/oplog_upgrade.py's MicroPython side (bench mode) still runs: times, not thresholds."""
    write_v1_log(tmp_path / "log", 100)
    r = run_micropython(FW_TESTS / "oplog_upgrade.py", "bench", tmp_path / "log", 16368)
    res = json.loads([ln for ln in r.stdout.splitlines() if ln.startswith("{")][-1])
    assert res["converted"] == 100 and res["head"] == 100


@pytest.mark.parametrize("mp", RUNTIMES)
def test_no_space_for_the_copy_keeps_the_old_log_and_logs_nothing_over_it(mp):
    """littlefs too full for the converted copy: the boot leaves every old file as it was, the log
    takes no record (LogFull: the gate's full-log policy applies), and once space is back the next
    boot converts it whole."""
    r = run_micropython(FW_TESTS / "oplog_upgrade.py", "nospace", FIXTURE, mp=mp, heap="1m")
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    assert lines and r.returncode == 0, r.stdout + r.stderr
    res = json.loads(lines[-1])
    assert res["summary"]["upgrade_failed"] == 28  # ENOSPC
    assert res["append"] == "LogFull" and res["status_full"] and res["read"] == 0
    assert res["unchanged"]
    assert res["summary2"]["upgraded"] == [20, 0, 0] and res["records"] == list(range(10, 31))


def test_a_broken_chain_in_the_old_log_is_reported_at_boot(tmp_path):
    """A record changed on flash with its CRC redone (its stored chain no longer follows): the old
    recovery's link check finds it; the conversion keeps the record and reports the break (the new
    format recomputes the chain, so only the boot report can carry it)."""
    import struct
    import zlib
    write_v1_log(tmp_path / "fx" / "log", 30, per=7)
    p = tmp_path / "fx" / "log" / "00000002.seg"
    b = bytearray(p.read_bytes())
    o = 64 + (12 - 8) * 64  # record 12
    b[o + 12:o + 16] = struct.pack(">I", 999)  # its counter
    b[o + 60:o + 64] = struct.pack(">I", zlib.crc32(bytes(b[o:o + 60])))
    p.write_bytes(bytes(b))
    out = _convert(tmp_path, 224, None, tmp_path / "fx")
    assert out["summary"]["upgraded"] == [30, 1, 12]
    assert [r[0] for r in out["records"]] == list(range(1, 31)) and all(r[2] for r in out["records"])
