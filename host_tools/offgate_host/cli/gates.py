"""`offgate gates ...`: the fleet: enrolment, sync targets, health."""
from pathlib import Path

import click

from ..errors import OffgateError
from .base import DB_HELP, ID, _bo, _iso, _ledger, data_option, main, user_errors
from .ledger import _duration


@main.group("gates", invoke_without_command=True)
@data_option
@click.option("--db", default=None, envvar="OFFGATE_DB", help=DB_HELP)
@click.option("--sync-late", default="6h", show_default=True, help="alert when a gate has not synced for this long")
@click.option("--drift", type=click.IntRange(0, 86400), default=30, show_default=True,
              help="alert when a gate's clock was off by more than this many seconds at its last sync")
@click.option("--log-fill", type=click.IntRange(1, 100), default=50, show_default=True,
              help="alert when a gate's operation log is this many percent full")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
@click.option("--check", is_flag=True, help="exit with status 1 if any gate has an alert (for monitoring)")
@user_errors
@click.pass_context
def gates_group(ctx, data_dir, db, sync_late, drift, log_fill, as_json, check):
    """The fleet: every provisioned or enrolled gate with its station, board, device key, firmware,
    list serials, last sync, clock, log fill and alerts (`offgate gates`); enrolment of device keys
    (`offgate gates enroll`, logged; `offgate gates list`)."""
    import json
    if ctx.invoked_subcommand is not None:
        return

    from ..ledger import fleet
    th = {"sync_late_s": _duration(sync_late, "--sync-late"), "drift_s": drift, "log_fill": log_fill / 100}
    bo = _bo(data_dir)
    led = _ledger(bo, db)
    try:
        rows = fleet.gates(bo, led, thresholds=th)
    finally:
        led.close()
    if as_json:
        click.echo(json.dumps(rows, indent=1))
    elif not rows:
        click.echo("no gates (provision one, or sync one after `offgate gate enroll`)")
    else:
        # one line per gate and one per alert: fits an 80-column terminal
        click.echo("%-6s %-12s %-10s %-16s %-11s %5s %5s %4s" % ("gate", "station", "firmware", "device key",
                                                                "last sync", "drift", "log%", "lists"))
        for g in rows:
            age = g["sync_age_s"]
            since = "never" if age is None else ("%dm ago" % (age // 60) if age < 7200 else "%dh ago" % (age // 3600))
            click.echo("%-6d %-12.12s %-10.10s %-16s %-11s %5s %5s %4s" % (
                g["gate"], g["station"], g["firmware"] or "-", g["key"], since,
                "-" if g["drift_s"] is None else "%+d" % g["drift_s"],
                "-" if g["log_fill"] is None else "%d" % round(g["log_fill"] * 100),
                "%s/%s" % (g["deny_serial"] if g["deny_serial"] is not None else "-",
                           g["trust_serial"] if g["trust_serial"] is not None else "-")))
            for a in g["alerts"]:
                click.echo("       ! %s" % a[:71])
        n = sum(1 for g in rows if g["alerts"])
        click.echo("%d gate(s), %d with alerts" % (len(rows), n))
    if check and any(g["alerts"] for g in rows):
        raise OffgateError("%d gate(s) with alerts" % sum(1 for g in rows if g["alerts"]))




@gates_group.command("enroll")
@data_option
@click.option("--db", default=None, envvar="OFFGATE_DB", help=DB_HELP)
@click.argument("gate_id", type=click.IntRange(min=0))
@click.option("--key", "key_hex", default=None, help="the gate's device public key, 130 hex digits (65 bytes)")
@click.option("--gate-dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="read the key from a simulated gate's state directory instead")
@click.option("--replace", is_flag=True, help="the gate was replaced: accept a new key for an enrolled gate id")
@click.option("--by", "by_whom", default=None, help="who enrols (logged; default: $USER)")
@user_errors
def gates_enroll(data_dir, db, gate_id, key_hex, gate_dir, replace, by_whom):
    """Enrol GATE_ID with its device key: from then on the ledger accepts its syncs and batches."""
    import os

    from ..device.provision import device_pub_of_dir
    if (key_hex is None) == (gate_dir is None):
        raise click.ClickException("give exactly one of --key HEX and --gate-dir DIR")
    if key_hex is not None:
        try:
            pub = bytes.fromhex(key_hex.strip())
        except ValueError:
            raise click.ClickException("--key must be hex (130 digits)") from None
    else:
        pub = device_pub_of_dir(gate_dir)
    bo = _bo(data_dir)
    bo.register_gate(gate_id, pub, "enrolled", replace=replace)  # validates the point
    led = _ledger(bo, db)
    try:
        new = led.enroll_gate(gate_id, pub, by=by_whom or os.environ.get("USER", "operator"), replace=replace)
    finally:
        led.close()
    click.echo("gate %d %s, device key %s" % (gate_id, "enrolled" if new else "already enrolled with that key",
                                             pub.hex()))


@gates_group.command("target")
@data_option
@click.argument("gate_id", type=ID)
@click.argument("target", required=False)
@click.option("--clear", is_flag=True, help="forget the gate's target")
@user_errors
def gates_target(data_dir, gate_id, target, clear):
    """Show or set how `offgate sync --all` reaches GATE_ID: TARGET is tcp:HOST:PORT or
    serial:/dev/ttyUSB0."""
    from ..ledger import fleet
    bo = _bo(data_dir)
    if clear:
        fleet.set_target(bo, gate_id, None)
    elif target is not None:
        fleet.set_target(bo, gate_id, target)
    t = fleet.targets(bo).get(gate_id)
    click.echo("gate %d: %s" % (gate_id, t or "no sync target"))


@gates_group.command("list")
@data_option
@click.option("--db", default=None, envvar="OFFGATE_DB", help=DB_HELP)
@user_errors
def gates_list(data_dir, db):
    """Enrolled gates and the enrolment log."""
    bo = _bo(data_dir)
    led = _ledger(bo, db)
    for g in led.gates():
        click.echo("gate %d  key %s...  enrolled %s" % (g["gate"], bytes(g["device_pub"]).hex()[:24], _iso(g["enrolled"])))
    for r in led.gate_log():
        click.echo("  %s gate %d %s by %s (%s...)" % (_iso(r["t"]), r["gate"], r["action"], r["by_whom"],
                                                     r["device_pub"].hex()[:16]))
    led.close()
