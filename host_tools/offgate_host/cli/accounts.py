"""`offgate account|config|credential|wallet ...`: rider accounts, credentials and the wallet simulator."""
from pathlib import Path

import click

from ..errors import OffgateError, UsageError
from .base import (AMOUNT, CAP, ID, MAX_AMOUNT, UNIX_T, _bo, _console, _iso, _operator_name, _ts, _uint_list,
                   data_option, main, user_errors)


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


# a negative AMOUNT ("-100") reaches the argument instead of being taken for an unknown option
@account.command("adjust", context_settings={"ignore_unknown_options": True})
@data_option
@click.argument("account_id")
@click.argument("amount", type=click.IntRange(-MAX_AMOUNT, MAX_AMOUNT))
@click.option("--reason", required=True, help="why (refund, correction, write-off...): kept in the audit trail")
@click.option("--by", default=None, help="who did it (default: the login name)")
@click.option("--credit", type=AMOUNT, default=None, help="also set the credit limit (minor units)")
@user_errors
def account_adjust(data_dir, account_id, amount, reason, by, credit):
    """Change ACCOUNT_ID's balance by AMOUNT (minor units, signed: `offgate account adjust A -250
    --reason "..."` takes 250 off), with a reason in the audit trail."""
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
    corrections of settled trips, holds, releases) in the order they were posted, with a running
    balance that ends at the balance."""
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
    # posted order (append-only as the rider sees it); "tap" is the charged journey's first tap
    click.echo("%-17s %-17s %-10s %9s %9s %7s  %s" % ("posted (UTC)", "tap (UTC)", "kind", "amount", "balance", "hold",
                                                    "detail"))
    for m in st:
        line = "%-17s %-17s %-10s %9s %9d %7s  %s" % (
            _iso(m["t"])[:16], _iso(m["tap"])[:16] if m["tap"] is not None else "", m["kind"],
            "%+d" % m["amount"] if m["amount"] else "", m["balance"], "%+d" % m["hold"] if m["hold"] else "",
            m["detail"])
        click.echo(line[:200])
    click.echo("closing balance %d %s the account's balance %d" % (st[-1]["balance"] if st else 0,
                                                                   "=" if summary["reconciles"] else "DIFFERS FROM",
                                                                   a["balance"]))
    if not summary["reconciles"]:
        raise OffgateError("account %s: the statement does not reconcile with the balance" % account_id)


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
    from ..wire import formats
    from ..wallet import Wallet
    zones = _uint_list(zones, "--zones")
    gates = _uint_list(gates, "--gates")
    w = Wallet.load(wallet_path)
    cred = _bo(data_dir).issue_credential(account_id, w.pub65, zones=zones, product=product, gates=gates,
                                          valid_seconds=max(1, int(valid_hours * 3600)), cap=cap,
                                          rider_category=rider_category)
    w.set_credential(cred)
    from ..ledger.receipts import register_enc_key  # enrolment: the wallet's receipt encryption key
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
    from ..wallet import Wallet
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

    from ..wire import qr
    from ..wallet import Wallet
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
