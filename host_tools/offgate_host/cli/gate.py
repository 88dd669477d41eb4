"""`offgate demo`, `offgate gate ...`: gate directories and the simulated gate."""
from pathlib import Path

import click

from ..errors import OffgateError, UsageError
from .base import GATE_ID, ID, _bo, _iso, _ledger, data_option, main, user_errors


@main.command("demo")
@click.option("--heap", default=None, help="MicroPython heap for the simulated gate [default: 128k on a 32-bit build, 160k on the 64-bit port]")
@click.option("--keep", type=click.Path(file_okay=False), default=None,
              help="put the demo's back office, wallets and gate files here instead of a temp dir")
def demo_cmd(heap, keep):
    """Run the whole offline chain on the simulated gate (real firmware on MicroPython)."""
    from .. import demo
    raise SystemExit(demo.run(heap=heap, keep=keep))


@main.group()
def gate():
    """Simulated gate (the real firmware on the MicroPython unix port)."""


def _check_gate_dir(gdir, gate_id) -> bool:
    """Check that gate init may write gate `gate_id` into `gdir`: a new or empty directory (its
    parent must exist), or the directory of that same gate (a refresh: True). A directory of
    another gate is refused: its device key and operation log belong to that gate."""
    import json
    if gdir.exists():
        if not gdir.is_dir():
            raise UsageError("%s exists and is not a directory" % gdir)
        cfgp = gdir / "gate.json"
        if cfgp.exists():
            try:
                old = json.loads(cfgp.read_text())["gate_id"]
            except (ValueError, KeyError, TypeError, OSError) as e:
                raise UsageError("%s is not a gate config (%s): gate init will not overwrite it" % (cfgp, e)) from None
            if old != gate_id:
                raise UsageError("%s holds gate %r (its device key and log belong to that gate): gate init will not "
                                 "re-id it; use a new directory" % (gdir, old))
            return True
        if any(gdir.iterdir()):
            raise UsageError("%s is not empty and holds no gate.json: use a new directory" % gdir)
    elif not gdir.parent.is_dir():
        raise UsageError("cannot create %s: %s does not exist" % (gdir, gdir.parent))
    return False


def _gate_registered(bo, led, gate_id):
    """Where gate_id is already registered (provisioned gates, gates enrolled by sync, gate
    places), as a phrase, or None."""
    if any(g["gate_id"] == gate_id for g in bo.gates()):
        return "provisioned in the back office"
    if any(g["gate"] == gate_id for g in led.gates()):
        return "enrolled in the ledger"
    if any(p["gate"] == gate_id for p in led.places()):
        return "has a place in the ledger"
    return None


@gate.command("init")
@data_option
@click.argument("gate_dir", type=click.Path(file_okay=False))
@click.option("--gate-id", type=GATE_ID, required=True)
@click.option("--zone", type=ID, required=True)
@click.option("--max-age", type=click.IntRange(1, 86400), default=60, show_default=True, help="seconds a code stays valid")
@click.option("--skew", type=click.IntRange(0, 86400), default=30, show_default=True, help="tolerated clock difference, seconds")
@click.option("--station", default=None, help="GTFS stop_id or area_id of the gate's station (docs/fares.md)")
@click.option("--direction", type=click.Choice(["entry", "exit", "both"]), default="both", show_default=True,
              help="which way the gate counts taps")
@click.option("--passback", type=click.IntRange(0, 86400), default=None,
              help="entry gates: seconds a credential that entered is refused again (0: off) [default: 120]")
@click.option("--db", default=None, envvar="OFFGATE_DB", help="ledger database the gate's place is registered in")
@user_errors
def gate_init(data_dir, gate_dir, gate_id, zone, max_age, skew, station, direction, passback, db):
    """Write a gate directory: gate.json, the trust store and the deny list from the back office.
    With --station, the gate's place (station, direction) is also registered in the ledger."""
    from ..device.simgate import write_gate_dir
    from ..device.provision import provision_gate_dir
    bo = _bo(data_dir)
    same = _check_gate_dir(Path(gate_dir), gate_id)
    _refuse_running_gate(gate_dir)  # its gate.json, trust store and deny list are the running gate's
    if not same:
        led = _ledger(bo, db)
        try:
            where = _gate_registered(bo, led, gate_id)
        finally:
            led.close()
        if where:
            raise UsageError("gate id %d is already in use (%s): give each gate its own id" % (gate_id, where))
    extra = {}
    if station is not None:
        extra.update(station=station, direction=direction)
    if passback is not None:
        extra["passback_s"] = passback
    if station is not None:
        led = _ledger(bo, db)
        led.set_place(gate_id, station, direction)  # checked before anything is written
        _warn_unknown_station(led, station)
        led.close()
    cfg = write_gate_dir(gate_dir, gate_id=gate_id, zone=zone, trust=bo.trust_bytes(), deny=bo.deny_bytes(),
                         max_age_s=max_age, skew_s=skew, **extra)
    # root.pub and batch.pub, so the gate can sync; the device key made in the gate's directory and
    # registered under its id: that registration is what the ledger enrols the gate with
    provision_gate_dir(gate_dir, bo, gate_id=gate_id)
    click.echo(str(cfg))


def _warn_unknown_station(led, station):
    """A warning on stderr when the newest fare table puts `station` in no area; the place is set
    anyway (the table may be what needs fixing)."""
    from ..fares.settle import station_areas
    known = station_areas(led.db, station)
    if known is not None and not known[1]:
        click.echo("warning: station %s is in no area of fare table version %d (stop_areas.txt, areas.txt): "
                   "journeys from or to it find no fare rule and are charged 0" % (station, known[0]), err=True)


@gate.command("place")
@data_option
@click.argument("gate_id", type=ID)
@click.argument("station", required=False)
@click.argument("direction", type=click.Choice(["entry", "exit", "both"]), required=False)
@click.option("--db", default=None, envvar="OFFGATE_DB", help="ledger database")
@user_errors
def gate_place(data_dir, gate_id, station, direction, db):
    """Show or set where GATE_ID is (STATION: GTFS stop_id or area_id) and which way it counts
    (DIRECTION: entry, exit or both). Records synced from then on carry the new place; set the
    same in the gate's gate.json (station, direction)."""
    led = _ledger(_bo(data_dir), db)
    try:
        if station is not None:
            if direction is None:
                raise click.ClickException("give both STATION and DIRECTION")
            led.set_place(gate_id, station, direction)
            _warn_unknown_station(led, station)
        hist = [p for p in led.places() if p["gate"] == gate_id]
    finally:
        led.close()
    if not hist:
        raise click.ClickException("gate %d has no place registered" % gate_id)
    for p in hist:
        click.echo("gate %d: station %s, %s, since %s (%s)" % (gate_id, p["station"], p["direction"], _iso(p["since"]),
                                                               p["source"]))


def _host_port(what, addr):
    host, _, port = addr.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError("%s must be HOST:PORT (port 1..65535), got %r" % (what, addr))
    return host, int(port)


def _check_port_free(host, port):
    """Fail with one line if host:port cannot be listened on (in use, or not an address here)."""
    import socket
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise UsageError("cannot listen on %s: %s" % (host, e.strerror or e)) from None
    fam, typ, proto, _, sa = infos[0]
    with socket.socket(fam, typ, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(sa)
        except OSError as e:
            raise OffgateError("cannot listen on %s port %d: %s" % (host, port, e.strerror or e)) from None


def _flock_gate_dir(gate_dir, create):
    """The gate directory's lock file (<gate dir>/.gate.lock), opened and exclusively flocked:
    the fd, or None when it does not exist and create is False. OffgateError (one line) if it
    cannot be opened; BlockingIOError if a running gate holds it."""
    import fcntl
    import os
    path = os.path.join(os.path.abspath(gate_dir), ".gate.lock")
    try:
        fd = os.open(path, os.O_RDWR | (os.O_CREAT if create else 0), 0o600)
    except FileNotFoundError:
        if not create:
            return None
        raise
    except OSError as e:
        raise OffgateError("cannot lock the gate directory (%s): %s" % (path, e.strerror or e)) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise BlockingIOError(path) from None
    return fd


def _lock_gate_dir(config):
    """One running gate per gate directory: two would append to one operation log (a logged
    passage lost) and keep two replay tables (a code opening twice). An exclusive flock on
    <gate dir>/.gate.lock, inherited by the MicroPython process that replaces this one (exec), so
    it is held exactly as long as the gate runs and goes with it, however it ends."""
    import os
    try:
        fd = _flock_gate_dir(os.path.dirname(os.path.abspath(config)), True)
    except BlockingIOError as e:
        raise OffgateError("gate directory in use: another 'offgate gate run' holds %s" % e) from None
    os.set_inheritable(fd, True)


def _refuse_running_gate(gate_dir):
    """UsageError if an 'offgate gate run' holds the gate directory's lock (_lock_gate_dir):
    rewriting a running gate's files under it is refused, not raced."""
    import os
    try:
        fd = _flock_gate_dir(gate_dir, False)
    except BlockingIOError:
        raise UsageError("gate directory %s is in use by a running gate ('offgate gate run'): stop it first"
                         % gate_dir) from None
    if fd is not None:
        os.close(fd)  # closing drops the lock taken here


@gate.command("run")
@click.argument("config", type=click.Path(exists=True, dir_okay=False))
@click.option("--heap", default=None,
              help="MicroPython heap [default: 128k on a 32-bit build, 160k on the 64-bit port; more with --sync]")
@click.option("--tcp", default=None, metavar="HOST:PORT", help="read scanner lines from TCP instead of stdin")
@click.option("--sync", "sync_addr", default=None, metavar="HOST:PORT", help="also listen for the sync tool here")
@click.option("--micropython", "mp", default=None, envvar="OFFGATE_MICROPYTHON", metavar="PATH",
              help="MicroPython binary to run the gate on, e.g. the 32-bit build "
                   "../shared/tools/micropython32/micropython32 [env OFFGATE_MICROPYTHON; default: the venv's]")
def gate_run(config, heap, tcp, sync_addr, mp):
    """Run the simulated gate: scanner lines on stdin (or TCP), one JSON line per scan on stdout."""
    import os
    from ..device.simgate import SYNC_HEAP_32, SYNC_HEAP_64, check_config, micropython_env, sim_command, word_bits
    if mp is not None and not (os.path.isfile(mp) and os.access(mp, os.X_OK)):
        raise UsageError("--micropython %s: not an executable file" % mp)
    check_config(config)  # a junk or wrong gate.json is a one-line error here, not a firmware crash
    for what, addr in (("--tcp", tcp), ("--sync", sync_addr)):
        if addr is not None:
            _check_port_free(*_host_port(what, addr))  # before the boot, not after it
    _lock_gate_dir(config)
    try:
        args = ["--tcp", tcp] if tcp else []
        if sync_addr:
            args += ["--sync", sync_addr]
            # a sync session (handshake, sealing) loads its modules into the heap beside the gate's
            # bytecode (.mpy files); frozen/ROMFS on a device, it would not
            heap = heap or (SYNC_HEAP_32 if word_bits(mp) == 32 else SYNC_HEAP_64)
        cmd = sim_command(config, heap, *args, mp=mp)
        env = micropython_env(mp=mp)
    except RuntimeError as e:
        raise OffgateError(str(e)) from None
    os.execvpe(cmd[0], cmd, env)
