"""offgate command line: back office, wallet simulator and QR inspection."""
import datetime
import functools
import shutil
import sys
from pathlib import Path

import click

DATA_HELP = "back-office data directory (env OFFGATE_DATA)"


def _ts(t):
    if t is None:
        return "-"
    return "%d (%s)" % (t, datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ"))


def _iso(t):
    if t is None:
        return "-"
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def data_option(f):
    return click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path),
                        default="./offgate-data", envvar="OFFGATE_DATA", show_default=True, help=DATA_HELP)(f)


def user_errors(f):
    """Turn expected failures into one-line click errors (exit status 1, no traceback)."""
    @functools.wraps(f)
    def wrapper(*a, **kw):
        from .backoffice import BackOfficeError
        from .wallet import WalletError
        try:
            return f(*a, **kw)
        except (BackOfficeError, WalletError, ValueError) as e:
            raise click.ClickException(str(e)) from None
        except FileNotFoundError as e:
            raise click.ClickException("file not found: %s" % (e.filename or e)) from None
        except OSError as e:
            raise click.ClickException("%s: %s" % (e.filename or "I/O error", e.strerror or e)) from None
    return wrapper


def _uint_list(text, what):
    if text is None:
        return None
    try:
        vals = [int(p) for p in text.replace(" ", "").split(",") if p != ""]
    except ValueError:
        raise click.BadParameter("%s must be comma-separated integers, e.g. 1,2" % what) from None
    if not vals or any(v < 0 for v in vals):
        raise click.BadParameter("%s must be a non-empty list of non-negative integers" % what)
    return vals


def _bo(data_dir):
    from .backoffice import BackOffice
    return BackOffice(data_dir)


def _console():
    from rich.console import Console
    return Console(width=max(160, shutil.get_terminal_size((160, 24)).columns))


@click.group()
@click.version_option(package_name="offgate-host")
def main():
    """offgate host tools."""


# ----------------------------------------------------------------------------- issuer
@main.group()
def issuer():
    """Issuer keys (they sign credentials)."""


@issuer.command("init")
@data_option
@click.option("--name", default="offgate-demo", show_default=True, help="issuer name (iss claim)")
@click.option("--valid-from", type=int, default=None, help="key nbf, Unix seconds (default: now)")
@click.option("--valid-days", type=click.IntRange(min=1), default=365, show_default=True)
@user_errors
def issuer_init(data_dir, name, valid_from, valid_days):
    """Create the first issuer key (no-op if one exists)."""
    bo = _bo(data_dir)
    had = bool(bo.issuer_keys())
    kid = bo.init_issuer(name, valid_from=valid_from, valid_days=valid_days)
    click.echo(("issuer key already present: kid %s" if had else "issuer key created: kid %s") % kid.hex())


@issuer.command("rotate")
@data_option
@click.option("--valid-from", type=int, default=None, help="key nbf, Unix seconds (default: now)")
@click.option("--valid-days", type=click.IntRange(min=1), default=365, show_default=True)
@user_errors
def issuer_rotate(data_dir, valid_from, valid_days):
    """Add a new issuer key alongside the old ones (re-export the trust store afterwards)."""
    kid = _bo(data_dir).rotate_issuer(valid_from=valid_from, valid_days=valid_days)
    click.echo("new issuer key: kid %s" % kid.hex())


@issuer.command("list")
@data_option
@user_errors
def issuer_list(data_dir):
    """List issuer keys."""
    from rich.table import Table
    bo = _bo(data_dir)
    ks = bo.issuer_keys()
    if not ks:
        click.echo("no issuer keys (run `offgate issuer init`)")
        return
    try:
        signer = bo.signing_key()[0]["kid"]
    except Exception:
        signer = None
    t = Table(title="issuer keys")
    for c in ("kid", "iss", "nbf", "exp", "signing"):
        t.add_column(c, no_wrap=True)
    for k in ks:
        t.add_row(k["kid"].hex(), k["iss"], _iso(k["nbf"]), _iso(k["exp"]), "yes" if k["kid"] == signer else "")
    _console().print(t)


# ----------------------------------------------------------------------------- trust
@main.group()
def trust():
    """Trust store for the gates."""


@trust.command("export")
@data_option
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@user_errors
def trust_export(data_dir, out):
    """Write the trust store (trust.cbor) to OUT."""
    bo = _bo(data_dir)
    bo.export_trust(out)
    click.echo("trust store: %d key(s) -> %s" % (len(bo.issuer_keys()), out))


# ----------------------------------------------------------------------------- accounts
@main.group()
def account():
    """Rider accounts."""


@account.command("create")
@data_option
@click.argument("account_id")
@click.option("--balance", type=click.IntRange(min=0), default=0, show_default=True, help="minor units")
@click.option("--credit", type=click.IntRange(min=0), default=0, show_default=True, help="minor units")
@user_errors
def account_create(data_dir, account_id, balance, credit):
    """Create account ACCOUNT_ID."""
    a = _bo(data_dir).create_account(account_id, balance=balance, credit=credit)
    click.echo("account %s created: balance %d, credit %d" % (a["id"], a["balance"], a["credit"]))


@account.command("list")
@data_option
@user_errors
def account_list(data_dir):
    """List accounts."""
    from rich.table import Table
    bo = _bo(data_dir)
    accts = bo.list_accounts()
    if not accts:
        click.echo("no accounts")
        return
    t = Table(title="accounts (minimum for issuing: %d)" % bo.min_balance())
    for c in ("id", "balance", "credit", "credentials"):
        t.add_column(c)
    for a in accts:
        t.add_row(a["id"], str(a["balance"]), str(a["credit"]), str(len(bo.credentials(a["id"]))))
    _console().print(t)


# ----------------------------------------------------------------------------- config
@main.group()
def config():
    """Back-office settings."""


@config.command("min-balance")
@data_option
@click.argument("amount", type=click.IntRange(min=0), required=False)
@user_errors
def config_min_balance(data_dir, amount):
    """Show or set the minimum balance-or-credit for issuing credentials (minor units)."""
    bo = _bo(data_dir)
    if amount is not None:
        bo.set_min_balance(amount)
    click.echo("min balance: %d" % bo.min_balance())


# ----------------------------------------------------------------------------- credentials
@main.group()
def credential():
    """Rider credentials."""


@credential.command("issue")
@data_option
@click.argument("account_id")
@click.option("--wallet", "wallet_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="wallet JSON: the rider key is read from it and the credential stored into it")
@click.option("--zones", required=True, help="comma-separated zone ids, e.g. 1,2")
@click.option("--gates", default=None, help="comma-separated gate ids (default: any gate)")
@click.option("--product", type=click.IntRange(min=0), default=1, show_default=True)
@click.option("--valid-hours", type=click.FloatRange(min=0, min_open=True), default=24.0, show_default=True)
@click.option("--cap", type=click.IntRange(min=0), default=None, help="offline spending cap, minor units")
@user_errors
def credential_issue(data_dir, account_id, wallet_path, zones, gates, product, valid_hours, cap):
    """Issue a credential for ACCOUNT_ID to a wallet."""
    from . import formats
    from .wallet import Wallet
    zones = _uint_list(zones, "--zones")
    gates = _uint_list(gates, "--gates")
    w = Wallet.load(wallet_path)
    cred = _bo(data_dir).issue_credential(account_id, w.pub65, zones=zones, product=product, gates=gates,
                                          valid_seconds=max(1, int(valid_hours * 3600)), cap=cap)
    w.set_credential(cred)
    c = formats.parse_credential(cred)
    click.echo("credential %s issued to %s (%d bytes, kid %s, valid %s .. %s) -> %s"
               % (c["cti"].hex(), account_id, len(cred), c["kid"].hex(), _ts(c["nbf"]), _ts(c["exp"]), wallet_path))


@credential.command("list")
@data_option
@click.option("--account", "account_id", default=None)
@user_errors
def credential_list(data_dir, account_id):
    """List issued credentials."""
    from rich.table import Table
    bo = _bo(data_dir)
    denied = set(bo.deny_list())
    t = Table(title="credentials")
    for c in ("cti", "account", "kid", "nbf", "exp", "zones", "product", "cap", "denied"):
        t.add_column(c, no_wrap=True)
    for c in bo.credentials(account_id):
        t.add_row(c["cti"].hex(), c["account"], c["kid"].hex(), _iso(c["nbf"]), _iso(c["exp"]),
                  ",".join(map(str, c["zones"])), str(c["product"]), "-" if c["cap"] is None else str(c["cap"]),
                  "yes" if c["cti"] in denied else "")
    _console().print(t)


# ----------------------------------------------------------------------------- wallet
@main.group()
def wallet():
    """Wallet simulator (the rider's phone)."""


@wallet.command("new")
@data_option
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="overwrite an existing wallet file")
@user_errors
def wallet_new(data_dir, path, force):
    """Create a wallet (new rider key pair) at PATH."""
    from .wallet import Wallet
    w = Wallet.create(path, overwrite=force)
    click.echo("wallet %s created, rider key %s" % (path, w.pub65.hex()))


@wallet.command("code")
@data_option
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--iat", type=click.IntRange(min=0), default=None, help="code time, Unix seconds (default: now)")
@click.option("--ctr", type=click.IntRange(min=1, max=2 ** 32 - 1), default=None,
              help="explicit counter (default: the wallet's next counter, saved)")
@click.option("--png", type=click.Path(dir_okay=False, path_type=Path), default=None, help="also write a PNG")
@click.option("--svg", type=click.Path(dir_okay=False, path_type=Path), default=None, help="also write an SVG")
@click.option("--terminal", is_flag=True, help="also draw the QR code in the terminal")
@user_errors
def wallet_code(data_dir, path, iat, ctr, png, svg, terminal):
    """Make the next authorization code and print its QR text."""
    import time as _time

    from . import qr
    from .wallet import Wallet
    w = Wallet.load(path)
    if ctr is not None:
        code = w.code(int(_time.time()) if iat is None else iat, ctr)
    else:
        code = w.next_code(now=iat)
    text = w.qr_text(code)
    click.echo(text)
    if png:
        qr.render_png(text, png)
    if svg:
        qr.render_svg(text, svg)
    if terminal:
        click.echo(qr.render_terminal(text), err=True)
    if png or svg or terminal:
        click.echo("(%d bytes, %d chars, QR version %d-M)" % (len(code), len(text), qr.qr_version(text)), err=True)


# ----------------------------------------------------------------------------- deny list
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


# ----------------------------------------------------------------------------- inspect
def _issuer_keys_for_inspect(data_dir, trust_file):
    from . import formats
    if trust_file is not None:
        return [k["pub"] for k in formats.parse_trust_store(Path(trust_file).read_bytes())], str(trust_file)
    if data_dir is not None and (Path(data_dir) / "offgate.db").exists():
        return [k["pub"] for k in _bo(data_dir).issuer_keys()], str(Path(data_dir) / "offgate.db")
    return None, None


@main.command("inspect")
@data_option
@click.argument("qrtext")
@click.option("--trust", "trust_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="verify the issuer signature against this trust.cbor (default: the data dir's keys, if any)")
@user_errors
def inspect_cmd(data_dir, qrtext, trust_file):
    """Decode a QR text (or '-' to read it from stdin) and show what is inside."""
    from rich.table import Table

    from . import formats, qr
    if qrtext == "-":
        qrtext = sys.stdin.readline()
    qrtext = qrtext.strip()
    code = formats.code_from_qr_text(qrtext)
    auth = formats.parse_auth_code(code, verify=True)
    c = auth["credential"]
    issuer_pubs, source = _issuer_keys_for_inspect(data_dir, trust_file)
    if issuer_pubs is None:
        issuer_status = "not checked (no trust store or back-office data)"
    else:
        try:
            formats.parse_credential(auth["cred"], issuer_pubs)
            issuer_status = "valid (%s)" % source
        except ValueError as e:
            issuer_status = "INVALID: %s" % e

    t = Table(title="authorization code", show_header=False)
    t.add_column("field", style="bold")
    t.add_column("value", overflow="fold")
    t.add_row("size", "%d bytes, QR text %d chars, QR version %d-M" % (len(code), len(qrtext), qr.qr_version(qrtext)))
    t.add_row("rider signature", "valid")
    t.add_row("iat", _ts(auth["iat"]))
    t.add_row("ctr", str(auth["ctr"]))
    t.add_row("credential", "%d bytes" % len(auth["cred"]))
    t.add_row("issuer signature", issuer_status)
    t.add_row("kid", c["kid"].hex() if c["kid"] else "-")
    t.add_row("iss", c["iss"])
    t.add_row("sub (account)", c["sub"])
    t.add_row("cti", c["cti"].hex())
    t.add_row("iat (issued)", _ts(c["iat"]) if "iat" in c else "-")
    t.add_row("nbf", _ts(c["nbf"]))
    t.add_row("exp", _ts(c["exp"]))
    t.add_row("zones", ", ".join(map(str, c["zones"])))
    t.add_row("gates", ", ".join(map(str, c["gates"])) if "gates" in c else "any")
    t.add_row("product", str(c["product"]))
    t.add_row("cap", str(c["cap"]) if "cap" in c else "-")
    t.add_row("rider key", "%s (%s in credential)" % (c["rider_pub65"].hex(),
                                                       "compressed" if c["cnf_compressed"] else "uncompressed"))
    if c.get("unknown_claims"):
        t.add_row("unknown claims", repr(c["unknown_claims"]))
    _console().print(t)
    if issuer_status.startswith("INVALID"):
        raise click.ClickException("issuer signature invalid")


@main.command("demo")
@click.option("--heap", default="128k", show_default=True, help="MicroPython heap for the simulated gate")
@click.option("--keep", type=click.Path(file_okay=False), default=None,
              help="put the demo's back office, wallets and gate files here instead of a temp dir")
def demo_cmd(heap, keep):
    """Run the whole offline chain on the simulated gate (real firmware on MicroPython)."""
    from . import demo
    raise SystemExit(demo.run(heap=heap, keep=keep))


@main.group()
def gate():
    """Simulated gate (the real firmware on the MicroPython unix port)."""


@gate.command("init")
@data_option
@click.argument("gate_dir", type=click.Path(file_okay=False))
@click.option("--gate-id", type=int, required=True)
@click.option("--zone", type=int, required=True)
@click.option("--max-age", type=int, default=60, show_default=True, help="seconds a code stays valid")
@click.option("--skew", type=int, default=30, show_default=True, help="tolerated clock difference, seconds")
def gate_init(data_dir, gate_dir, gate_id, zone, max_age, skew):
    """Write a gate directory: gate.json, the trust store and the deny list from the back office."""
    from .simgate import write_gate_dir
    bo = _bo(data_dir)
    cfg = write_gate_dir(gate_dir, gate_id=gate_id, zone=zone, trust=bo.trust_bytes(), deny=bo.deny_bytes(),
                         max_age_s=max_age, skew_s=skew)
    click.echo(str(cfg))


@gate.command("run")
@click.argument("config", type=click.Path(exists=True, dir_okay=False))
@click.option("--heap", default="128k", show_default=True)
@click.option("--tcp", default=None, metavar="HOST:PORT", help="read scanner lines from TCP instead of stdin")
def gate_run(config, heap, tcp):
    """Run the simulated gate: scanner lines on stdin (or TCP), one JSON line per scan on stdout."""
    import os
    from .simgate import micropython_env, sim_command
    args = ["--tcp", tcp] if tcp else []
    cmd = sim_command(config, heap, *args)
    os.execvpe(cmd[0], cmd, micropython_env())
