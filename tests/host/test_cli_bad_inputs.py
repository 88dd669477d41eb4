"""Every command, bad inputs: one line and a non-zero exit status, never a traceback (issue #13).

The command tree is walked, so a command added later is covered without editing this file. Each
command runs with no arguments, with a missing data directory, with a corrupt back office, with
junk values for every parameter (junk files, bad paths, huge numbers, unknown ids) and with bad
--db URLs. The CLI's entry point turns an unexpected exception into `offgate: internal error ...`
(exit 3): that, a Python exception escaping, or a traceback in the output fails the test.
"""
import json
import os
import socket
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from offgate_host.cli import main

SKIP = {("demo",)}
JUNK = b"\x00\xffjunk\x80" * 40  # runs the whole simulated chain (tests/cross/test_sim_gate.py covers it)


def walk(cmd, path=()):
    if isinstance(cmd, click.Group):
        if path and cmd.invoke_without_command:  # a group that does something itself (offgate gates)
            yield path, cmd
        for name, sub in sorted(cmd.commands.items()):
            yield from walk(sub, path + (name,))
    else:
        yield path, cmd


COMMANDS = [(p, c) for p, c in walk(main) if p not in SKIP]


def junk_value(param, tmp, variant):
    """A bad value for `param` (variant 0: junk of the right kind, 1: out of range / missing path)."""
    t = param.type
    if isinstance(t, click.Path):
        if not t.file_okay:  # a directory
            return str(tmp / "no" / "such" / "dir") if variant else str(tmp / "junk.bin")
        return str(tmp / "junk.bin") if variant == 0 else str(tmp / "no" / "such" / "file.json")
    if isinstance(t, (click.IntRange, click.types.IntParamType)):
        return str(10 ** 30) if variant == 0 else "-1"
    if isinstance(t, (click.FloatRange, click.types.FloatParamType)):
        return "1e400" if variant == 0 else "-1"
    if isinstance(t, click.Choice):
        return t.choices[0] if variant == 0 else "zz-no-such-choice"
    name = param.name or ""
    if name in ("port",):
        return "/dev/no-such-port"
    return ["zz:not:valid", "ffff-not-hex-\u00e9"][variant]


def args_for(cmd, tmp, variant, data, db=None, port=None):
    args = []
    for p in cmd.params:
        if isinstance(p, click.Option):
            if p.is_flag or p.hidden or p.name in ("data_dir", "db"):
                continue
            if p.name == "port" and port is not None:
                args += ["--port", str(port)]
                continue
            if p.required or variant == 1:
                args += [p.opts[0], junk_value(p, tmp, variant)]
        elif isinstance(p, click.Argument):
            n = p.nargs if p.nargs > 0 else 1
            args += [junk_value(p, tmp, variant)] * n
    names = {p.name for p in cmd.params}
    if "data_dir" in names:
        args += ["--data", str(data)]
    if "db" in names and db is not None:
        args += ["--db", db]
    return args


def check(res, args, may_succeed=False):
    out = res.output
    assert "Traceback" not in out, (args, out)
    assert "internal error" not in out, (args, out)
    if res.exception is not None:
        assert isinstance(res.exception, SystemExit), (args, repr(res.exception))
    if not may_succeed:
        assert res.exit_code in (1, 2), (args, res.exit_code, out)
    if res.exit_code == 1 and res.stderr:  # an operator error: exactly one line on stderr
        assert len(res.stderr.strip().splitlines()) == 1, (args, res.stderr)
        assert res.stderr.startswith("offgate: "), (args, res.stderr)


@pytest.fixture(scope="module")
def places(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad")
    (tmp / "junk.bin").write_bytes(JUNK)
    good = tmp / "good"
    r = CliRunner().invoke(main, ["init", "--data", str(good)])
    assert r.exit_code == 0, r.output
    corrupt = tmp / "corrupt"
    corrupt.mkdir()
    (corrupt / "offgate.db").write_bytes(b"this is not a database" * 100)
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    yield {"tmp": tmp, "good": good, "corrupt": corrupt, "missing": tmp / "missing", "port": busy.getsockname()[1]}
    busy.close()


@pytest.fixture(autouse=True)
def no_exec(monkeypatch):
    # `gate run` replaces the process with MicroPython once its config checks pass: never here
    def refuse(*a, **kw):
        raise AssertionError("exec reached with %r" % (a,))
    monkeypatch.setattr(os, "execvpe", refuse)


@pytest.mark.parametrize("path,cmd", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_bad_inputs_one_line_no_traceback(path, cmd, places):
    tmp = places["tmp"]
    runner = CliRunner()
    names = {p.name for p in cmd.params}
    before = sorted(os.listdir(tmp))
    runs = [  # (data dir, db, variant, may succeed)
        (places["good"], None, None, True),      # no arguments at all
        (places["missing"], None, 0, False),
        (places["corrupt"], None, 0, False),
        (places["good"], None, 0, False),
        (places["good"], None, 1, False),
    ]
    if "db" in names:
        runs += [(places["good"], "mysql://x", 0, False), (places["good"], str(tmp / "no" / "dir" / "l.db"), 0, False)]
        if path != ("init",):  # init creates the ledger it is given; everything else needs it to exist
            runs.append((places["good"], str(tmp / "typo.sqlite"), 0, False))
    for data, db, variant, may in runs:
        (tmp / "junk.bin").write_bytes(JUNK)  # a command may have written its output over it
        if path == ("init",) and data == places["missing"]:
            data = tmp / "no" / "such" / "parent"  # init creates a back office, never missing parents
        if variant is None:
            args = list(path) + (["--data", str(data)] if "data_dir" in names else [])
            if "port" in names and path == ("serve",):
                args += ["--port", str(places["port"])]
            # a command that needs arguments fails with click's usage error; one that needs none
            # may do its job on the good back office
            res = runner.invoke(main, args, input="")
            check(res, args, may_succeed=True)
            continue
        args = list(path) + args_for(cmd, tmp, variant, data, db, port=places["port"] if path == ("serve",) else None)
        res = runner.invoke(main, args, input="")
        # on the good back office a junk value may still be a legal one (a new staff name): what
        # counts there is no traceback; a missing or corrupt back office or bad --db always fails
        check(res, args, may_succeed=may or (data == places["good"] and db is None)
              or ("data_dir" not in names and data != places["good"]))
    # nothing was created beside the inputs: no back office, ledger file or directory
    assert sorted(os.listdir(tmp)) == before, set(os.listdir(tmp)) ^ set(before)
    assert not (places["missing"]).exists()


def test_ctrl_c_is_one_line_exit_130(places, monkeypatch):
    from offgate_host.backoffice import backoffice

    def interrupted(self):
        raise KeyboardInterrupt
    monkeypatch.setattr(backoffice.BackOffice, "list_accounts", interrupted)
    res = CliRunner().invoke(main, ["account", "list", "--data", str(places["good"])])
    assert res.exit_code == 130 and res.stderr == "offgate: interrupted\n", repr(res.stderr)


def test_serve_port_in_use_is_one_line(places):
    res = CliRunner().invoke(main, ["serve", "--data", str(places["good"]), "--port", str(places["port"])])
    assert res.exit_code == 1 and "cannot listen on 127.0.0.1 port %d" % places["port"] in res.stderr, res.output


def test_inspect_junk_trust_store_says_so(tmp_path):
    (tmp_path / "junk.cbor").write_bytes(JUNK)
    res = CliRunner().invoke(main, ["inspect", "OG1:XYZ", "--trust", str(tmp_path / "junk.cbor")])
    assert res.exit_code == 2 and "is not a trust store" in res.stderr, res.output


def test_only_init_creates_a_back_office(tmp_path):
    r = CliRunner()
    for args in (["account", "list"], ["issuer", "init"], ["deny", "list"], ["report"]):
        res = r.invoke(main, args + ["--data", str(tmp_path / "typo")])
        assert res.exit_code == 1 and "no back office in" in res.stderr and "offgate init" in res.stderr
    assert not (tmp_path / "typo").exists()
    res = r.invoke(main, ["init", "--data", str(tmp_path / "a" / "b")])  # no mkdir -p
    assert res.exit_code == 1 and "does not exist" in res.stderr and not (tmp_path / "a").exists()
    res = r.invoke(main, ["init", "--data", str(tmp_path / "bo"), "--db", "mysql://x"])
    assert res.exit_code == 1 and "unsupported database" in res.stderr and not (tmp_path / "bo").exists()
    res = r.invoke(main, ["init", "--data", str(tmp_path / "bo"), "--db", str(tmp_path / "ledger.db")])
    # one database: the back office keeps everything in the file given, and names it in database.url
    assert res.exit_code == 0 and (tmp_path / "ledger.db").is_file() and (tmp_path / "bo" / "database.url").is_file()
    assert not (tmp_path / "bo" / "offgate.db").exists()
    res = r.invoke(main, ["settle", "--data", str(tmp_path / "bo"), "--db", str(tmp_path / "ledger.db")])
    assert res.exit_code == 0, res.output
    res = r.invoke(main, ["settle", "--data", str(tmp_path / "bo"), "--db", str(tmp_path / "ledgr.db")])
    assert res.exit_code == 1 and "no ledger database" in res.stderr and not (tmp_path / "ledgr.db").exists()
    assert r.invoke(main, ["init", "--data", str(tmp_path / "bo2")]).exit_code == 0
    res = r.invoke(main, ["settle", "--data", str(tmp_path / "bo2"), "--db", str(tmp_path / "ledger.db")])
    assert res.exit_code == 1 and "is not the database of the back office" in res.stderr, res.output


def test_unreachable_postgresql_is_one_line(tmp_path):
    r = CliRunner()
    assert r.invoke(main, ["init", "--data", str(tmp_path)]).exit_code == 0
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    res = r.invoke(main, ["report", "--data", str(tmp_path), "--db", "postgresql://u:secret@127.0.0.1:%d/x" % port])
    assert res.exit_code == 1 and "cannot connect to PostgreSQL" in res.stderr, res.output
    assert "secret" not in res.stderr and len(res.stderr.splitlines()) == 1


def test_gate_init_ids_zones_registry_and_no_re_id(tmp_path):
    r = CliRunner()
    data = str(tmp_path / "bo")
    assert r.invoke(main, ["init", "--data", data]).exit_code == 0

    def gi(d, gid, zone=1, *extra):
        return r.invoke(main, ["gate", "init", str(tmp_path / d), "--gate-id", str(gid), "--zone", str(zone),
                               "--data", data, *extra])
    for bad in (("g", -1, 1), ("g", 2 ** 30, 1), ("g", 1, -3), ("g", 1, 2 ** 40)):
        res = gi(*bad)
        assert res.exit_code == 2 and "Invalid value" in res.output and not (tmp_path / "g").exists()
    res = gi("g1", 1, 1, "--station", "S1", "--direction", "entry")
    assert res.exit_code == 0, res.output
    cfg = json.loads((tmp_path / "g1" / "gate.json").read_text())
    assert cfg["gate_id"] == 1 and cfg["state_dir"] == "."
    assert gi("g1", 1).exit_code == 0  # the same gate again: a refresh
    res = gi("g1", 2)  # another id into gate 1's directory: its key and log stay gate 1's
    assert res.exit_code == 2 and "will not re-id" in res.stderr, res.output
    assert json.loads((tmp_path / "g1" / "gate.json").read_text())["gate_id"] == 1
    res = gi("g2", 1)  # gate 1 has a place in the ledger
    assert res.exit_code == 2 and "already in use" in res.stderr and not (tmp_path / "g2").exists(), res.output
    res = gi("nested/g3", 3)  # no mkdir -p
    assert res.exit_code == 2 and "does not exist" in res.stderr and not (tmp_path / "nested").exists()


def test_gate_json_paths_resolve_against_its_directory(tmp_path, monkeypatch):
    from offgate_host.device.simgate import check_config, write_gate_dir
    cfgp = write_gate_dir(tmp_path / "g", gate_id=4, zone=1, trust=b"\x80", tables=False)
    monkeypatch.chdir("/")
    assert check_config(str(cfgp))["state_dir"] == str(tmp_path / "g")
    raw = json.loads(cfgp.read_text())
    raw["state_dir"] = "./state"
    cfgp.write_text(json.dumps(raw))
    assert check_config(str(cfgp))["state_dir"] == str(tmp_path / "g" / "state")
    raw["state_dir"] = "/abs/where"
    cfgp.write_text(json.dumps(raw))
    assert check_config(str(cfgp))["state_dir"] == "/abs/where"


def test_newcomer_run_findings(tmp_path, places):
    """What a newcomer's attack run found: usage errors are one line too; gate id 0 refused; an
    empty --reason refused; a back office whose database was truncated to 0 bytes is an error, not
    a new empty back office; a second `gate run` on one gate directory is refused (two would share
    one operation log); a --tcp port in use is refused before the gate boots."""
    r = CliRunner()
    res = r.invoke(main, ["deny", "add", "--file", str(tmp_path), "--reason", "x", "--data", str(places["good"])])
    assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1 and "--help" in res.stderr, res.output
    res = r.invoke(main, ["gate", "init", str(tmp_path / "g0"), "--gate-id", "0", "--zone", "1",
                          "--data", str(places["good"])])
    assert res.exit_code == 2 and "--gate-id" in res.stderr and not (tmp_path / "g0").exists(), res.output
    (tmp_path / "ids.txt").write_text("00000000000000aa\n")
    res = r.invoke(main, ["deny", "add", "--file", str(tmp_path / "ids.txt"), "--reason", " ",
                          "--data", str(places["good"])])
    assert res.exit_code == 1 and "must not be empty" in res.stderr, res.output
    assert r.invoke(main, ["init", "--data", str(tmp_path / "bo")]).exit_code == 0
    (tmp_path / "bo" / "offgate.db").write_bytes(b"")
    for args in (["db", "current"], ["db", "upgrade"]):
        res = r.invoke(main, args + ["--data", str(tmp_path / "bo")])
        assert res.exit_code == 1 and "is empty" in res.stderr, (args, res.output)
    gdir = tmp_path / "gate"
    gdir.mkdir()
    (gdir / "gate.json").write_text(json.dumps({"gate_id": 7, "zone": 1, "state_dir": "."}))
    import fcntl
    with open(gdir / ".gate.lock", "w") as held:  # a running gate holds it
        fcntl.flock(held, fcntl.LOCK_EX)
        res = r.invoke(main, ["gate", "run", str(gdir / "gate.json")])
        before = (gdir / "gate.json").read_bytes()
        res2 = r.invoke(main, ["gate", "init", str(gdir), "--gate-id", "7", "--zone", "1", "--data", str(places["good"])])
    assert res.exit_code == 1 and "gate directory in use" in res.stderr, res.output
    # QA: gate init rewrote a running gate's gate.json, trust store and deny list
    assert res2.exit_code == 2 and "in use by a running gate" in res2.stderr, res2.output
    assert (gdir / "gate.json").read_bytes() == before and not (gdir / "trust.cbor").exists()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        res = r.invoke(main, ["gate", "run", str(gdir / "gate.json"), "--tcp", "127.0.0.1:%d" % port])
    assert res.exit_code == 1 and "cannot listen on 127.0.0.1 port %d" % port in res.stderr, res.output


def test_sync_with_nothing_to_pull_says_so(tmp_path, monkeypatch):
    """A gate with no backlog: the progress shows "0/0 ... nothing to pull", not "0/?"."""
    from offgate_host.ledger import pull

    def fake_sync(connect, bo, led, progress=None, **kw):
        progress(7, 0, 0)
        return {"gate_id": 7, "pulled": 0, "new": 0, "duplicates": 0, "anomalies": 0, "fraud": 0, "drift": 0}
    monkeypatch.setattr(pull, "sync_with_retries", fake_sync)
    r = CliRunner()
    assert r.invoke(main, ["init", "--data", str(tmp_path / "bo")]).exit_code == 0
    res = r.invoke(main, ["sync", "tcp:127.0.0.1:9", "--data", str(tmp_path / "bo")])
    assert res.exit_code == 0, res.output
    assert "nothing to pull" in res.output and "0/?" not in res.output, res.output


def test_board_validate_names_the_file_once_and_build_writes_under_the_cwd(tmp_path, monkeypatch):
    r = CliRunner()
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    res = r.invoke(main, ["board", "validate", str(bad)])
    assert res.exit_code == 1 and res.output.count(str(bad)) == 1 and len(res.output.strip().splitlines()) == 1, \
        res.output
    monkeypatch.chdir(tmp_path)  # not the checkout: the build goes where the operator is
    res = r.invoke(main, ["board", "build", "sim"])
    assert res.exit_code == 0 and (tmp_path / "build" / "sim" / "build.json").is_file(), res.output
    res = r.invoke(main, ["board", "build", "sim", "--out", "elsewhere"])
    assert res.exit_code == 0 and (tmp_path / "elsewhere" / "build.json").is_file(), res.output


def test_gate_place_warns_about_a_station_the_fare_table_does_not_know(tmp_path):
    zak = Path(__file__).resolve().parents[2].parent / "shared" / "gtfs" / "zakroczym"
    if not zak.is_dir():
        zak = Path("/work/shared/gtfs/zakroczym")
    r = CliRunner()
    d = ["--data", str(tmp_path / "bo")]
    assert r.invoke(main, ["init", *d]).exit_code == 0
    res = r.invoke(main, ["gate", "place", "5", "nowhere", "entry", *d])
    assert res.exit_code == 0 and "warning" not in res.stderr, res.output  # no fare table: nothing to check
    assert r.invoke(main, ["fares", "load", str(zak), *d]).exit_code == 0
    res = r.invoke(main, ["gate", "place", "5", "nowhere", "entry", *d])
    assert res.exit_code == 0 and "warning: station nowhere is in no area of fare table version 1" in res.stderr, \
        res.output
    assert "gate 5: station nowhere, entry" in res.stdout
    res = r.invoke(main, ["gate", "place", "6", "100", "exit", *d])
    assert res.exit_code == 0 and "warning" not in res.stderr, res.output
    res = r.invoke(main, ["gate", "init", str(tmp_path / "g9"), "--gate-id", "9", "--zone", "1", "--station",
                          "nowhere", "--direction", "entry", *d])
    assert res.exit_code == 0 and "warning: station nowhere" in res.stderr, res.output


def test_account_adjust_takes_a_negative_amount(tmp_path):
    """`offgate account adjust A -100` needed `--` before the amount (the QA run)."""
    r = CliRunner()
    data = str(tmp_path / "bo")
    assert r.invoke(main, ["init", "--data", data]).exit_code == 0
    assert r.invoke(main, ["account", "create", "A", "--balance", "500", "--data", data]).exit_code == 0
    res = r.invoke(main, ["account", "adjust", "A", "-100", "--reason", "refund reversed", "--data", data])
    assert res.exit_code == 0 and "balance 400" in res.output, res.output
    res = r.invoke(main, ["account", "adjust", "A", "--reason", "again", "--data", data, "-50"])
    assert res.exit_code == 0 and "balance 350" in res.output, res.output
    res = r.invoke(main, ["account", "adjust", "A", "--reason", "old spelling", "--data", data, "--", "-50"])
    assert res.exit_code == 0 and "balance 300" in res.output, res.output
    for bad in (["--bogus"], ["-5x"], ["10", "-7"]):  # still one line, exit 2
        res = r.invoke(main, ["account", "adjust", "A", "--reason", "x", "--data", data] + bad)
        check(res, bad)
        assert res.exit_code == 2, res.output


def test_output_to_a_closed_pipe_ends_quietly(tmp_path):
    """`offgate ... | head`: no "Broken pipe" line, exit status 141 (128 + SIGPIPE), for click's
    output, rich tables and plain echo alike (the QA run saw `offgate: I/O error: Broken pipe`)."""
    import subprocess
    import sys
    offgate = str(Path(sys.executable).parent / "offgate")
    data = str(tmp_path / "bo")
    r = CliRunner()
    assert r.invoke(main, ["init", "--data", data]).exit_code == 0
    assert r.invoke(main, ["account", "create", "A", "--balance", "500", "--data", data]).exit_code == 0
    for args in (["--help"], ["account", "list"], ["account", "show", "A"], ["report", "--json"], ["report"]):
        if args != ["--help"]:
            args = args + ["--data", data]
        p = subprocess.Popen([offgate] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        p.stdout.close()  # the reader is gone before the command writes anything
        err = p.stderr.read().decode()
        p.stderr.close()
        assert p.wait(timeout=120) == 141 and err == "", (args, p.returncode, err)
    # an error is still an error
    p = subprocess.run([offgate, "account", "show", "nobody", "--data", data], stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True, timeout=120)
    assert p.returncode == 1 and p.stderr.startswith("offgate: unknown account"), p.stderr


@pytest.mark.parametrize("target", ["tcp:127.0.0.1:99999", "tcp:127.0.0.1:0", "serial:/dev/ttyUSB0@fast",
                                    "serial:@9600"])
def test_sync_refuses_a_target_that_cannot_be_one(tmp_path, target):
    """QA: `tcp:127.0.0.1:99999` was tried as a target instead of refused. A port outside 1..65535
    or a baud that is not a number is one line, exit 1, before anything is opened or stored;
    `gates target` refuses it alike."""
    r = CliRunner()
    assert r.invoke(main, ["init", "--data", str(tmp_path / "bo")]).exit_code == 0
    res = r.invoke(main, ["sync", target, "--data", str(tmp_path / "bo")])
    assert res.exit_code == 1 and "bad target" in res.stderr, res.output
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.output, res.output
    res = r.invoke(main, ["gates", "target", "1", target, "--data", str(tmp_path / "bo")])
    assert res.exit_code != 0 and "bad target" in res.stderr and "Traceback" not in res.output, res.output


def test_credential_zones_are_ids_the_gate_can_hold(tmp_path):
    """QA8: `credential issue --zones 99999999999` (and `1,,2`) was accepted; zone and gate ids are
    small ints on the gate (0..2^30-1, as gate ids). One line, exit 2, nothing issued; the back
    office refuses them too."""
    from offgate_host.backoffice.backoffice import BackOffice, BackOfficeError
    r = CliRunner()
    d = ["--data", str(tmp_path / "bo")]
    assert r.invoke(main, ["init", *d]).exit_code == 0
    assert r.invoke(main, ["account", "create", "a", "--balance", "5000", *d]).exit_code == 0
    assert r.invoke(main, ["wallet", "new", str(tmp_path / "w.json")]).exit_code == 0
    for zones in ("99999999999", "1,,2", "1,", "-1"):
        res = r.invoke(main, ["credential", "issue", "a", "--wallet", str(tmp_path / "w.json"), "--zones", zones, *d])
        assert res.exit_code == 2 and "--zones" in res.stderr and "Traceback" not in res.output, (zones, res.output)
    with BackOffice(tmp_path / "bo", create=False) as bo:
        assert bo.credentials("a") == []
        with pytest.raises(BackOfficeError, match="zone ids must be integers"):
            bo.issue_credential("a", bytes(65), zones=[2 ** 30])
