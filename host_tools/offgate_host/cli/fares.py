"""`offgate fares ...`: GTFS fares v2 loaded into the ledger and rider statements."""
from pathlib import Path

import click

from .base import DB_HELP, _bo, _console, _iso, _ledger, data_option, main, user_errors


@main.group("fares")
def fares_group():
    """Fare tables from GTFS-Fares v2, statements (docs/fares.md)."""


@fares_group.command("load")
@data_option
@click.argument("feed", type=click.Path(path_type=Path))
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="offgate fare config JSON: caps, service day start, journey time, incomplete fare, passes")
@click.option("--db", default=None, envvar="OFFGATE_DB", help=DB_HELP)
@user_errors
def fares_load(data_dir, feed, config_path, db):
    """Validate the GTFS-Fares v2 files of FEED (a directory or a .zip) and store them, with the
    fare config, as the next fare table version; settlement uses the newest. The same feed and
    config as the newest version's store nothing ("unchanged, still version N")."""
    from ..fares import config as fcfg
    from ..fares import feed as ffeed
    from ..fares import store
    table = ffeed.read_feed(feed)
    raw = fcfg.load(config_path) if config_path else {}
    cfg = fcfg.validate(raw, table)
    from ..fares.engine import Engine
    for w in table["warnings"] + Engine(table, cfg).warnings():
        click.echo("warning: " + ffeed.describe(w), err=True)
    led = _ledger(_bo(data_dir), db)
    try:
        v, created = store.load(led.db, feed, table, fcfg.raw_of(cfg))
    finally:
        led.close()
    if not created:
        click.echo("fare table unchanged, still version %d (%s and its config are the same as that version's)"
                   % (v, feed))
        return
    click.echo("fare table version %d from %s: %d fare products, %d leg rules, %d transfer rules, %d timeframes, "
               "%d areas; currency %s, time zone %s, service day from %s, %d cap(s)"
               % (v, feed, len(table["fare_products"]), len(table["leg_rules"]), len(table["transfer_rules"]),
                  len(table["timeframes"]), len(table["areas"]), table["currency"], cfg["timezone"],
                  cfg["service_day_start"], len(cfg["caps"])))


@fares_group.command("versions")
@data_option
@click.option("--db", default=None, envvar="OFFGATE_DB", help=DB_HELP)
@user_errors
def fares_versions(data_dir, db):
    """List the stored fare table versions (the newest is in use)."""
    from ..fares import store
    led = _ledger(_bo(data_dir), db)
    try:
        vs = store.versions(led.db)
    finally:
        led.close()
    if not vs:
        click.echo("no fare table loaded: settlement charges the flat fare per product (offgate ledger fare)")
    for v in vs:
        click.echo("version %d  loaded %s  %s  sha256 %s" % (v["version"], _iso(v["loaded"]), v["source"], v["digest"][:16]))


@fares_group.command("statement")
@data_option
@click.argument("account_id")
@click.option("--db", default=None, envvar="OFFGATE_DB", help=DB_HELP)
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
@user_errors
def fares_statement(data_dir, account_id, db, as_json):
    """ACCOUNT_ID's journeys, each with the rules that made its charge (leg rule, transfer, cap)."""
    import json

    from ..fares import settle as fare_settle
    bo = _bo(data_dir)
    bo.get_account(account_id)
    led = _ledger(bo, db)
    try:
        rows = fare_settle.statement(led.db, account_id)
    finally:
        led.close()
    if as_json:
        from ..ledger import report
        click.echo(json.dumps(report.jsonable({"account": account_id, "journeys": rows}), indent=1))
        return
    from ..fares.show import statement_table
    _console().print(statement_table(account_id, rows))
