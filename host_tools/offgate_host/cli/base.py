"""The CLI's shared parts: the `offgate` group and its error policy (OffgateGroup), option types and
helpers every command module uses. The commands live in one module per group (cli/__init__.py)."""
import datetime
import functools
import shutil
import sys
from pathlib import Path

import click

from ..errors import OffgateError

DATA_HELP = "back-office data directory (env OFFGATE_DATA); `offgate init` creates it"
# bounded parameter types: a huge number is a one-line usage error, never an overflow deeper down
MAX_AMOUNT = 10 ** 12  # = backoffice.MAX_AMOUNT (not imported here: the CLI loads lazily)
AMOUNT = click.IntRange(0, MAX_AMOUNT)
CAP = click.IntRange(0, 2 ** 32 - 2)  # = backoffice.MAX_CAP
ID = click.IntRange(0, 2 ** 30 - 1)  # gate ids, zones, products: = formats.MAX_ID
GATE_ID = click.IntRange(1, 2 ** 30 - 1)  # a gate's id: 0 is no gate
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
        from ..errors import OffgateError
        try:
            return f(*a, **kw)
        except (OffgateError, BrokenPipeError):
            raise  # a closed pipe (`offgate ... | head`) is not an error: OffgateGroup.main ends quietly
        except ValueError as e:
            raise OffgateError(str(e)) from None
        except FileNotFoundError as e:
            raise OffgateError("file not found: %s" % (e.filename or e)) from None
        except OSError as e:
            raise OffgateError("%s: %s" % (e.filename or "I/O error", e.strerror or e)) from None
    return wrapper


def _prompt_passphrase(path=None):
    """The keys' passphrase from the terminal (None without one: the caller says what to do)."""
    global _prompted
    if not sys.stdin.isatty():
        return None
    if _prompted is None:  # asked once per command, not once per key
        _prompted = click.prompt("passphrase for the back office's keys", hide_input=True, err=True)
    return _prompted


_prompted = None


def _ask_passphrase_first(data_dir):
    """Ask for the keys' passphrase now (once, at a terminal) when the key store is encrypted and
    OFFGATE_PASSPHRASE is not set: before a progress display starts that would draw over the
    prompt. Without a terminal nothing happens; the key's loader then says what to do."""
    import os

    from ..wire import keys
    if not os.environ.get(keys.PASSPHRASE_ENV) and keys.encrypted_key_in(Path(data_dir) / "keys") is not None:
        _prompt_passphrase()


class OffgateGroup(click.Group):
    """The entry point's error policy (host_tools/offgate_host/errors.py): an OffgateError or a
    click error that is not a usage error prints `offgate: <message>` (one line, exit 1, or 2 for
    a bad value); click's usage errors as one line too (`offgate CMD: message (offgate CMD --help)`,
    exit 2); Ctrl-C prints
    `offgate: interrupted` (exit 130); anything else is a bug: one line naming it (exit 3), the
    traceback only with OFFGATE_DEBUG=1."""

    def invoke(self, ctx):
        from ..errors import Interrupted
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            # before click's own handler, which would print an empty line and "Aborted!"
            raise Interrupted("interrupted") from None
        except EOFError as e:
            # end of input at a prompt, or a truncated CBOR file (cbor2's decode errors are EOFErrors)
            raise OffgateError("unexpected end of input%s" % (": %s" % e if str(e) else "")) from None
        except BrokenPipeError:
            # past click's own EPIPE handling (exit status 1) to main, which ends quietly
            raise _ReaderGone() from None
        except Exception as e:
            from ..db import connection_lost
            lost = connection_lost(e)  # PostgreSQL restarted mid-command: one line, not a bug
            if lost is None:
                raise
            raise lost from None

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        import os

        from ..errors import EXIT_INTERNAL, EXIT_INTERRUPTED, OffgateError
        from ..wire import keys
        keys.set_passphrase_provider(_prompt_passphrase)
        # SQLAlchemy logs a traceback when it returns a connection whose server is gone; the
        # command's one-line error says what happened
        import logging
        logging.getLogger("sqlalchemy.pool").setLevel(logging.CRITICAL)
        # and psycopg logs "error ignored terminating <Pipeline>" (three lines) when it dies in a pipeline (QA9)
        logging.getLogger("psycopg").setLevel(logging.CRITICAL)
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.Exit as e:
            sys.exit(e.exit_code)
        except _ReaderGone:
            _quiet_broken_pipe()
        except SystemExit:
            # click ends with exit status 1 when its own output (--help, usage) meets a closed pipe
            if type(sys.stdout).__name__ == "_PacifyFlushWrapper":
                _quiet_broken_pipe()
            raise
        except click.UsageError as e:
            # one line like every other error (exit 2): the command, the message, where help is
            where = e.ctx.command_path if e.ctx is not None else "offgate"
            click.echo("%s: %s (%s --help)" % (where, " ".join(e.format_message().split()), where), err=True)
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
        except BrokenPipeError:  # `offgate report | head`: the reader has what it wanted
            _quiet_broken_pipe()
        except Exception as e:
            if os.environ.get("OFFGATE_DEBUG"):
                raise
            click.echo("offgate: internal error (a bug, please report it with OFFGATE_DEBUG=1 output): %s: %s"
                       % (type(e).__name__, " ".join(str(e).split())), err=True)
            sys.exit(EXIT_INTERNAL)
        try:  # what is still buffered, now: a reader gone at the interpreter's last flush is exit 120
            sys.stdout.flush()
        except BrokenPipeError:
            _quiet_broken_pipe()
        if isinstance(rv, int) and rv:
            sys.exit(rv)
        sys.exit(0)


class _ReaderGone(Exception):
    """stdout's reader went away (BrokenPipeError), carried past click's handler to main."""


def _quiet_broken_pipe():
    """End quietly after the reader of stdout went away: no message, and stdout pointed at
    /dev/null so the interpreter's last flush cannot complain either (Python's own advice,
    docs "signal: Note on SIGPIPE"). Exit status 141, as if SIGPIPE had ended the process."""
    import os

    from ..errors import EXIT_BROKEN_PIPE
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real stdout (a test runner's capture): nothing to redirect
        pass
    sys.exit(EXIT_BROKEN_PIPE)


def _uint_list(text, what):
    if text is None:
        return None
    parts = text.replace(" ", "").split(",")
    try:
        vals = [int(p) for p in parts]  # an empty part ("1,,2", "1,") is a typo, not nothing
    except ValueError:
        raise click.BadParameter("%s must be comma-separated integers, e.g. 1,2" % what) from None
    if any(v < 0 or v > ID.max for v in vals):
        raise click.BadParameter("%s must be a non-empty list of integers from 0 to %d" % (what, ID.max))
    return vals


def _bo(data_dir):
    """The existing back office in data_dir (NoBackOffice if there is none: only `offgate init`
    creates one)."""
    from ..backoffice.backoffice import BackOffice
    return BackOffice(data_dir, create=False)


def _operator_name():
    """Who runs the command, for the audit trails (the login name)."""
    import getpass
    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment (a container): still an audit entry
        return "operator"


def _console():
    from rich.console import Console
    c = Console(width=max(160, shutil.get_terminal_size((160, 24)).columns))
    c.on_broken_pipe = _reader_gone  # rich's own ends with exit status 1
    return c


def _reader_gone():
    raise _ReaderGone()


@click.group(cls=OffgateGroup)
@click.version_option(package_name="offgate-host")
def main():
    """offgate host tools."""


DB_HELP = "ledger database: a PostgreSQL URL (postgresql://...) or a SQLite file (default: the back office's db)"


def _ledger(bo, db):
    """The ledger of back office `bo`, on its database. `--db` may only name that database: one
    naming another is opened first (so a missing file or an unreachable server is said as such),
    then refused."""
    from ..db import same_database
    from ..ledger.ledger import Ledger
    if db is not None and not same_database(db, bo.db.url):
        Ledger(db, create=False).close()
        raise OffgateError("--db %s is not the database of the back office in %s (%s); one database holds "
                           "everything: `offgate db upgrade --data %s --db %s` merges a back office from before "
                           "that into it" % (_safe_url(db), bo.data_dir, _safe_url(bo.db.url), bo.data_dir,
                                             _safe_url(db)))
    return Ledger.for_backoffice(bo)


def _safe_url(url):
    from ..db import safe_url
    return safe_url(url)


def db_option(f):
    return click.option("--db", default=None, envvar="OFFGATE_DB", help=DB_HELP)(f)


def _open_ledger(data_dir, db, bo=None):
    """The ledger (a context manager) of the back office in data_dir, or at --db."""
    if bo is None:
        b = _bo(data_dir)
        return _ledger(b, db).closes(b)  # the back office is closed with the ledger (one connection)
    return _ledger(bo, db)
