"""`offgate deny ...`: the deny list (revoked credential ids)."""
from pathlib import Path

import click

from .base import _bo, data_option, main, user_errors


@main.group()
def deny():
    """Deny list (blocked credential ids)."""


@deny.command("add")
@data_option
@click.argument("cti_hex")
@user_errors
def deny_add(data_dir, cti_hex):
    """Block credential CTI_HEX (16 hex digits)."""
    cti = _bo(data_dir).deny(cti_hex)
    click.echo("denied %s" % cti.hex())


@deny.command("list")
@data_option
@user_errors
def deny_list(data_dir):
    """List denied credential ids."""
    for c in _bo(data_dir).deny_list():
        click.echo(c.hex())


@deny.command("export")
@data_option
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@user_errors
def deny_export(data_dir, out):
    """Write the deny list (deny.bin) to OUT."""
    bo = _bo(data_dir)
    bo.export_deny(out)
    click.echo("deny list: %d id(s) -> %s" % (len(bo.deny_list()), out))
