"""`offgate db current|upgrade`: the back office's database, its schema revision and migrations
(docs/database.md)."""
import click

from ..errors import NoBackOffice
from .base import _safe_url, data_option, main, user_errors


@main.group("db")
def db_group():
    """The back office's database: schema revision and migrations (docs/database.md)."""


@db_group.command("current")
@data_option
@user_errors
def db_current(data_dir):
    """Show the database of the back office and the schema revision it is at."""
    from ..backoffice.backoffice import database_url
    from ..db import HEAD, revision_of
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
    from ..backoffice.backoffice import upgrade_backoffice
    res = upgrade_backoffice(data_dir, db)
    if res["before"] == res["after"] and not res.get("merged_from"):
        click.echo("%s: already at revision %s (current)" % (_safe_url(res["url"]), res["after"]))
        return
    click.echo("%s: revision %s -> %s%s" % (_safe_url(res["url"]), res["before"] or "none", res["after"],
                                           "; merged %d rows of %d tables from %s (kept as %s)"
                                           % (res["rows"], res["tables"], res["merged_from"], res["kept_as"])
                                           if res.get("merged_from") else ""))
