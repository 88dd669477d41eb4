"""`offgate deny ...`: the deny list (revoked credential ids)."""
from pathlib import Path

import click

from .base import _bo, _operator_name, data_option, main, user_errors


@main.group()
def deny():
    """Deny list (blocked credential ids)."""


def _id_options(f):
    """CTI_HEX or --file, and --reason: what deny add and deny remove both take."""
    f = click.option("--reason", default=None, help="why (kept in the deny audit trail); required with --file")(f)
    f = click.option("--file", "id_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help="a file of credential ids, one per line (16 hex digits; blank lines and # comments "
                          "skipped)")(f)
    return click.argument("cti_hex", required=False)(f)


@deny.command("add")
@data_option
@_id_options
@user_errors
def deny_add(data_dir, cti_hex, id_file, reason):
    """Block credential CTI_HEX (16 hex digits), or every id in --file, in one transaction."""
    bo, ids, reason = _deny_ids(data_dir, cti_hex, id_file, reason, "deny add")
    n = bo.deny_many(ids, reason, by=_operator_name())
    clash = bo.deny_prefix_clashes(ids)
    if clash:
        click.echo("warning: %d id(s) share their first %d bytes with another unexpired credential, which gates will "
                   "refuse too (first: %s and %s)" % (len(clash), bo.deny_id_bytes(), clash[0][0].hex(),
                                                       clash[0][1].hex()), err=True)
    if id_file is None:
        click.echo("denied %s" % ids[0].lower())
    else:
        click.echo("denied %d id(s) from %s (%d new); list now %d" % (len(ids), id_file, n, bo.deny_count()))


@deny.command("remove")
@data_option
@_id_options
@user_errors
def deny_remove(data_dir, cti_hex, id_file, reason):
    """Take credential CTI_HEX, or every id in --file, off the deny list in one transaction."""
    bo, ids, reason = _deny_ids(data_dir, cti_hex, id_file, reason, "deny remove")
    n = bo.undeny_many(ids, reason, by=_operator_name())
    click.echo("removed %d of %d id(s) from the deny list; list now %d" % (n, len(ids), bo.deny_count()))


def _deny_ids(data_dir, cti_hex, id_file, reason, default_reason):
    from ..backoffice.backoffice import BackOfficeError, read_id_file
    if (cti_hex is None) == (id_file is None):
        raise BackOfficeError("give one credential id or --file FILE, not both or neither")
    if reason is not None and not reason.strip():
        raise BackOfficeError("--reason must not be empty (it goes into the deny audit trail)")
    if id_file is not None and reason is None:
        raise BackOfficeError("--reason is required with --file (it goes into the deny audit trail)")
    bo = _bo(data_dir)
    ids = read_id_file(id_file) if id_file is not None else [cti_hex]
    return bo, ids, reason or default_reason


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
