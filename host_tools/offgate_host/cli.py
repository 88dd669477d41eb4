"""offgate command line: back office, wallet simulator and QR inspection."""
import datetime
import functools
import shutil
import sys
from pathlib import Path

import click

from .errors import OffgateError, UsageError

DATA_HELP = "back-office data directory (env OFFGATE_DATA); `offgate init` creates it"
# bounded parameter types: a huge number is a one-line usage error, never an overflow deeper down
MAX_AMOUNT = 10 ** 12  # = backoffice.MAX_AMOUNT (not imported here: the CLI loads lazily)
AMOUNT = click.IntRange(0, MAX_AMOUNT)
CAP = click.IntRange(0, 2 ** 32 - 2)  # = backoffice.MAX_CAP
ID = click.IntRange(0, 2 ** 30 - 1)  # gate ids, zones, products: = formats.MAX_ID
UNIX_T = click.IntRange(0, 2 ** 32 - 1)


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
    """Turn expected failures of a command into one-line errors (exit status 1, no traceback).
    OffgateError needs no wrapping (OffgateGroup prints it); this covers the standard exceptions
    a command's I/O raises."""
    @functools.wraps(f)
    def wrapper(*a, **kw):
        from .errors import OffgateError
        try:
            return f(*a, **kw)
        except OffgateError:
            raise
        except ValueError as e:
            raise OffgateError(str(e)) from None
        except FileNotFoundError as e:
            raise OffgateError("file not found: %s" % (e.filename or e)) from None
        except OSError as e:
            raise OffgateError("%s: %s" % (e.filename or "I/O error", e.strerror or e)) from None
    return wrapper


def _prompt_passphrase(path=None):
    """The keys' passphrase from the terminal (None without one: the caller says what to do)."""
    if not sys.stdin.isatty():
        return None
    return click.prompt("passphrase for the back office's keys", hide_input=True, err=True)


class OffgateGroup(click.Group):
    """The entry point's error policy (host_tools/offgate_host/errors.py): an OffgateError or a
    click error that is not a usage error prints `offgate: <message>` (one line, exit 1, or 2 for
    a bad value); click's usage errors stay click's (usage line + message, exit 2); Ctrl-C prints
    `offgate: interrupted` (exit 130); anything else is a bug: one line naming it (exit 3), the
    traceback only with OFFGATE_DEBUG=1."""

    def invoke(self, ctx):
        from .errors import Interrupted
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            # before click's own handler, which would print an empty line and "Aborted!"
            raise Interrupted("interrupted") from None
        except EOFError as e:
            # end of input at a prompt, or a truncated CBOR file (cbor2's decode errors are EOFErrors)
            raise OffgateError("unexpected end of input%s" % (": %s" % e if str(e) else "")) from None

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        import os

        from .errors import EXIT_INTERNAL, EXIT_INTERRUPTED, OffgateError
        from . import keys
        keys.set_passphrase_provider(_prompt_passphrase)
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.Exit as e:
            sys.exit(e.exit_code)
        except click.UsageError as e:
            e.show()
            sys.exit(e.exit_code)
        except click.Abort as e:
            if isinstance(e.__context__, KeyboardInterrupt) or isinstance(e.__cause__, KeyboardInterrupt):
                click.echo("offgate: interrupted", err=True)
                sys.exit(EXIT_INTERRUPTED)
            click.echo("offgate: aborted", err=True)
            sys.exit(1)
        except click.ClickException as e:
            click.echo("offgate: %s" % " ".join(e.format_message().split()), err=True)
            sys.exit(e.exit_code)
        except OffgateError as e:
            click.echo("offgate: %s" % e, err=True)
            sys.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("offgate: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except BrokenPipeError:  # `offgate report | head`
            sys.exit(1)
        except Exception as e:
            if os.environ.get("OFFGATE_DEBUG"):
                raise
            click.echo("offgate: internal error (a bug, please report it with OFFGATE_DEBUG=1 output): %s: %s"
                       % (type(e).__name__, " ".join(str(e).split())), err=True)
            sys.exit(EXIT_INTERNAL)
        if isinstance(rv, int) and rv:
            sys.exit(rv)
        sys.exit(0)


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
    """The existing back office in data_dir (NoBackOffice if there is none: only `offgate init`
    creates one)."""
    from .backoffice import BackOffice
    return BackOffice(data_dir, create=False)


def _console():
    from rich.console import Console
    return Console(width=max(160, shutil.get_terminal_size((160, 24)).columns))


@click.group(cls=OffgateGroup)
@click.version_option(package_name="offgate-host")
def main():
    """offgate host tools."""


# ----------------------------------------------------------------------------- init
@main.command("init")
@data_option
@click.option("--name", default="offgate-demo", show_default=True, help="issuer name (iss claim)")
@click.option("--valid-from", type=click.IntRange(0, 2 ** 32 - 1), default=None,
              help="first issuer key's nbf, Unix seconds (default: now)")
@click.option("--valid-days", type=click.IntRange(1, 36500), default=365, show_default=True)
@click.option("--db", default=None, envvar="OFFGATE_DB",
              help="the back office's database: a PostgreSQL URL or a new SQLite file (default: offgate.db in "
                   "the data directory)")
@user_errors
def init_cmd(data_dir, name, valid_from, valid_days, db):
    """Create the back office in the data directory (its database, schema by the migrations, and
    first issuer key); the only command that creates one. Idempotent on an existing back office."""
    from .backoffice import BackOffice, exists
    new = not exists(data_dir)
    with BackOffice(data_dir, create=True, db=db) as bo:
        had = bool(bo.issuer_keys())
        kid = bo.init_issuer(name, valid_from=valid_from, valid_days=valid_days)
    click.echo("%s %s; issuer key %s: kid %s%s" % ("back office created in" if new else "back office already in",
                                                   data_dir, "already present" if had else "created", kid.hex(),
                                                   "; database %s" % _safe_url(db) if db else ""))


def _safe_url(url):
    from .db import safe_url
    return safe_url(url)


# ----------------------------------------------------------------------------- database
@main.group("db")
def db_group():
    """The back office's database: schema revision and migrations (docs/database.md)."""


@db_group.command("current")
@data_option
@user_errors
def db_current(data_dir):
    """Show the database of the back office and the schema revision it is at."""
    from .backoffice import database_url
    from .db import HEAD, revision_of
    from .errors import NoBackOffice
    url = database_url(data_dir)
    if url is None:
        raise NoBackOffice("no back office in %s (create one with `offgate init --data %s`)" % (data_dir, data_dir))
    rev = revision_of(url)
    click.echo("%s: revision %s%s" % (_safe_url(url), rev or "none (from before migrations)",
                                      " (current)" if rev == HEAD else "; `offgate db upgrade` moves it to %s" % HEAD))


@db_group.command("upgrade")
@data_option
@click.option("--db", default=None, envvar="OFFGATE_DB",
              help="a back office from before the one database with its ledger apart (init --db URL): move the "
                   "back office's tables into that database, which then holds everything")
@user_errors
def db_upgrade(data_dir, db):
    """Bring the back office's database to the newest schema (idempotent); with --db, merge a back
    office from before the one database into its ledger database."""
    from .backoffice import upgrade_backoffice
    res = upgrade_backoffice(data_dir, db)
    click.echo("%s: revision %s -> %s%s" % (_safe_url(res["url"]), res["before"] or "none", res["after"],
                                           "; merged %d rows of %d tables from %s (kept as %s)"
                                           % (res["rows"], res["tables"], res["merged_from"], res["kept_as"])
                                           if res.get("merged_from") else ""))


# ----------------------------------------------------------------------------- issuer
@main.group()
def issuer():
    """Issuer keys (they sign credentials)."""


@issuer.command("init")
@data_option
@click.option("--name", default="offgate-demo", show_default=True, help="issuer name (iss claim)")
@click.option("--valid-from", type=UNIX_T, default=None, help="key nbf, Unix seconds (default: now)")
@click.option("--valid-days", type=click.IntRange(1, 36500), default=365, show_default=True)
@user_errors
def issuer_init(data_dir, name, valid_from, valid_days):
    """Create the first issuer key of an existing back office (no-op if one exists; `offgate init`
    creates the back office with its first key)."""
    bo = _bo(data_dir)
    had = bool(bo.issuer_keys())
    kid = bo.init_issuer(name, valid_from=valid_from, valid_days=valid_days)
    click.echo(("issuer key already present: kid %s" if had else "issuer key created: kid %s") % kid.hex())


@issuer.command("rotate")
@data_option
@click.option("--valid-from", type=UNIX_T, default=None, help="key nbf, Unix seconds (default: now)")
@click.option("--valid-days", type=click.IntRange(1, 36500), default=365, show_default=True)
@click.option("--lead-days", type=click.FloatRange(min=0, max=3650), default=7, show_default=True,
              help="the new key signs only after this many days (or once every enrolled gate holds it)")
@user_errors
def issuer_rotate(data_dir, valid_from, valid_days, lead_days):
    """Add a new issuer key alongside the old ones (staged: syncs bring it to the gates first)."""
    bo = _bo(data_dir)
    kid = bo.rotate_issuer(valid_from=valid_from, valid_days=valid_days, lead_days=lead_days)
    click.echo("new issuer key: kid %s; signs from %s (or once every enrolled gate holds it)"
               % (kid.hex(), _iso(bo.staged_keys()[kid.hex()]["sign_from"])))


def _gate_trust_serials(bo, db):
    import json
    led = _ledger(bo, db)
    try:
        out = {}
        for g in led.gates():
            try:
                out[g["gate"]] = (json.loads(g["status"]) if g["status"] else {}).get("trust_serial", 0)
            except ValueError:
                out[g["gate"]] = 0
        return out
    finally:
        led.close()


@issuer.command("rollout")
@data_option
@click.option("--db", default=None, envvar="OFFGATE_DB", help="ledger database (default: the back office's db)")
@user_errors
def issuer_rollout(data_dir, db):
    """Staged issuer keys and the enrolled gates that do not hold them yet (sync those first)."""
    bo = _bo(data_dir)
    for r in bo.rollout(_gate_trust_serials(bo, db)):
        state = "signing" if r["signing"] else "signs from %s" % _iso(r["sign_from"])
        if r["lacking"]:
            click.echo("WARNING: key %s (%s) is missing at gate(s) %s: their riders will be UNKNOWN_ISSUER"
                       % (r["kid"], state, ", ".join(map(str, r["lacking"]))))
        else:
            click.echo("key %s (%s): every enrolled gate holds it" % (r["kid"], state))


@issuer.command("promote")
@data_option
@click.argument("kid")
@user_errors
def issuer_promote(data_dir, kid):
    """Let a staged key sign now (check `offgate issuer rollout` first)."""
    _bo(data_dir).promote(kid)
    click.echo("issuer key %s signs from now" % kid)


@issuer.command("retire")
@data_option
@click.argument("kid")
@user_errors
def issuer_retire(data_dir, kid):
    """Retire an issuer key: it signs nothing more and leaves the trust list at the next sync."""
    bo = _bo(data_dir)
    bo.retire(kid)
    click.echo("issuer key %s retired; trust list serial %d" % (kid, bo.trust_serial()))


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
@click.option("--balance", type=AMOUNT, default=0, show_default=True, help="minor units")
@click.option("--credit", type=AMOUNT, default=0, show_default=True, help="minor units")
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


def _operator_name():
    import getpass
    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment (a container): still an audit entry
        return "operator"


@account.command("topup")
@data_option
@click.argument("account_id")
@click.argument("amount", type=click.IntRange(1, MAX_AMOUNT))
@click.option("--reason", required=True, help="why (payment reference, counter receipt...): kept in the audit trail")
@click.option("--by", default=None, help="who did it (default: the login name)")
@user_errors
def account_topup(data_dir, account_id, amount, reason, by):
    """Add AMOUNT (minor units) to ACCOUNT_ID's balance."""
    a = _bo(data_dir).top_up(account_id, amount, by=by or _operator_name(), reason=reason)
    click.echo("account %s topped up by %d: balance %d" % (account_id, amount, a["balance"]))


@account.command("adjust")
@data_option
@click.argument("account_id")
@click.argument("amount", type=click.IntRange(-MAX_AMOUNT, MAX_AMOUNT))
@click.option("--reason", required=True, help="why (refund, correction, write-off...): kept in the audit trail")
@click.option("--by", default=None, help="who did it (default: the login name)")
@click.option("--credit", type=AMOUNT, default=None, help="also set the credit limit (minor units)")
@user_errors
def account_adjust(data_dir, account_id, amount, reason, by, credit):
    """Change ACCOUNT_ID's balance by AMOUNT (minor units, signed; use -- before a negative
    amount, after the options: `offgate account adjust A --reason "..." -- -250`), with a reason
    in the audit trail."""
    bo = _bo(data_dir)
    who = by or _operator_name()
    if amount:
        bo.adjust(account_id, amount, reason, by=who)
    if credit is not None:
        bo.update_account(account_id, credit=credit, reason=reason, by=who)
    if not amount and credit is None:
        raise UsageError("nothing to adjust: AMOUNT is 0 and no --credit")
    a = bo.get_account(account_id)
    click.echo("account %s: balance %d, credit %d" % (account_id, a["balance"], a["credit"]))


@account.command("show")
@data_option
@click.argument("account_id")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of text")
@user_errors
def account_show(data_dir, account_id, as_json):
    """ACCOUNT_ID's balance, credit, holds and statement (opening, top-ups, adjustments, trips,
    holds, releases) with a running balance that ends at the balance."""
    import json
    bo = _bo(data_dir)
    a = bo.get_account(account_id)
    st = bo.statement(account_id)
    held = bo.outstanding_holds(account_id)
    summary = {"account": account_id, "balance": a["balance"], "credit": a["credit"], "held": held,
               "available": a["balance"] + a["credit"] - held, "credentials": len(bo.credentials(account_id)),
               "reconciles": (st[-1]["balance"] if st else 0) == a["balance"]}
    if as_json:
        click.echo(json.dumps(dict(summary, statement=st), indent=1))
        return
    click.echo("account %s: balance %d, credit limit %d, held %d, can cover %d; %d credential(s)"
               % (account_id, a["balance"], a["credit"], held, summary["available"], summary["credentials"]))
    click.echo("%-17s %-10s %9s %9s %7s  %s" % ("when (UTC)", "kind", "amount", "balance", "hold", "detail"))
    for m in st:
        line = "%-17s %-10s %9s %9d %7s  %s" % (_iso(m["t"])[:16], m["kind"], "%+d" % m["amount"] if m["amount"] else "",
                                               m["balance"], "%+d" % m["hold"] if m["hold"] else "", m["detail"])
        click.echo(line[:200])
    click.echo("closing balance %d %s the account's balance %d" % (st[-1]["balance"] if st else 0,
                                                                   "=" if summary["reconciles"] else "DIFFERS FROM",
                                                                   a["balance"]))
    if not summary["reconciles"]:
        raise OffgateError("account %s: the statement does not reconcile with the balance" % account_id)


# ----------------------------------------------------------------------------- config
@main.group()
def config():
    """Back-office settings."""


@config.command("min-balance")
@data_option
@click.argument("amount", type=AMOUNT, required=False)
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


@config.command("default-cap")
@data_option
@click.argument("amount", type=click.IntRange(1, 2 ** 32 - 2), required=False)
@user_errors
def config_default_cap(data_dir, amount):
    """Show or set the cap (hold, minor units) of a credential issued without --cap; it is never
    more than the account can cover (balance + credit - open holds)."""
    bo = _bo(data_dir)
    if amount is not None:
        bo.set_default_cap(amount)
    click.echo("default cap: %d" % bo.default_cap())


@credential.command("issue")
@data_option
@click.argument("account_id")
@click.option("--wallet", "wallet_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="wallet JSON: the rider key is read from it and the credential stored into it")
@click.option("--zones", required=True, help="comma-separated zone ids, e.g. 1,2")
@click.option("--gates", default=None, help="comma-separated gate ids (default: any gate)")
@click.option("--product", type=ID, default=1, show_default=True)
@click.option("--valid-hours", type=click.FloatRange(min=0, max=24 * 366, min_open=True), default=24.0, show_default=True)
@click.option("--cap", type=CAP, default=None,
              help="spending cap, minor units, held on the account [default: offgate config default-cap, at most "
                   "what the account can cover]; given here, it is also written into the credential")
@click.option("--rider-category", default=None, help="GTFS rider_category_id fares are charged for (docs/fares.md)")
@user_errors
def credential_issue(data_dir, account_id, wallet_path, zones, gates, product, valid_hours, cap, rider_category):
    """Issue a credential for ACCOUNT_ID to a wallet."""
    from . import formats
    from .wallet import Wallet
    zones = _uint_list(zones, "--zones")
    gates = _uint_list(gates, "--gates")
    w = Wallet.load(wallet_path)
    cred = _bo(data_dir).issue_credential(account_id, w.pub65, zones=zones, product=product, gates=gates,
                                          valid_seconds=max(1, int(valid_hours * 3600)), cap=cap,
                                          rider_category=rider_category)
    w.set_credential(cred)
    from .receipts import register_enc_key  # enrolment: the wallet's receipt encryption key
    register_enc_key(_bo(data_dir), w.pub65, w.ensure_enc_key())
    c = formats.parse_credential(cred)
    held = _bo(data_dir).credential(c["cti"])["cap"]
    click.echo("credential %s issued to %s (%d bytes, kid %s, valid %s .. %s, cap %d held) -> %s"
               % (c["cti"].hex(), account_id, len(cred), c["kid"].hex(), _ts(c["nbf"]), _ts(c["exp"]), held,
                  wallet_path))


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
@click.option("--iat", type=UNIX_T, default=None, help="code time, Unix seconds (default: now)")
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
@click.argument("cti_hex", required=False)
@click.option("--file", "id_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="a file of credential ids, one per line (16 hex digits; blank lines and # comments skipped)")
@click.option("--reason", default=None, help="why (kept in the deny audit trail); required with --file")
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
@click.argument("cti_hex", required=False)
@click.option("--file", "id_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="a file of credential ids, one per line (as for deny add --file)")
@click.option("--reason", default=None, help="why (kept in the deny audit trail); required with --file")
@user_errors
def deny_remove(data_dir, cti_hex, id_file, reason):
    """Take credential CTI_HEX, or every id in --file, off the deny list in one transaction."""
    bo, ids, reason = _deny_ids(data_dir, cti_hex, id_file, reason, "deny remove")
    n = bo.undeny_many(ids, reason, by=_operator_name())
    click.echo("removed %d of %d id(s) from the deny list; list now %d" % (n, len(ids), bo.deny_count()))


def _deny_ids(data_dir, cti_hex, id_file, reason, default_reason):
    from .backoffice import BackOfficeError, read_id_file
    if (cti_hex is None) == (id_file is None):
        raise BackOfficeError("give one credential id or --file FILE, not both or neither")
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


# ----------------------------------------------------------------------------- inspect
def _issuer_keys_for_inspect(data_dir, trust_file):
    from . import formats
    if trust_file is not None:
        try:
            return [k["pub"] for k in formats.parse_trust_store(Path(trust_file).read_bytes())], str(trust_file)
        except (ValueError, EOFError, LookupError, TypeError) as e:  # cbor2's decode errors included
            raise UsageError("%s is not a trust store (trust.cbor): %s" % (trust_file, e or type(e).__name__)) from None
    if data_dir is not None and (Path(data_dir) / "offgate.db").exists():
        return [k["pub"] for k in _bo(data_dir).issuer_keys()], str(Path(data_dir) / "offgate.db")
    return None, None


@main.command("inspect")
@data_option
@click.argument("qrtext")
@click.option("--trust", "trust_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="verify the issuer signature against this trust.cbor (default: the data dir's keys, if any)")
@click.option("--now", type=UNIX_T, default=None, help="gate time for the verdict, Unix seconds (default: now)")
@click.option("--gate-id", type=ID, default=None, help="judge as this gate (default: gate restrictions not checked)")
@click.option("--zone", type=ID, default=None, help="judge in this zone (default: zones not checked)")
@user_errors
def inspect_cmd(data_dir, qrtext, trust_file, now, gate_id, zone):
    """Decode a QR text (or '-' to read it from stdin) with the gate's rules (docs/protocol.md §5),
    say what the gate would decide, and show what is inside."""
    import time

    from rich.table import Table

    from . import formats, gateview, qr
    issuer_pubs, source = _issuer_keys_for_inspect(data_dir, trust_file)  # a bad trust file fails first
    if qrtext == "-":
        qrtext = sys.stdin.readline()
    qrtext = qrtext.strip()
    now = int(time.time()) if now is None else now
    if trust_file is not None:
        try:
            gtrust = gateview.trust_keys(Path(trust_file).read_bytes())
        except ValueError as e:
            raise click.ClickException("trust store %s: the gate would refuse it: %s" % (trust_file, e)) from None
    elif data_dir is not None and (Path(data_dir) / "offgate.db").exists():
        from . import keys as keys_mod
        gtrust = [(k["kid"], keys_mod.pub_from_bytes(k["pub"]), k["nbf"], k["exp"]) for k in _bo(data_dir).issuer_keys()]
    else:
        gtrust = []
    verdict, vinfo = gateview.decide(qrtext, gtrust, now, gate_id, zone)
    if verdict in gateview.STRUCTURAL:
        # the gate stops here: show nothing it did not judge (no counter, no credential)
        raise click.ClickException("the gate would decide %s%s" % (verdict, ": " + vinfo["why"] if "why" in vinfo else ""))
    code = formats.code_from_qr_text(qrtext)
    auth = formats.parse_auth_code(code, verify=True)
    c = auth["credential"]
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
    t.add_row("gate would decide", "%s (at %s%s%s)" % (verdict, _ts(now), ", gate %d" % gate_id if gate_id is not None
                                                         else "", ", zone %d" % zone if zone is not None else ""))
    t.add_row("size", "%d bytes, QR text %d chars, QR version %d-M" % (len(code), len(qrtext), qr.qr_version(qrtext)))
    t.add_row("rider signature", "valid")
    t.add_row("iat", _ts(auth["iat"]))
    t.add_row("ctr", str(auth["ctr"]))
    t.add_row("credential", "%d bytes" % len(auth["cred"]))
    t.add_row("issuer signature", issuer_status)
    t.add_row("kid", c["kid"].hex() if c["kid"] else "-")
    t.add_row("iss", c.get("iss", "- (the kid names the issuer)"))
    t.add_row("sub (account)", c.get("sub", "- (the back office finds it by cti)"))
    t.add_row("cti", c["cti"].hex())
    t.add_row("iat (issued)", _ts(c["iat"]) if "iat" in c else "-")
    t.add_row("nbf", _ts(c["nbf"]) if c["nbf"] is not None else "- (from issuance)")
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
@click.option("--heap", default=None, help="MicroPython heap for the simulated gate [default: 128k on a 32-bit build, 160k on the 64-bit port]")
@click.option("--keep", type=click.Path(file_okay=False), default=None,
              help="put the demo's back office, wallets and gate files here instead of a temp dir")
def demo_cmd(heap, keep):
    """Run the whole offline chain on the simulated gate (real firmware on MicroPython)."""
    from . import demo
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
@click.option("--gate-id", type=ID, required=True)
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
    from .simgate import write_gate_dir
    from .syncclient import provision_gate_dir
    bo = _bo(data_dir)
    same = _check_gate_dir(Path(gate_dir), gate_id)
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
        led.close()
    cfg = write_gate_dir(gate_dir, gate_id=gate_id, zone=zone, trust=bo.trust_bytes(), deny=bo.deny_bytes(),
                         max_age_s=max_age, skew_s=skew, **extra)
    # root.pub and batch.pub, so the gate can sync; the device key made in the gate's directory and
    # registered under its id: that registration is what the ledger enrols the gate with
    provision_gate_dir(gate_dir, bo, gate_id=gate_id)
    click.echo(str(cfg))


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
    from .simgate import SYNC_HEAP_32, SYNC_HEAP_64, check_config, micropython_env, sim_command, word_bits
    if mp is not None and not (os.path.isfile(mp) and os.access(mp, os.X_OK)):
        raise UsageError("--micropython %s: not an executable file" % mp)
    check_config(config)  # a junk or wrong gate.json is a one-line error here, not a firmware crash
    for what, addr in (("--tcp", tcp), ("--sync", sync_addr)):
        if addr is not None:
            _host_port(what, addr)
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


# ----------------------------------------------------------------------------- ESP32: boards, deploy, provisioning
@main.group("board")
def board_group():
    """ESP32 board configs, firmware builds (.mpy) and flashing."""


@board_group.command("validate")
@click.argument("files", nargs=-1, required=True)
def board_validate_cmd(files):
    """Check board config FILES (or board names) the way the gate checks gate.json at boot."""
    from . import board as boardmod
    failed = 0
    for f in files:
        try:
            raw = boardmod.load_raw(f)
        except ValueError as e:
            click.echo("%s: %s" % (f, e))
            failed += 1
            continue
        bad = boardmod.problems(raw)
        if bad:
            failed += 1
            click.echo("%s: %d problem(s)" % (f, len(bad)))
            for b in bad:
                click.echo("  " + b)
        else:
            click.echo("%s: OK (board %s, chip %s, heap %d KB%s)" % (f, raw["board"], raw["chip"], raw["heap_kb"],
                                                                     ", PSRAM" if raw.get("psram") else ""))
    if failed:
        raise SystemExit(1)


@board_group.command("list")
def board_list_cmd():
    """List the board configs in board_configs/."""
    from . import board as boardmod
    for n in boardmod.board_names():
        raw = boardmod.load_raw(n)
        click.echo("%-18s %-8s heap %5d KB  %s" % (n, raw.get("chip"), raw.get("heap_kb", 0), raw.get("description", "")))


@board_group.command("build")
@click.argument("board_name")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="output directory (default build/BOARD)")
def board_build_cmd(board_name, out):
    """Cross-compile the firmware for BOARD into build/BOARD (.mpy, main.py, gate.json, manifest.py)."""
    from .deploy import DeployError, build
    try:
        d = build(board_name, out)
    except (DeployError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    n = len(list(d.rglob("*.mpy")))
    click.echo("%s: %d .mpy files%s" % (d, n, ", manifest.py" if (d / "manifest.py").exists() else ""))


@board_group.command("flash")
@click.option("--board", "board_name", required=True)
@click.option("--port", required=True, help="serial port, e.g. /dev/ttyUSB0")
@click.option("--firmware", type=click.Path(dir_okay=False), required=False, default=None,
              help="MicroPython .bin downloaded from micropython.org/download/<BOARD>/")
@click.option("--no-erase", is_flag=True, help="skip erase-flash (keeps the filesystem, device key included)")
@click.option("--dry-run", is_flag=True, help="print the esptool commands only")
def board_flash_cmd(board_name, port, firmware, no_erase, dry_run):
    """Write a MicroPython image with esptool (erases the flash first, unless --no-erase)."""
    from .deploy import DeployError, flash_plan, run_plan
    try:
        steps = flash_plan(board_name, port, firmware, erase=not no_erase)
        if dry_run:
            for s in steps:
                click.echo(s.line())
            return
        run_plan(steps, echo=click.echo)
    except (DeployError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    click.echo("flashed; next: make deploy BOARD=%s PORT=%s" % (board_name, port))


def _gate_files(data_dir, board_name, trust, deny, stage):
    """Every file the back office gives a gate (gatefiles.FROM_BACKOFFICE), staged: trust store and
    deny list as given or exported, their comb tables, root.pub, batch.pub. -> (trust, deny, files)."""
    from . import gatefiles
    files = gatefiles.stage(_bo(data_dir), stage, trust, deny)
    return files.pop(gatefiles.TRUST), files.pop(gatefiles.DENY), files


@main.command("deploy")
@data_option
@click.option("--board", "board_name", required=True)
@click.option("--port", required=True, help="serial port, e.g. /dev/ttyUSB0")
@click.option("--gate-id", type=ID, required=True)
@click.option("--zone", type=ID, required=True)
@click.option("--trust", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="trust.cbor (default: exported from the back office)")
@click.option("--deny", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="deny.bin (default: exported from the back office)")
@click.option("--no-provision", is_flag=True, help="do not create/read the device key")
@click.option("--frozen", is_flag=True, help="the image has the firmware frozen in: copy only main.py and files")
@click.option("--romfs", is_flag=True, help="install the firmware as a ROMFS image (mpremote romfs deploy; boards "
              "whose MicroPython has a ROMFS partition): its bytecode stays out of the heap")
@click.option("--replace", is_flag=True, help="accept a new device key for an already registered gate id")
@click.option("--dry-run", is_flag=True, help="print the mpremote commands only")
@user_errors
def deploy_cmd(data_dir, board_name, port, gate_id, zone, trust, deny, no_provision, frozen, romfs, replace, dry_run):
    """Install the built firmware, gate.json, trust store and deny list on a gate over USB, then provision it."""
    from . import deploy as dp
    try:
        stage = dp.build_dir(board_name) / "stage"
        trust, deny, files = _gate_files(data_dir, board_name, trust, deny, stage)
        steps = dp.deploy_plan(board_name, port, gate_id, zone, trust, deny, stage=stage,
                               provision=not no_provision, frozen=frozen, files=files, romfs=romfs)
        if dry_run:
            for s in steps:
                click.echo(s.line())
            return
        chip = dp.boardmod.load(board_name)["chip"]
        res = dp.run_plan(steps, chip=chip, echo=click.echo)
    except dp.DeployError as e:
        raise click.ClickException(str(e)) from None
    if "pub" in res:
        g = _bo(data_dir).register_gate(gate_id, res["pub"], board_name, replace=replace)
        click.echo("gate %d registered, device key %s" % (g["gate_id"], g["pub"].hex()))
    click.echo("deployed gate %d (zone %d) on %s" % (gate_id, zone, port))


@main.command("provision")
@data_option
@click.option("--board", "board_name", required=True)
@click.option("--port", required=True, help="serial port, e.g. /dev/ttyUSB0")
@click.option("--gate-id", type=ID, required=True)
@click.option("--replace", is_flag=True, help="accept a new device key for an already registered gate id")
@click.option("--dry-run", is_flag=True, help="print the mpremote command only")
@user_errors
def provision_cmd(data_dir, board_name, port, gate_id, replace, dry_run):
    """Make the gate's device key on the gate (kept there), read its public key, register the gate."""
    from . import deploy as dp
    try:
        cfg = dp.boardmod.load(board_name)
        steps = dp.provision_plan(port, cfg["state_dir"])
        if dry_run:
            for s in steps:
                click.echo(s.line())
            return
        res = dp.run_plan(steps, echo=click.echo)
    except dp.DeployError as e:
        raise click.ClickException(str(e)) from None
    g = _bo(data_dir).register_gate(gate_id, res["pub"], board_name, replace=replace)
    click.echo("gate %d registered, device key %s" % (g["gate_id"], g["pub"].hex()))


# ----------------------------------------------------------------------------- sync / ledger
DB_HELP = "ledger database: a PostgreSQL URL (postgresql://...) or a SQLite file (default: the back office's db)"


def _ledger(bo, db):
    """The ledger of back office `bo`, on its database. `--db` may only name that database: one
    naming another is opened first (so a missing file or an unreachable server is said as such),
    then refused."""
    from .db import same_database
    from .ledger import Ledger
    if db is not None and not same_database(db, bo.db.url):
        Ledger(db, create=False).close()
        raise OffgateError("--db %s is not the database of the back office in %s (%s); one database holds "
                           "everything: `offgate db upgrade --data %s --db %s` merges a back office from before "
                           "that into it" % (_safe_url(db), bo.data_dir, _safe_url(bo.db.url), bo.data_dir,
                                             _safe_url(db)))
    return Ledger.for_backoffice(bo)


@main.command("sync")
@data_option
@click.argument("targets", nargs=-1, required=False)
@click.option("--all", "all_gates", is_flag=True, help="every gate with a sync target (offgate gates target)")
@click.option("--every", default=None, metavar="DURATION",
              help="run unattended: sync again every DURATION (e.g. 5m), per-gate back-off on failure, one log "
                   "line per sync; stops on Ctrl-C or SIGTERM")
@click.option("--rounds", type=click.IntRange(1, 10 ** 6), default=None, hidden=True, help="testing: stop after N rounds")
@click.option("--db", default=None, envvar="OFFGATE_DB", help=DB_HELP)
@click.option("--operator", default="operator", show_default=True, help="operator name (its key is kept in the data dir)")
@click.option("--retries", type=click.IntRange(0, 100), default=3, show_default=True, help="retries on a broken link")
@click.option("--max-records", type=click.IntRange(1, 200), default=200, show_default=True, help="records per batch")
@click.option("--no-push", is_flag=True, help="do not push the deny list and trust list")
@click.option("--no-time", is_flag=True, help="do not set the gate's clock")
@click.option("--timeout", type=click.FloatRange(0.1, 3600), default=30.0, show_default=True, help="seconds to wait for the gate")
@click.option("--force-time", is_flag=True, help="sign the host's time even if it fails the plausibility check "
              "(after checking the host clock by hand)")
@click.option("--drop-after", type=click.IntRange(1, 10 ** 6), default=None, hidden=True, help="testing: cut the link after N frames")
@user_errors
def sync_cmd(data_dir, targets, all_gates, every, rounds, db, operator, retries, max_records, no_push, no_time,
             timeout, force_time, drop_after):
    """Sync gates: TARGET is tcp:HOST:PORT or serial:/dev/ttyUSB0 (or --all: every gate's target).
    Pulls and decrypts the batch summaries, ingests them into the ledger (chain verified),
    acknowledges them, then pushes the deny list, the signed trust list and signed time."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from . import fleet, syncclient
    from .backoffice import BackOfficeError
    interval = _duration(every, "--every") if every is not None else None
    if interval is not None and interval < 10:
        raise UsageError("--every must be at least 10s")
    bo = _bo(data_dir)
    if all_gates:
        if targets:
            raise UsageError("give TARGETs or --all, not both")
        targets = tuple(fleet.targets(bo).values())
        if not targets:
            raise OffgateError("no gate has a sync target: set them with `offgate gates target GATE_ID TARGET`")
    elif not targets:
        raise UsageError("give one or more TARGETs (tcp:HOST:PORT, serial:/dev/ttyUSB0) or --all")
    for t in targets:
        syncclient.parse_target(t)  # bad targets fail before anything happens
    led = _ledger(bo, db)
    kw = dict(retries=retries, operator=operator, push=not no_push, set_time=not no_time, max_records=max_records,
              force_time=force_time)
    if interval is not None or rounds is not None:
        try:
            _sync_unattended(bo, led, targets, interval or 300, rounds, timeout, kw)
        finally:
            led.close()
        return
    failed = 0
    totals = {"pulled": 0, "new": 0, "fraud": 0}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[note]}"), console=_console()) as prog:
        # one bar per gate (records pulled of its backlog) and one for all of them (gates done)
        whole = prog.add_task("all gates", total=len(targets), note="")
        for target in targets:
            task = prog.add_task(target, total=None, note="connecting")
            seen = {"done": 0, "backlog": 0}

            def progress(gid, done, backlog, task=task, target=target, seen=seen):
                seen["done"], seen["backlog"] = done, max(backlog, done)
                prog.update(task, description="%s gate %d" % (target, gid), completed=done,
                            total=max(backlog, done) or None, note="records")

            def make(target=target):
                tr = syncclient.parse_target(target, timeout)
                return syncclient.DropAfter(tr, drop_after) if drop_after else tr
            try:
                s = syncclient.sync_with_retries(make, bo, led, retries=retries, operator=operator,
                                                 push=not no_push, set_time=not no_time,
                                                 max_records=max_records, progress=progress,
                                                 force_time=force_time)
            except (syncclient.SyncError, BackOfficeError) as e:
                failed += 1
                # the bar shows what was pulled and committed before the failure, never a full bar:
                # the rest of the backlog is still on the gate
                done = seen["done"]
                prog.update(task, completed=done, total=max(seen["backlog"], done + 1), note="[red]FAILED: %s" % e)
                prog.update(whole, advance=1, note="%d record(s), %d new, %d fraud; [red]%d failed"
                            % (totals["pulled"], totals["new"], totals["fraud"], failed))
                continue
            for k in totals:
                totals[k] += s.get(k, 0)
            prog.update(task, note="%d new, %d duplicate, %d anomalies, %d fraud; drift %s s%s"
                        % (s["new"], s["duplicates"], s["anomalies"], s["fraud"], s.get("drift", "-"),
                           "".join("; [yellow]%s" % w for w in s.get("warnings", ()))))
            prog.update(whole, advance=1, note="%d record(s), %d new, %d fraud%s"
                        % (totals["pulled"], totals["new"], totals["fraud"],
                           "; [red]%d failed" % failed if failed else ""))
    led.close()
    if failed:
        raise click.ClickException("%d of %d gate(s) failed to sync" % (failed, len(targets)))


_sleep = None  # tests replace it (no real waiting)


def _sync_unattended(bo, led, targets, every, rounds, timeout, kw):
    """`offgate sync --every`: each round syncs the gates that are due, one log line each (UTC time,
    target, gate, outcome); a gate that fails is retried after a back-off (fleet.backoff) instead
    of every round. Runs until interrupted (or `rounds` rounds, for tests)."""
    import signal
    import time as _time

    from . import fleet, syncclient
    from .backoffice import BackOfficeError
    sleep = _sleep or _time.sleep

    def stop(*_):
        raise KeyboardInterrupt
    try:
        signal.signal(signal.SIGTERM, stop)  # systemd stops the service with SIGTERM
    except ValueError:  # not the main thread (tests)
        pass
    due = {t: 0.0 for t in targets}
    fails = {t: 0 for t in targets}
    done = 0
    while rounds is None or done < rounds:
        now = _time.time()
        for target in targets:
            if due[target] > now:
                continue
            stamp = _iso(int(_time.time()))
            try:
                s = syncclient.sync_with_retries(lambda target=target: syncclient.parse_target(target, timeout),
                                                 bo, led, **kw)
            except (syncclient.SyncError, BackOfficeError, OSError) as e:
                fails[target] += 1
                wait = fleet.backoff(every, fails[target])
                due[target] = _time.time() + wait
                click.echo("%s %s FAILED (%d in a row): %s; next try in %ds" % (stamp, target, fails[target],
                                                                                " ".join(str(e).split()), wait))
                continue
            fails[target] = 0
            due[target] = _time.time() + every
            click.echo("%s %s gate %s ok: %d new, %d duplicate, %d anomalies, %d fraud, drift %s s%s"
                       % (stamp, target, s.get("gate_id", "?"), s["new"], s["duplicates"], s["anomalies"], s["fraud"],
                          s.get("drift", "-"), "".join("; %s" % w for w in s.get("warnings", ()))))
        done += 1
        if rounds is not None and done >= rounds:
            break
        sleep(max(1.0, min(due.values()) - _time.time()))


def _duration(text, what):
    """Seconds from '90', '90s', '5m', '6h', '2d'."""
    import re
    m = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", str(text))
    if not m:
        raise UsageError("%s must be a duration such as 90s, 5m, 6h or 2d, got %r" % (what, text))
    return int(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


@main.command("settle")
@data_option
@click.option("--db", default=None, envvar="OFFGATE_DB", help=DB_HELP)
@click.option("--now", type=UNIX_T, default=None, help="settlement time, Unix seconds (default: now)")
@user_errors
def settle_cmd(data_dir, db, now):
    """Charge settled trips against the accounts' holds, flag use beyond the cap, release the holds
    of expired credentials."""
    bo = _bo(data_dir)
    led = _ledger(bo, db)
    s = led.settle(bo, now=now)
    led.close()
    if "journeys" in s:  # priced by a fare table (docs/fares.md)
        click.echo("fare table version %d: %d account(s), %d journey(s) priced (%d incomplete, %d exit(s) without "
                   "entry, %d capped), %d entr(ies) pending; charges changed by %d"
                   % (s["version"], s["accounts"], s["journeys"], s["incomplete"], s["unmatched_exits"], s["capped"],
                      s["pending"], s["charged"]))
    click.echo("settled %d trip(s), %d charged (%d beyond caps); %d fraud flag(s); %d unknown credential(s); "
               "%d hold(s) released (%d)" % (s["trips"], s["charged"], s["over_cap"], s["fraud"], s["unknown"],
                                            s["released"], s["released_amount"]))


@main.command("report")
@data_option
@click.option("--db", default=None, envvar="OFFGATE_DB", help=DB_HELP)
@click.option("--from", "date_from", default=None, metavar="DATE", help="first day (YYYY-MM-DD[THH:MM]), in --tz")
@click.option("--to", "date_to", default=None, metavar="DATE", help="last day, included (YYYY-MM-DD[THH:MM]: up to)")
@click.option("--gate", "gate_ids", type=ID, multiple=True, help="only this gate (repeatable)")
@click.option("--station", "station_ids", multiple=True, help="only this station (repeatable)")
@click.option("--tz", default=None, envvar="OFFGATE_TZ", help="the operator's time zone, IANA name [default: UTC]")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "csv"]), default="text", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="the full ledger report as JSON (gate health, all tables)")
@click.option("--details", is_flag=True, help="the full ledger report as wide tables (gate health, anomalies)")
@user_errors
def report_cmd(data_dir, db, date_from, date_to, gate_ids, station_ids, tz, fmt, as_json, details):
    """Passages and denials per hour, per gate and station, denials by reason, revenue per product
    and station, fraud flags; filtered by date range, gate and station, in the operator's time zone.
    Text fits 80 columns; --format json|csv exports."""
    import json

    from . import report
    bo = _bo(data_dir)
    led = _ledger(bo, db)
    try:
        if as_json or details:
            rep = led.report()
            from .fares import settle as fare_settle
            from .fares import store as fare_store
            if fare_store.versions(led.db):
                rep["revenue"] = fare_settle.revenue(led.db)
            if as_json:
                click.echo(json.dumps(report.jsonable(rep), indent=1))
                return
            con = _console()
            for t in report.tables(rep):
                con.print(t)
            if "revenue" in rep:
                from .fares.show import revenue_tables
                for t in revenue_tables(rep["revenue"]):
                    con.print(t)
            return
        tz = tz or "UTC"
        since = report.parse_day(date_from, tz) if date_from else None
        until = report.parse_day(date_to, tz, end=True) if date_to else None
        if since is not None and until is not None and until <= since:
            raise UsageError("--to must be after --from")
        rep = report.build(led, bo, since, until, list(gate_ids), list(station_ids), tz)
    finally:
        led.close()
    if fmt == "json":
        click.echo(json.dumps(report.jsonable(rep), indent=1))
    elif fmt == "csv":
        click.echo(report.csv_text(rep), nl=False)
    else:
        for line in report.text_lines(rep):
            click.echo(line)


@main.group("ledger")
def ledger_group():
    """Settlement ledger settings."""


@ledger_group.command("fare")
@data_option
@click.option("--db", default=None, envvar="OFFGATE_DB", help=DB_HELP)
@click.argument("product", type=ID)
@click.argument("amount", type=AMOUNT, required=False)
@user_errors
def ledger_fare(data_dir, db, product, amount):
    """Show or set the fare (minor units) of PRODUCT."""
    bo = _bo(data_dir)
    led = _ledger(bo, db)
    if amount is not None:
        led.set_fare(product, amount)
    click.echo("fare of product %d: %d" % (product, led.fare(product)))
    led.close()


@ledger_group.command("provision")
@data_option
@click.argument("gate_dir", type=click.Path(file_okay=False, path_type=Path))
@user_errors
def ledger_provision(data_dir, gate_dir):
    """Put the back office's public root key and batch key into a gate directory (for sync)."""
    from .syncclient import provision_gate_dir
    provision_gate_dir(gate_dir, _bo(data_dir))
    click.echo("root.pub and batch.pub -> %s" % gate_dir)


# ----------------------------------------------------------------------------- fares (docs/fares.md)
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
    fare config, as the next fare table version; settlement uses the newest."""
    from .fares import config as fcfg
    from .fares import feed as ffeed
    from .fares import store
    table = ffeed.read_feed(feed)
    raw = fcfg.load(config_path) if config_path else {}
    cfg = fcfg.validate(raw, table)
    led = _ledger(_bo(data_dir), db)
    try:
        v = store.add_version(led.db, feed, table, fcfg.raw_of(cfg))
    finally:
        led.close()
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
    from .fares import store
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

    from .fares import settle as fare_settle
    bo = _bo(data_dir)
    bo.get_account(account_id)
    led = _ledger(bo, db)
    try:
        rows = fare_settle.statement(led.db, account_id)
    finally:
        led.close()
    if as_json:
        from . import report
        click.echo(json.dumps(report.jsonable({"account": account_id, "journeys": rows}), indent=1))
        return
    from .fares.show import statement_table
    _console().print(statement_table(account_id, rows))


# ----------------------------------------------------------------------------- web server (issue #14)
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

    from .web import store
    from .web.app import invite_url
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
    from .web import store
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
    from .web import store
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

    from .web.app import VENDOR, create_app
    _bo(data_dir).close()  # an existing back office, or one line saying there is none
    if db is not None:
        _ledger(_bo(data_dir), db).close()
    _check_port_free(host, port)
    import os

    from . import keys
    # encrypted keys: the passphrase is asked once here, never from a request's thread
    if any(keys.is_encrypted_pem(p.read_bytes()) for p in (Path(data_dir) / "keys").glob("*.pem")) \
            and not os.environ.get(keys.PASSPHRASE_ENV):
        pw = _prompt_passphrase()
        if not pw:
            raise UsageError("the keys are encrypted: set %s or start the server from a terminal" % keys.PASSPHRASE_ENV)
        os.environ[keys.PASSPHRASE_ENV] = pw
    keys.set_passphrase_provider(None)
    if not VENDOR.is_dir():
        raise click.ClickException("the wallet's JavaScript libraries are missing: run `make web` "
                                   "(npm ci in host_tools/offgate_host/web)")
    click.echo("offgate serve: dashboard http://%s:%d/  wallet http://%s:%d/wallet/  (Ctrl-C stops)"
               % (host, port, host, port), err=True)
    uvicorn.run(create_app(data_dir, db, base_url), host=host, port=port, log_level="warning")
# ----------------------------------------------------------------------------- statistics and receipts
def db_option(f):
    return click.option("--db", default=None, envvar="OFFGATE_DB", help=DB_HELP)(f)


def _open_ledger(data_dir, db, bo=None):
    """The ledger (a context manager) of the back office in data_dir, or at --db."""
    if bo is None:
        b = _bo(data_dir)
        led = _ledger(b, db)
        led._bo = b  # closed with the ledger (it shares the back office's connection)
        return led
    return _ledger(bo, db)


from . import cli_stats  # noqa: E402  (registers `offgate stats` and `offgate station`)

cli_stats.register(main, data_option, db_option, user_errors, _open_ledger)

from . import cli_receipts  # noqa: E402  (registers `offgate receipt` and `offgate wallet receipt`)

cli_receipts.register(main, wallet, data_option, db_option, user_errors, _open_ledger)


# ----------------------------------------------------------------------------- keys at rest, backup, restore
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

    from . import backup, keys
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
    from . import keys
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
    from . import backup
    m = backup.backup(data_dir, out)
    click.echo("backup of %s -> %s: %d file(s), %d encrypted key(s)" % (data_dir, out, len(m["files"]),
                                                                       len(m["encrypted_keys"])))


@main.command("restore")
@data_option
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@user_errors
def restore_cmd(data_dir, archive):
    """Restore ARCHIVE (from `offgate backup`) into the data directory, which must be new or empty;
    every file is checked against the backup's checksums before anything is written."""
    from . import backup
    m = backup.restore(archive, data_dir)
    click.echo("restored %d file(s) into %s (backup of %s)" % (len(m["files"]), data_dir, _iso(m["created"])))


# ----------------------------------------------------------------------------- gates (enrolment)
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

    from . import fleet
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

    from .syncclient import device_pub_of_dir
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
    from . import fleet
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


# ----------------------------------------------------------------------------- operators
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
