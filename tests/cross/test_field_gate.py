"""The gate in the field (issue #10), on the simulated gate as a device would run it: the 32-bit
MicroPython build at the device heap (128k), firmware from .mpy files. Field cases from
../shared/field-cases/ where the issue names them.

- a replay table that never stops the gate: 2,000 distinct credentials through one gate (4x the
  default replay_slots, all within one freshness horizon so the table must evict) all open, and
  the gate reboots and keeps refusing replays of what it still holds;
- double-terminator: a run of CR/LF is one terminator (ESP32 app, GM65 driver, fake pins);
"""
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from fieldhelp import NOW, Issuer
from mpbridge import FW_TESTS, MP32, RUNTIMES, needs_mp32, run_micropython
from offgate_host.wire import formats
from offgate_host.device.simgate import SimGate, write_gate_dir

N_DISTINCT = 2000


@needs_mp32
def test_2000_distinct_credentials_open_at_128k_on_32bit_and_the_gate_reboots(tmp_path):
    iss = Issuer()
    creds = [iss.credential() for _ in range(N_DISTINCT)]
    # log sized for the run (the default 2,016 records would fill with an unsynced gate: LOG_FULL
    # is its own, tested reason)
    cfg = write_gate_dir(tmp_path / "gate", gate_id=1, zone=1, trust=iss.trust(), max_age_s=3600,
                         log_max_segments=48)
    with SimGate(cfg, mp=MP32, heap="128k") as g:
        for i, (cti, cred) in enumerate(creds):
            r = g.scan(iss.code(cred, NOW, 1))
            assert r["decision"] == "OPEN", (i, r)
        st = g.stop()
    assert st["opened"] == N_DISTINCT and st["replay_evictions"] > 0, st
    assert st["replay_used"] * 4 <= st["replay_slots"] * 3
    with SimGate(cfg, mp=MP32, heap="128k") as g2:  # reboot: load and restore in the same bounded way
        assert g2.boot["event"] == "boot"
        last_cti, last = creds[-1]
        r = g2.scan(iss.code(last, NOW, 1))
        assert r["reason"] == "REPLAY", r          # the newest are kept
        r = g2.scan(iss.code(last, NOW, 2))
        assert r["decision"] == "OPEN", r
        for cti, cred in creds[:5]:                # older ones: may have been evicted, never an error
            assert g2.scan(iss.code(cred, NOW, 7))["decision"] == "OPEN"
        st2 = g2.stop()
    assert st2["denied"] == 1, st2


FIELD = Path(__file__).resolve().parents[3] / "shared" / "field-cases"
needs_field = lambda case: pytest.mark.skipif(not (FIELD / case).is_dir(),  # noqa: E731
                                              reason="field case %s not found beside the clone" % case)


@needs_field("double-terminator")
@pytest.mark.parametrize("mp", RUNTIMES)
def test_field_case_double_terminator_on_the_esp32_app(tmp_path, mp):
    """One code ended by CR CR through the GM65 driver and the ESP32 actuator: one OPEN, no phantom
    DENY EMPTY, the red LED never on."""
    from esp32help import CASES_HEAP, compiled_helpers, make_scenario
    case = FIELD / "double-terminator"
    d = make_scenario(tmp_path / "sc", n_codes=1)
    for f in ("trust.cbor", "scanner-stream.bin"):
        shutil.copy(case / f, d / f)
    env_old = os.environ.get("OFFGATE_SCENARIO")
    os.environ["OFFGATE_SCENARIO"] = str(d)
    try:
        r = run_micropython(FW_TESTS / "mptest.py", "cases_field", heap=CASES_HEAP,
                            extra_path=[compiled_helpers()], timeout=120, mp=mp)
    finally:
        if env_old is None:
            del os.environ["OFFGATE_SCENARIO"]
        else:
            os.environ["OFFGATE_SCENARIO"] = env_old
    assert "1 passed, 0 failed" in r.stdout, r.stdout + r.stderr


# ---------------------------------------------------------------------------- time across resets
DAY = 86400


class ClockSimGate(SimGate):
    """A simulated gate with its sync link on a loopback port and a chosen simulated RTC."""

    def __init__(self, cfg, port, mp=None, clock_offset=0, rtc_start=None):
        super().__init__(cfg, heap=None, clock_offset=clock_offset, mp=mp, rtc_start=rtc_start)
        self.port = port

    def start(self):
        import subprocess
        from offgate_host.device.simgate import SYNC_HEAP_32, SYNC_HEAP_64, micropython_env, repo_root, sim_command, word_bits
        heap = SYNC_HEAP_32 if word_bits(self.mp) == 32 else SYNC_HEAP_64
        extra = ["--rtc-start", self.rtc_start] if self.rtc_start is not None else []
        cmd = sim_command(self.config_path, heap, "--clock-offset", self.clock_offset, *extra,
                          "--sync", "127.0.0.1:%d" % self.port, mp=self.mp)
        self._actions = open(self.actions_path, "a")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._actions,
                                     env=micropython_env(mp=self.mp), cwd=str(repo_root()))
        self.boot = self._read()
        assert self.boot.get("event") == "boot", self.boot
        assert self._read().get("event") == "sync_listening"
        return self

    def sync(self, bo, led, **kw):
        from offgate_host.sync.transports import TcpTransport
        from offgate_host.ledger.pull import sync_with_retries
        # as `offgate sync` does: on the 32-bit build at 128k a session may end short of heap, and
        # a fresh one goes on from the last acknowledgement
        return sync_with_retries(lambda: TcpTransport("127.0.0.1", self.port, timeout=60), bo, led, delay=0.2, **kw)


def _time_setup(tmp_path, **settings):
    from offgate_host.backoffice.backoffice import BackOffice
    from offgate_host.ledger.ledger import Ledger
    from offgate_host.device.provision import provision_gate_dir
    from offgate_host.wallet import Wallet
    bo = BackOffice(tmp_path / "bo")
    bo.init_issuer("t", valid_from=NOW - 90 * DAY)
    bo.create_account("a", balance=50000)  # many credentials, each holding the default cap
    w = Wallet.create(tmp_path / "w.json")
    w.set_credential(bo.issue_credential("a", w.pub65, zones=[1], now=NOW, valid_seconds=7 * DAY))
    old = Wallet.create(tmp_path / "old.json")  # a credential that expired yesterday
    old.set_credential(bo.issue_credential("a", old.pub65, zones=[1], now=NOW - 3 * DAY, valid_seconds=2 * DAY))
    cfg = write_gate_dir(tmp_path / "gate", gate_id=5, zone=1, trust=bo.trust_bytes(), deny=bo.deny_bytes(),
                         **settings)
    provision_gate_dir(cfg.parent, bo, gate_id=5)
    return bo, Ledger.for_backoffice(bo), w, old, cfg


@needs_field("time-lost-at-reset")
@pytest.mark.parametrize("mp", RUNTIMES)
def test_field_case_time_lost_at_reset(tmp_path, mp):
    """Clock 30 days behind: refused; a sync sets signed time: opens; a reset keeps the time."""
    from mpbridge import free_port
    bo, led, w, old, cfg = _time_setup(tmp_path)
    code = lambda: w.qr_text(w.next_code())  # noqa: E731
    g = ClockSimGate(cfg, free_port(), mp=mp, clock_offset=-30 * DAY).start()
    try:
        assert g.scan(code())["decision"] == "DENY"      # its clock is wrong: expected
        s = g.sync(bo, led)
        assert abs(s.get("drift", s.get("time_fixed", 0)) - 30 * DAY) < 60, s
        if "time_fixed" in s:  # the operator credential looked invalid: the time came first
            g.sync(bo, led)
        assert g.scan(code())["decision"] == "OPEN"
    finally:
        g.stop()
    g = ClockSimGate(cfg, free_port(), mp=mp, clock_offset=-30 * DAY).start()  # a reset
    try:
        assert g.boot["clock_trusted"] and g.boot["clock_source"] == "signed", g.boot
        assert abs(g.boot["t"] - NOW) < 600, g.boot
        assert g.scan(code())["decision"] == "OPEN"
    finally:
        g.stop()


@pytest.mark.parametrize("policy", ["degraded", "refuse"])
def test_power_loss_boot_scans_sync(tmp_path, policy):
    """Power loss (the RTC restarts at 2000-01-01): the clock runs on from its floor, untrusted;
    "refuse" refuses every code, "degraded" admits valid codes but never an expired or revoked
    credential; a sync's signed time makes it trusted again."""
    from mpbridge import free_port
    bo, led, w, old, cfg = _time_setup(tmp_path, untrusted_time_policy=policy)
    code = lambda: w.qr_text(w.next_code())  # noqa: E731
    g = ClockSimGate(cfg, free_port()).start()
    try:
        assert g.scan(code())["decision"] == "OPEN"
        g.sync(bo, led)                                  # signed time: floor = now
    finally:
        g.stop()
    bo.deny(formats_cti(w))                               # revoked while the gate is dark ...
    revoked_ok = w.qr_text(w.next_code())
    g = ClockSimGate(cfg, free_port(), rtc_start=946684800).start()
    try:
        b = g.boot
        assert not b["clock_trusted"] and b["clock_source"] == "floor", b
        assert any("lost its time" in n for n in b["notes"]), b["notes"]
        assert b["t"] >= NOW - 600                       # never below the floor
        assert b["clock_mode"] == ("degraded" if policy == "degraded" else "refuse")
        r = g.scan(revoked_ok)                           # ... but this gate has not heard yet
        assert r["decision"] == ("OPEN" if policy == "degraded" else "DENY"), r
        if policy == "refuse":
            assert r["reason"] == "CLOCK_UNTRUSTED"
        r = g.scan(old.qr_text(old.code(NOW, 1)))        # expired before the floor: never
        assert r["decision"] == "DENY", r
        r = g.scan(old.qr_text(old.code(NOW - 3 * DAY + 60, 2)))  # an old iat: stale against the floor
        assert r["decision"] == "DENY", r
        s = g.sync(bo, led)                              # deny list and signed time arrive
        st = json.loads(led.db.execute("SELECT status FROM ledger_gates WHERE gate = 5").fetchone()[0])
        assert st["clock"]["trusted"] is False and st["clock"]["source"] == "floor", st["clock"]
        gr = [x for x in led.report()["gates"] if x["gate"] == 5][0]     # the back office shows it
        assert gr["clock"]["trusted"] is False and gr["clock"]["source"] == "floor", gr
        g2 = g.scan(code())
        assert g2["reason"] == "REVOKED", g2             # trusted again, and the revocation holds
    finally:
        g.stop()
    g = ClockSimGate(cfg, free_port()).start()
    try:
        assert g.boot["clock_trusted"] and g.boot["clock_source"] == "signed", g.boot
    finally:
        g.stop()


def formats_cti(w):
    from offgate_host.wire import formats
    return formats.parse_credential(w.credential)["cti"]


# ---------------------------------------------------------------------------- trust store budget
def test_trust_store_over_the_key_budget_is_no_issuer_trusted_not_a_crash(tmp_path):
    """More keys than a 128k gate is sized for (trust.MAX_KEYS = 16; 20 measured to fit): refused
    whole and reported, the gate runs and refuses (UNKNOWN_ISSUER) instead of failing to boot."""
    main = Issuer()
    ks = [Issuer().entry() for _ in range(16)] + [main.entry()]
    cfg = write_gate_dir(tmp_path / "g", gate_id=1, zone=1, trust=formats.trust_store_bytes(ks), tables=False)
    with SimGate(cfg) as g:
        assert g.boot["trust_keys"] == 0 and any("more than 16" in n for n in g.boot["notes"]), g.boot
        assert g.scan(main.code(main.credential()[1], NOW, 1))["reason"] == "UNKNOWN_ISSUER"


def test_back_office_never_ships_expired_keys(tmp_path):
    from offgate_host.backoffice.backoffice import BackOffice
    now = int(time.time())   # the clock check compares with the real time: not now from import
    bo = BackOffice(tmp_path / "bo")
    bo.init_issuer("t", valid_from=now - 400 * DAY, valid_days=365)   # expired a month ago
    bo.rotate_issuer(valid_from=now - DAY, valid_days=365)
    keys = formats.parse_trust_store(bo.trust_bytes(now=now))
    assert len(keys) == 1 and keys[0]["exp"] > now
    assert len(bo.gate_trust_keys(now=now - 390 * DAY)) == 2  # a future key ships early


def test_signed_time_out_of_bounds_or_below_the_floor_is_refused_unless_forced(tmp_path):
    """Through a real sync session: 0 and 2^40 (accepted before) and a time a week below the
    floor are refused, the clock unchanged; the root key can force it."""
    from mpbridge import free_port
    from offgate_host.sync.frames import GateRefused
    from offgate_host.sync.client import SyncClient
    from offgate_host.sync.transports import TcpTransport
    bo, led, w, old, cfg = _time_setup(tmp_path)
    g = ClockSimGate(cfg, free_port()).start()
    try:
        g.sync(bo, led)                                   # floor = now
        op_key, op_cred = bo.operator_identity("operator")
        with SyncClient(TcpTransport("127.0.0.1", g.port, timeout=60), op_key, op_cred) as c:
            c.handshake()
            for t in (0, 1 << 40, NOW - 7 * DAY):
                with pytest.raises(GateRefused, match="outside|floor"):
                    c.set_time(bo.root_sign, now=t)
            assert abs(c.request("status")["clock"]["now"] - NOW) < 600
            r = c.set_time(bo.root_sign, now=NOW - 7 * DAY, force=True)
            assert abs(r["t"] - (NOW - 7 * DAY)) < 600, r
    finally:
        g.stop()
