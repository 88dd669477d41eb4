"""The fleet view: `offgate gates` and the dashboard share one alert computation (fleet.gates)."""
import json
import time

from click.testing import CliRunner

from offgate_host.ledger import fleet
from offgate_host.wire import keys
from offgate_host.backoffice.backoffice import BackOffice
from offgate_host.cli import main
from offgate_host.ledger.ledger import Ledger

NOW = int(time.time())


def test_gates_registry_alerts_thresholds_and_cli(tmp_path):
    r = CliRunner()
    d = ["--data", str(tmp_path / "bo")]
    assert r.invoke(main, ["init", *d]).exit_code == 0
    with BackOffice(tmp_path / "bo", create=False) as bo, Ledger.for_backoffice(bo) as led:
        bo.register_gate(7, keys.pub_bytes(keys.generate()), "esp32_devkitc")  # provisioned, never synced
        pub = keys.pub_bytes(keys.generate())
        led.enroll_gate(3, pub)
        led.note_status(3, {"firmware": "0.9", "log": {"bytes_used": 900, "capacity": 1000},
                            "deny": {"serial": 4}, "trust_serial": 2, "station": "",
                            "clock": {"trusted": False, "source": "floor"}, "notes": ["deny list damaged"]},
                        now=NOW - 3 * 3600)
        led.note_time(3, 45, now=NOW - 3 * 3600)
        rows = fleet.gates(bo, led, now=NOW)
        g3, g7 = rows
        assert g3["key"] == fleet.fingerprint(pub) and (g3["deny_serial"], g3["trust_serial"]) == (4, 2)
        assert g3["log_fill"] == 0.9 and g3["drift_s"] == 45 and g3["firmware"] == "0.9"
        text = " | ".join(g3["alerts"])
        assert "+45 s off" in text and "90% full" in text and "boot notes: deny list damaged" in text
        assert "not synced" not in text  # 3 h < 6 h
        assert g7["alerts"] == ["registered, never synced"] and g7["board"] == "esp32_devkitc"
        late = fleet.gates(bo, led, now=NOW, thresholds={"sync_late_s": 3600, "drift_s": 60, "log_fill": 0.95})
        text = " | ".join(late[0]["alerts"])
        assert "not synced for 3 h" in text and "off" not in text.replace("clock not", "") and "full" not in text
        # QA8: a threshold under an hour said "not synced for 0 h"
        soon = fleet.gates(bo, led, now=NOW - 3 * 3600 + 25 * 60, thresholds={"sync_late_s": 60})
        assert "not synced for 25 min" in soon[0]["alerts"], soon[0]["alerts"]
        from offgate_host.web import data
        assert data.gates(bo, led, NOW) == rows  # the dashboard's view is the same computation
    res = r.invoke(main, ["gates", *d])
    assert res.exit_code == 0 and "2 gate(s), 2 with alerts" in res.output, res.output
    assert all(len(line) <= 80 for line in res.output.splitlines()), res.output
    res = r.invoke(main, ["gates", "--check", "--sync-late", "1h", *d])
    assert res.exit_code == 1 and res.stderr == "offgate: 2 gate(s) with alerts\n"
    res = r.invoke(main, ["gates", "--json", *d])
    assert [g["gate"] for g in json.loads(res.output)] == [3, 7]
    res = r.invoke(main, ["gates", "--sync-late", "soon", *d])
    assert res.exit_code == 2 and "duration" in res.stderr


def test_sync_all_every_backs_off_per_gate_one_line_each(tmp_path, monkeypatch):
    import socket

    from offgate_host.cli import ledger as cli  # `offgate sync` lives there
    r = CliRunner()
    d = ["--data", str(tmp_path / "bo")]
    assert r.invoke(main, ["init", *d]).exit_code == 0
    res = r.invoke(main, ["sync", "--all", *d])
    assert res.exit_code == 1 and "no gate has a sync target" in res.stderr
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens: every sync fails at once
    res = r.invoke(main, ["gates", "target", "4", "tcp:127.0.0.1:%d" % port, *d])
    # QA8: a target for a gate nobody provisioned or enrolled was kept (never shown, always synced)
    assert res.exit_code == 1 and "gate 4 is neither provisioned nor enrolled" in res.stderr, res.output
    with BackOffice(tmp_path / "bo", create=False) as bo:
        bo.register_gate(4, keys.pub_bytes(keys.generate()), "esp32_devkitc")
    assert r.invoke(main, ["gates", "target", "4", "tcp:127.0.0.1:%d" % port, *d]).exit_code == 0
    res = r.invoke(main, ["gates", "target", "5", "carrier-pigeon", *d])
    assert res.exit_code == 1 and res.stderr.startswith("offgate: ")
    assert "tcp:127.0.0.1:%d" % port in r.invoke(main, ["gates", "target", "4", *d]).output
    slept = []
    monkeypatch.setattr(cli, "_sleep", slept.append)
    clock = [1000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])

    def advance(sec):
        slept.append(sec)
        clock[0] += sec
    monkeypatch.setattr(cli, "_sleep", advance)
    res = r.invoke(main, ["sync", "--all", "--every", "5m", "--retries", "0", "--rounds", "3", *d])
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 3 and all("FAILED" in ln for ln in lines), lines  # one line per sync
    assert [ln.split("next try in ")[1] for ln in lines] == ["600s", "1200s", "2400s"]  # doubling back-off
    assert slept == [600.0, 1200.0]
    assert fleet.backoff(300, 10) == 3600  # retried at least hourly
    res = r.invoke(main, ["sync", "--all", "--every", "2s", *d])
    assert res.exit_code == 2 and "at least 10s" in res.stderr


def test_sync_every_outlives_a_database_restart(tmp_path, monkeypatch):
    """QA8: `offgate sync --all --every` died with an internal error (exit 3, a SQLAlchemy
    traceback) when PostgreSQL restarted. The round now says so in one line, waits one interval,
    connects again and goes on; a command that loses the server mid-way is one line, exit 1."""
    import psycopg

    from offgate_host.cli import ledger as cli
    from offgate_host.ledger import pull
    r = CliRunner()
    d = ["--data", str(tmp_path / "bo")]
    assert r.invoke(main, ["init", *d]).exit_code == 0
    with BackOffice(tmp_path / "bo", create=False) as bo:
        bo.register_gate(4, keys.pub_bytes(keys.generate()), "esp32_devkitc")
    assert r.invoke(main, ["gates", "target", "4", "tcp:127.0.0.1:9", *d]).exit_code == 0
    clock = [1000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    monkeypatch.setattr(cli, "_sleep", lambda sec: clock.__setitem__(0, clock[0] + sec))
    calls, reopened = [], []

    def sync(connect, bo, led, **kw):
        calls.append(led)
        if len(calls) == 1:
            raise psycopg.OperationalError("terminating connection due to administrator command")
        return {"gate_id": 4, "new": 3, "duplicates": 0, "anomalies": 0, "fraud": 0, "drift": 0}
    monkeypatch.setattr(pull, "sync_with_retries", sync)
    real = cli._reopen

    assert r.invoke(main, ["init", "--data", str(tmp_path / "other")]).exit_code == 0

    def reopen(data_dir, db):
        reopened.append(1)
        if len(reopened) == 1:  # the server still starting
            from offgate_host.db import DatabaseError
            raise DatabaseError("cannot connect to PostgreSQL at postgresql://x/y: Connection refused")
        if len(reopened) == 2:  # another back office's database now answers at the URL (QA9)
            return real(tmp_path / "other", None)
        return real(data_dir, db)
    monkeypatch.setattr(cli, "_reopen", reopen)
    res = r.invoke(main, ["sync", "--all", "--every", "5m", "--rounds", "4", *d])
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 4 and "FAILED: lost the connection to PostgreSQL" in lines[0], lines
    assert "connecting again in 300s" in lines[0] and "database still unavailable: cannot connect" in lines[1]
    assert "is not this back office's (its issuer keys differ)" in lines[2], lines
    assert "gate 4 ok: 3 new" in lines[3], lines
    assert reopened == [1, 1, 1] and calls[1] is not calls[0]  # a new ledger on a new connection
    calls.clear()
    res = r.invoke(main, ["sync", "tcp:127.0.0.1:9", *d])  # the same loss in a one-off sync
    assert res.exit_code == 1 and res.stderr.startswith("offgate: lost the connection to PostgreSQL"), res.output
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_sync_all_says_when_a_target_reaches_another_gate(tmp_path, monkeypatch):
    """QA8: with gate 101's target pointing at gate 102's port, `sync --all` synced 102 twice and
    101 never, saying nothing. The gate that answers must be the one registered at the target;
    otherwise that gate's sync fails in one line naming both (its records stay, as gate 102's)."""
    from offgate_host.ledger import pull
    r = CliRunner()
    d = ["--data", str(tmp_path / "bo")]
    assert r.invoke(main, ["init", *d]).exit_code == 0
    with BackOffice(tmp_path / "bo", create=False) as bo:
        for g in (101, 102):
            bo.register_gate(g, keys.pub_bytes(keys.generate()), "esp32_devkitc")
    for g, port in ((101, 7702), (102, 7702)):
        assert r.invoke(main, ["gates", "target", str(g), "tcp:127.0.0.1:%d" % port, *d]).exit_code == (g == 102)
    # QA9: one target for two gates is refused (sync --all would sync one under the other's name)
    assert r.invoke(main, ["gates", "target", "101", "tcp:127.0.0.1:7701", *d]).exit_code == 0
    assert r.invoke(main, ["gates", "target", "102", "tcp:127.0.0.1:7702", *d]).exit_code == 0

    def sync(connect, bo, led, **kw):  # both targets answer as gate 102
        return {"gate_id": 102, "pulled": 5, "new": 5, "duplicates": 0, "anomalies": 0, "fraud": 0, "drift": 0}
    monkeypatch.setattr(pull, "sync_with_retries", sync)
    res = r.invoke(main, ["sync", "--all", *d])
    assert res.exit_code == 1, res.output
    assert "tcp:127.0.0.1:7701 answered as gate 102, not gate 101" in res.stderr, res.stderr
    assert "1 of 2 gate(s) failed" in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    res = r.invoke(main, ["sync", "tcp:127.0.0.1:7701", *d])  # a target given by hand: any gate
    assert res.exit_code == 0, res.output
