"""`offgate stats ...`: masked aggregate statistics across operators
(stats.py, docs/stats.md). Registered by cli/__init__.py through `register`, which hands over its shared
option and error helpers (from cli/base.py)."""
import json
import sys
from pathlib import Path

import click


def register(main, data_option, db_option, user_errors, open_ledger):
    @main.group("stats")
    def stats_group():
        """Masked aggregate statistics across operators (docs/stats.md)."""

    @stats_group.command("party")
    @data_option
    @click.argument("name")
    @click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
                  help="write the party file here (default: print it)")
    @user_errors
    def stats_party(data_dir, name, out):
        """This back office's party file (NAME and stats public key) for a round's coordinator."""
        from ..ledger import stats
        from ..backoffice.backoffice import BackOffice
        with BackOffice(data_dir, create=False) as bo:
            text = json.dumps(stats.party_info(bo, name))
        if out:
            out.write_text(text + "\n")
            click.echo("party %s -> %s" % (name, out))
        else:
            click.echo(text)

    @stats_group.command("round")
    @click.argument("round_id")
    @click.option("--party", "party_files", multiple=True, required=True,
                  type=click.Path(exists=True, dir_okay=False, path_type=Path), help="a party file (repeat)")
    @click.option("--start", type=click.IntRange(0, 2 ** 32 - 1), required=True, help="first hour, Unix seconds (whole hour)")
    @click.option("--hours", type=click.IntRange(1, 24 * 366), required=True, help="number of hours")
    @click.option("--stations", "station_names", required=True, help="comma-separated station names")
    @click.option("--products", required=True, help="comma-separated fare product ids")
    @click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
    @user_errors
    def stats_round(round_id, party_files, start, hours, station_names, products, out):
        """Define a round: ROUND_ID (new for every round), the parties and the common index."""
        from ..ledger import stats
        parties = []
        for f in party_files:
            try:
                parties.append(json.loads(f.read_text()))
            except ValueError as e:
                raise stats.StatsError("party file %s is not JSON: %s" % (f, e)) from None
        try:
            prods = [int(p) for p in products.split(",") if p.strip()]
        except ValueError:
            raise stats.StatsError("--products must be comma-separated integers") from None
        index = {"start": start, "hours": hours, "stations": [s.strip() for s in station_names.split(",") if s.strip()],
                 "products": prods}
        spec = stats.new_round(round_id, parties, index)
        out.write_text(json.dumps(spec, indent=1) + "\n")
        click.echo("round %s: %d parties, %d cells, digest %s -> %s"
                   % (round_id, len(parties), stats.n_cells(spec["index"]), stats.round_digest(spec).hex()[:16], out))
        if len(parties) == 2:
            click.echo("warning: with two parties each one learns the other's counts from the totals", err=True)

    @stats_group.command("rerun")
    @click.argument("round_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.argument("new_round_id")
    @click.option("--without", "without", multiple=True, required=True, help="a party to leave out (repeat)")
    @click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
    @user_errors
    def stats_rerun(round_file, new_round_id, without, out):
        """A failed round again, without the parties that did not submit, under NEW_ROUND_ID."""
        from ..ledger import stats
        spec = stats.rerun(stats.load_round(round_file), new_round_id, list(without))
        out.write_text(json.dumps(spec, indent=1) + "\n")
        click.echo("round %s: %d parties (%s), %d cells -> %s" % (new_round_id, len(spec["parties"]),
                                                                 ", ".join(p["name"] for p in spec["parties"]),
                                                                 stats.n_cells(spec["index"]), out))
        if len(spec["parties"]) == 2:
            click.echo("warning: with two parties each one learns the other's counts from the totals", err=True)

    @stats_group.command("submit")
    @data_option
    @db_option
    @click.argument("round_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
                  help="the signed, masked submission (CBOR)")
    @user_errors
    def stats_submit(data_dir, db, round_file, out):
        """Count this operator's passages over the round's index, mask, sign, write OUT."""
        from ..ledger import stats
        from ..backoffice.backoffice import BackOffice
        spec = stats.load_round(round_file)
        with BackOffice(data_dir, create=False) as bo, open_ledger(data_dir, db, bo) as led:
            _, outside = stats.count_cells(bo, led, spec)
            sub = stats.submit(bo, led, spec)
        out.write_bytes(sub)
        click.echo("round %s: masked submission (%d cells, %d bytes) -> %s; %d passage(s) in the window were "
                   "outside the index" % (spec["round"], stats.n_cells(spec["index"]), len(sub), out, outside))

    @stats_group.command("aggregate")
    @data_option
    @db_option
    @click.argument("round_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.argument("submissions", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--min-count", type=click.IntRange(0, 10 ** 9), default=0, show_default=True,
                  help="publish cells with fewer passages (but not zero) as suppressed")
    @click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
                  help="write the totals (JSON) here (default: stdout)")
    @user_errors
    def stats_aggregate(data_dir, db, round_file, submissions, min_count, out):
        """Verify the parties' SUBMISSIONS, sum them, publish the round's totals."""
        from ..ledger import stats
        spec = stats.load_round(round_file)
        with open_ledger(data_dir, db) as led:
            res = stats.aggregate(led, spec, [Path(s).read_bytes() for s in submissions], min_count=min_count)
        text = json.dumps(res, indent=1)
        if out:
            out.write_text(text + "\n")
            click.echo("round %s: %d parties, %d passages in total, %d cell(s) suppressed -> %s"
                       % (res["round"], len(res["parties"]), res["total"], res["suppressed"], out))
        else:
            sys.stdout.write(text + "\n")
