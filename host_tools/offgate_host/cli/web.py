"""`offgate account invite`, `offgate staff ...`, `offgate serve`: the web back office."""
import sys
from pathlib import Path

import click

from ..errors import UsageError
from .base import CAP, DB_HELP, ID, _bo, _iso, _ledger, _prompt_passphrase, _uint_list, data_option, main, user_errors
from .accounts import account
from .gate import _check_port_free


@account.command("invite")
@data_option
@click.argument("account_id")
@click.option("--zones", required=True, help="comma-separated zone ids the wallet's credentials admit")
@click.option("--product", type=ID, default=1, show_default=True)
@click.option("--valid-hours", type=click.FloatRange(min=0, max=24 * 366, min_open=True), default=24.0, show_default=True,
              help="validity of each credential the wallet gets")
@click.option("--cap", type=CAP, default=None, help="offline spending cap, minor units")
@click.option("--replace", is_flag=True, help="a lost or replaced phone: revoke the account's other wallets on use")
@click.option("--ttl-hours", type=click.FloatRange(min=0.02, max=720), default=24.0, show_default=True,
              help="how long the link stays usable")
@click.option("--base-url", default="http://127.0.0.1:8080", show_default=True, help="where `offgate serve` is reachable")
@user_errors
def account_invite(data_dir, account_id, zones, product, valid_hours, cap, replace, ttl_hours, base_url):
    """A single-use, expiring wallet enrolment link for ACCOUNT_ID (printed as URL and QR)."""
    import segno

    from ..web import store
    from ..web.app import invite_url
    bo = _bo(data_dir)
    inv = store.create_invite(bo, account_id, zones=_uint_list(zones, "zones"), product=product,
                              valid_seconds=int(valid_hours * 3600), cap=cap, replace=replace,
                              ttl=int(ttl_hours * 3600), by="cli")
    url = invite_url(base_url, inv["token"])
    click.echo(url)
    click.echo("single use, expires %s" % _iso(inv["expires"]), err=True)
    segno.make(url, error="m").terminal(out=sys.stderr, compact=True)


@main.group()
def staff():
    """Back-office staff accounts for `offgate serve`."""


@staff.command("add")
@data_option
@click.argument("name")
@click.option("--role", type=click.Choice(["viewer", "operator", "admin"]), default="viewer", show_default=True)
@click.option("--password-stdin", is_flag=True, help="read the password from standard input (else prompt)")
@user_errors
def staff_add(data_dir, name, role, password_stdin):
    """Create (or reset) staff account NAME with a password (stored as an argon2id hash)."""
    from ..web import store
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    store.add_staff(_bo(data_dir), name, password, role)
    click.echo("staff %s (%s)" % (name, role))


@staff.command("list")
@data_option
@user_errors
def staff_list(data_dir):
    """List staff accounts."""
    from ..web import store
    for s in store.list_staff(_bo(data_dir)):
        click.echo("%s\t%s%s" % (s["name"], s["role"], "\tdisabled" if s["disabled"] else ""))


@main.command("serve")
@data_option
@click.option("--db", default=None, envvar="OFFGATE_DB", help=DB_HELP)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.option("--base-url", default=None, help="public origin for enrolment links (default: the request's)")
@user_errors
def serve(data_dir, db, host, port, base_url):
    """The back office's web server: rider wallet (/wallet/) and staff dashboard (/)."""
    import uvicorn

    from ..web.app import VENDOR, create_app
    _bo(data_dir).close()  # an existing back office, or one line saying there is none
    if db is not None:
        _ledger(_bo(data_dir), db).close()
    _check_port_free(host, port)
    import os

    from ..wire import keys
    # encrypted keys: the passphrase is asked once here, never from a request's thread
    locked = keys.encrypted_key_in(Path(data_dir) / "keys")
    if locked is not None and not os.environ.get(keys.PASSPHRASE_ENV):
        pw = _prompt_passphrase()
        if not pw:
            raise UsageError("the keys are encrypted: set %s or start the server from a terminal" % keys.PASSPHRASE_ENV)
        os.environ[keys.PASSPHRASE_ENV] = pw
        # checked now: a typo would otherwise surface in a request, or encrypt a new key (receipts) with it (QA9)
        keys.load_private_pem(locked)
    keys.set_passphrase_provider(None)
    if not VENDOR.is_dir():
        raise click.ClickException("the wallet's JavaScript libraries are missing: run `make web` "
                                   "(npm ci in host_tools/offgate_host/web)")
    click.echo("offgate serve: dashboard http://%s:%d/  wallet http://%s:%d/wallet/  (Ctrl-C stops)"
               % (host, port, host, port), err=True)
    uvicorn.run(create_app(data_dir, db, base_url), host=host, port=port, log_level="warning")
