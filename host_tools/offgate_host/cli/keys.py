"""`offgate keys|backup|restore|operator ...`: keys at rest, backups, operator credentials."""
import sys
from pathlib import Path

import click

from ..errors import UsageError
from .base import _bo, _iso, data_option, main, user_errors


@main.group("keys")
def keys_group():
    """The back office's private keys at rest (issuer, root, batch, operator keys)."""


@keys_group.command("encrypt")
@data_option
@user_errors
def keys_encrypt(data_dir):
    """Encrypt every private key with a passphrase (env OFFGATE_PASSPHRASE, else asked twice). Keys
    made later are encrypted too while OFFGATE_PASSPHRASE is set; commands that sign then need it
    (env or prompt)."""
    import os

    from ..backoffice import backup
    from ..wire import keys
    bo = _bo(data_dir)
    bo.close()
    pw = os.environ.get(keys.PASSPHRASE_ENV)
    if not pw:
        if not sys.stdin.isatty():
            raise UsageError("set %s or run from a terminal to be asked for the passphrase" % keys.PASSPHRASE_ENV)
        pw = click.prompt("new passphrase", hide_input=True, confirmation_prompt=True, err=True)
    done = backup.encrypt_keys(data_dir, pw)
    click.echo("%d key(s) encrypted%s" % (len(done), (": " + ", ".join(done)) if done else " (all were already)"))


@keys_group.command("status")
@data_option
@user_errors
def keys_status(data_dir):
    """Which private keys are encrypted at rest."""
    from ..wire import keys
    _bo(data_dir).close()
    for p in sorted((Path(data_dir) / "keys").glob("*.pem")):
        click.echo("%-40s %s" % (p.name, "encrypted" if keys.is_encrypted_pem(p.read_bytes()) else "NOT encrypted"))


@main.command("backup")
@data_option
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@user_errors
def backup_cmd(data_dir, out):
    """Write the back office (a consistent copy of its database, and its keys as they are at rest)
    to the archive OUT (.tar.gz, with SHA-256 checksums)."""
    from ..backoffice import backup
    m = backup.backup(data_dir, out)
    click.echo("backup of %s -> %s: %d file(s), %d encrypted key(s)%s" % (
        data_dir, out, len(m["files"]), len(m["encrypted_keys"]),
        "; the PostgreSQL database is not in it: back it up with pg_dump" if m["database"] != "sqlite" else ""))


@main.command("restore")
@data_option
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@user_errors
def restore_cmd(data_dir, archive):
    """Restore ARCHIVE (from `offgate backup`) into the data directory, which must be new or empty;
    every file is checked against the backup's checksums before anything is written."""
    from ..backoffice import backup
    m = backup.restore(archive, data_dir)
    click.echo("restored %d file(s) into %s (backup of %s)%s" % (
        len(m["files"]), data_dir, _iso(m["created"]),
        "; its database is on PostgreSQL: restore that with pg_restore" if m.get("database", "sqlite") != "sqlite" else ""))



@main.group("operator")
def operator_group():
    """Operator credentials (they open sync sessions)."""


@operator_group.command("revoke")
@data_option
@click.argument("name")
@user_errors
def operator_revoke(data_dir, name):
    """Revoke operator NAME: no new credential, and its unexpired ones go onto the deny list
    (gates refuse them once synced with it)."""
    ctis = _bo(data_dir).revoke_operator(name)
    click.echo("operator %s revoked; %d credential id(s) denied; sync the gates to deliver it" % (name, len(ctis)))
