"""`offgate init`, `offgate issuer ...`, `offgate trust export`: the issuer keys and the trust list."""
from pathlib import Path

import click

from .base import UNIX_T, _bo, _console, _iso, _ledger, _safe_url, data_option, main, user_errors


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
    from ..backoffice.backoffice import BackOffice, exists
    new = not exists(data_dir)
    with BackOffice(data_dir, create=True, db=db) as bo:
        had = bool(bo.issuer_keys())
        kid = bo.init_issuer(name, valid_from=valid_from, valid_days=valid_days)
    click.echo("%s %s; issuer key %s: kid %s%s" % ("back office created in" if new else "back office already in",
                                                   data_dir, "already present" if had else "created", kid.hex(),
                                                   "; database %s" % _safe_url(db) if db else ""))


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
