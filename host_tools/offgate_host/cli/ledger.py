"""`offgate sync|settle|report|ledger ...`: pull the gates' batches, settle them, report."""
import time
from pathlib import Path

import click

from ..errors import OffgateError, UsageError
from .base import (AMOUNT, DB_HELP, ID, UNIX_T, _ask_passphrase_first, _bo, _console, _iso, _ledger, data_option, main,
                   user_errors)


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
@user_errors
def sync_cmd(data_dir, targets, all_gates, every, rounds, db, operator, retries, max_records, no_push, no_time,
             timeout, force_time):
    """Sync gates: TARGET is tcp:HOST:PORT or serial:/dev/ttyUSB0 (or --all: every gate's target).
    Pulls and decrypts the batch summaries, ingests them into the ledger (chain verified),
    acknowledges them, then pushes the deny list, the signed trust list and signed time."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from ..ledger import fleet
    from ..backoffice.backoffice import BackOfficeError
    from ..sync.frames import SyncError
    from ..sync.transports import parse_target
    interval = _duration(every, "--every") if every is not None else None
    if interval is not None and interval < 10:
        raise UsageError("--every must be at least 10s")
    bo = _bo(data_dir)
    if all_gates:
        if targets:
            raise UsageError("give TARGETs or --all, not both")
        expected = {t: g for g, t in fleet.targets(bo).items()}  # target -> the gate it should reach
        targets = tuple(expected)
        if not targets:
            raise OffgateError("no gate has a sync target: set them with `offgate gates target GATE_ID TARGET`")
    elif not targets:
        raise UsageError("give one or more TARGETs (tcp:HOST:PORT, serial:/dev/ttyUSB0) or --all")
    else:
        expected = {}
    for t in targets:
        parse_target(t)  # bad targets fail before anything happens
    led = _ledger(bo, db)
    _ask_passphrase_first(data_dir)  # before the progress bars, once for every key the sync signs with
    kw = dict(retries=retries, operator=operator, push=not no_push, set_time=not no_time, max_records=max_records,
              force_time=force_time)
    if interval is not None or rounds is not None:
        try:
            from ..db import safe_url
            kids = _issuer_kids(bo)

            def reopen():
                # the same back office again, not whatever now answers at its URL (QA9: another
                # one's database restored under the name; its "not enrolled" advice would enrol
                # these gates there): every issuer key it had, kept or retired, is still there
                st = _reopen(data_dir, db)
                if not kids <= _issuer_kids(st[0]):
                    _close_quietly(st[1])
                    raise OffgateError("the database now at %s is not this back office's (its issuer keys "
                                       "differ): not syncing into it" % safe_url(st[0].db.url))
                return st
            state = _sync_unattended([bo, led], reopen, targets, interval or 300, rounds, timeout, kw, expected)
            led = state[1] or led
        finally:
            _close_quietly(led)
        return
    failed = 0
    why = []  # "target: error" of each failed gate, for the last line (the bar's note is cut short)
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
                # a gate with no backlog: "0/0, nothing to pull", not an unknown total ("0/?")
                prog.update(task, description="%s gate %d" % (target, gid), completed=done,
                            total=max(backlog, done), note="records" if backlog or done else "nothing to pull")

            try:
                s = _sync_one(target, timeout, bo, led, expected, dict(kw, progress=progress))
            except (SyncError, BackOfficeError) as e:
                failed += 1
                why.append("%s: %s" % (target, " ".join(str(e).split())))
                # what the attempts ingested before the failure is in the ledger: counted, and said
                got = getattr(e, "summary", None) or {}
                for k in totals:
                    totals[k] += got.get(k, 0)
                # the bar shows what was pulled and committed before the failure, never a full bar:
                # the rest of the backlog is still on the gate
                done = seen["done"]
                prog.update(task, completed=done, total=max(seen["backlog"], done + 1),
                            note="[red]FAILED%s: %s" % (_ingested(got), e))
                prog.update(whole, advance=1, note="%d record(s), %d new, %d fraud; [red]%d failed"
                            % (totals["pulled"], totals["new"], totals["fraud"], failed))
                continue
            for k in totals:
                totals[k] += s.get(k, 0)
            prog.update(task, total=max(seen["backlog"], seen["done"]),
                        note="%s%d new, %d duplicate, %d anomalies, %d fraud; drift %s s%s"
                        % ("nothing to pull; " if not s.get("pulled") else "",
                           s["new"], s["duplicates"], s["anomalies"], s["fraud"], s.get("drift", "-"),
                           "".join("; [yellow]%s" % w for w in s.get("warnings", ()))))
            prog.update(whole, advance=1, note="%d record(s), %d new, %d fraud%s"
                        % (totals["pulled"], totals["new"], totals["fraud"],
                           "; [red]%d failed" % failed if failed else ""))
    led.close()
    if failed:
        raise click.ClickException("%d of %d gate(s) failed to sync (%s); %d record(s) ingested in all (%d new)"
                                   % (failed, len(targets), "; ".join(why), totals["pulled"], totals["new"]))


def _ingested(summary):
    """' after ingesting N record(s) (M new)' for a failed sync that ingested some, else ''."""
    if not summary.get("pulled"):
        return ""
    return " after ingesting %d record(s) (%d new)" % (summary["pulled"], summary.get("new", 0))


_sleep = None  # tests replace it (no real waiting)


def _sync_one(target, timeout, bo, led, expected, kw):
    """One gate's sync (ledger.pull.sync_with_retries). With --all, `expected` maps each target to
    the gate registered there: a different gate answering is a failure (SyncError, its records kept
    as that gate's, which they are), so a wrong target is not taken for a synced gate."""
    from ..ledger.pull import sync_with_retries
    from ..sync.frames import SyncError
    from ..sync.transports import parse_target
    s = sync_with_retries(lambda: parse_target(target, timeout), bo, led, **kw)
    want, got = expected.get(target), s.get("gate_id")
    if want is not None and got is not None and got != want:
        e = SyncError("%s answered as gate %d, not gate %d: its records were taken as gate %d's; gate %d was "
                      "not synced: fix its target (`offgate gates target %d TARGET`)"
                      % (target, got, want, got, want, want))
        e.summary = s
        raise e
    return s


def _issuer_kids(bo):
    return {k["kid"] for k in bo.issuer_keys(include_retired=True)}


def _reopen(data_dir, db):
    bo = _bo(data_dir)
    return [bo, _ledger(bo, db)]


def _close_quietly(led):
    if led is None:
        return
    try:
        led.close()
    except Exception:  # a connection whose server is gone: nothing left to close cleanly
        pass


def _sync_unattended(state, reopen, targets, every, rounds, timeout, kw, expected=None):
    """`offgate sync --every`: each round syncs the gates that are due, one log line each (UTC time,
    target, gate, outcome); a gate that fails is retried after a back-off (fleet.backoff) instead
    of every round. Runs until interrupted (or `rounds` rounds, for tests).
    state: [back office, ledger] on their one database; when its server goes away (a PostgreSQL
    restart) the round says so in one line and the next round connects again (`reopen()`: a new
    [back office, ledger]). Returns the state at the end."""
    import signal
    import time as _time

    from ..ledger import fleet
    from ..backoffice.backoffice import BackOfficeError
    from ..db import connection_lost
    from ..sync.frames import SyncError
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

    def db_down(wait):  # no gate is due before the database is tried again
        for t in due:
            due[t] = max(due[t], _time.time() + wait)
    while rounds is None or done < rounds:
        now = _time.time()
        for target in targets:
            if due[target] > now:
                continue
            stamp = _iso(int(_time.time()))
            if state[1] is None:
                try:
                    state[:] = reopen()
                except OffgateError as e:  # the server still down: its one-line reason
                    click.echo("%s database still unavailable: %s; next try in %ds"
                               % (stamp, " ".join(str(e).split()), every))
                    db_down(every)
                    break
            try:
                s = _sync_one(target, timeout, state[0], state[1], expected or {}, kw)
            except (SyncError, BackOfficeError, OSError) as e:
                fails[target] += 1
                wait = fleet.backoff(every, fails[target])
                due[target] = _time.time() + wait
                click.echo("%s %s FAILED (%d in a row)%s: %s; next try in %ds"
                           % (stamp, target, fails[target], _ingested(getattr(e, "summary", None) or {}),
                              " ".join(str(e).split()), wait))
                continue
            except Exception as e:
                lost = connection_lost(e)
                if lost is None:
                    raise
                # the server went away mid-sync: what it committed stays, the gate keeps the rest
                # (unacknowledged); every gate waits for the next round, on a new connection
                click.echo("%s %s FAILED: %s; connecting again in %ds" % (stamp, target, lost, every))
                _close_quietly(state[1])
                state[:] = [None, None]
                db_down(every)
                break
            fails[target] = 0
            due[target] = _time.time() + every
            click.echo("%s %s gate %s ok: %d new, %d duplicate, %d anomalies, %d fraud, drift %s s%s"
                       % (stamp, target, s.get("gate_id", "?"), s["new"], s["duplicates"], s["anomalies"], s["fraud"],
                          s.get("drift", "-"), "".join("; %s" % w for w in s.get("warnings", ()))))
        done += 1
        if rounds is not None and done >= rounds:
            break
        sleep(max(1.0, min(due.values()) - _time.time()))
    return state


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
@click.option("--force-time", is_flag=True, help="settle at a time more than 30 days ahead of the newest the back "
              "office knows (after checking the host clock by hand)")
@user_errors
def settle_cmd(data_dir, db, now, force_time):
    """Charge settled trips against the accounts' holds, flag use beyond the cap, release the holds
    of expired credentials."""
    bo = _bo(data_dir)
    led = _ledger(bo, db)
    asked = int(time.time()) if now is None else now
    s = led.settle(bo, now=asked, force_time=force_time)
    led.close()
    if s["time"] > asked:  # the host clock is behind the last settlement: priced as of after it
        click.echo("settlement time %d: after the previous settlement's (the clock given, %d, is behind it; "
                   "settled is final, docs/fares.md)" % (s["time"], asked))
    if "journeys" in s:  # priced by a fare table (docs/fares.md)
        click.echo("fare table version %d: %d account(s), %d journey(s) priced (%d incomplete, %d exit(s) without "
                   "entry, %d capped), %d entr(ies) pending; charges changed by %d"
                   % (s["version"], s["accounts"], s["journeys"], s["incomplete"], s["unmatched_exits"], s["capped"],
                      s["pending"], s["charged"]))
        if s.get("frozen"):
            click.echo("%d tap(s) settled under an earlier fare regime (flat fare or another version) left as "
                       "charged: settled charges are final (docs/fares.md)" % s["frozen"])
    # amounts in minor currency units; the part beyond caps is charged all the same (the ride
    # happened), flagged and its credential denied (docs/backoffice.md)
    click.echo("settled %d trip(s): %d charged in all (minor units), %d of it beyond credential caps; %d fraud "
               "flag(s); %d unknown credential(s); %d hold(s) released (%d minor units)"
               % (s["trips"], s["charged"], s["over_cap"], s["fraud"], s["unknown"], s["released"],
                  s["released_amount"]))


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

    from ..ledger import report
    bo = _bo(data_dir)
    led = _ledger(bo, db)
    try:
        if as_json or details:
            rep = led.report()
            from ..fares import settle as fare_settle
            from ..fares import store as fare_store
            if fare_store.versions(led.db):
                rep["revenue"] = fare_settle.revenue(led.db)
            if as_json:
                click.echo(json.dumps(report.jsonable(rep), indent=1))
                return
            con = _console()
            for t in report.tables(rep):
                con.print(t)
            if "revenue" in rep:
                from ..fares.show import revenue_tables
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
    from ..device.provision import provision_gate_dir
    provision_gate_dir(gate_dir, _bo(data_dir))
    click.echo("root.pub and batch.pub -> %s" % gate_dir)
