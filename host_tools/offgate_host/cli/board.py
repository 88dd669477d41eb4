"""`offgate board|deploy|provision`: ESP32 boards, builds, flashing and deployment."""
from pathlib import Path

import click

from .base import GATE_ID, ID, _bo, data_option, main, user_errors


@main.group("board")
def board_group():
    """ESP32 board configs, firmware builds (.mpy) and flashing."""


@board_group.command("validate")
@click.argument("files", nargs=-1, required=True)
def board_validate_cmd(files):
    """Check board config FILES (or board names) the way the gate checks gate.json at boot."""
    from ..device import board as boardmod
    failed = 0
    for f in files:
        try:
            raw = boardmod.load_raw(f)
        except ValueError as e:
            click.echo(str(e))  # names the file already
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
    from ..device import board as boardmod
    for n in boardmod.board_names():
        raw = boardmod.load_raw(n)
        click.echo("%-18s %-8s heap %5d KB  %s" % (n, raw.get("chip"), raw.get("heap_kb", 0), raw.get("description", "")))


@board_group.command("build")
@click.argument("board_name")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="output directory (default build/BOARD under the current directory)")
def board_build_cmd(board_name, out):
    """Cross-compile the firmware for BOARD into ./build/BOARD, or --out DIR (.mpy, main.py,
    gate.json, manifest.py)."""
    from ..device.deploy import DeployError, build
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
    from ..device.deploy import DeployError, flash_plan, run_plan
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
    from ..device import gatefiles
    files = gatefiles.stage(_bo(data_dir), stage, trust, deny)
    return files.pop(gatefiles.TRUST), files.pop(gatefiles.DENY), files


@main.command("deploy")
@data_option
@click.option("--board", "board_name", required=True)
@click.option("--port", required=True, help="serial port, e.g. /dev/ttyUSB0")
@click.option("--gate-id", type=GATE_ID, required=True)
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
@click.option("--build", "build_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="the build to install (default build/BOARD under the current directory, where "
                   "`offgate board build` writes)")
@click.option("--dry-run", is_flag=True, help="print the mpremote commands only")
@user_errors
def deploy_cmd(data_dir, board_name, port, gate_id, zone, trust, deny, no_provision, frozen, romfs, replace, build_dir,
               dry_run):
    """Install the built firmware, gate.json, trust store and deny list on a gate over USB, then provision it."""
    from ..device import deploy as dp
    try:
        bdir = build_dir or dp.build_dir(board_name)
        if not frozen:
            dp.require_build(bdir, board_name)  # before staging anything under it
        stage = bdir / "stage"
        trust, deny, files = _gate_files(data_dir, board_name, trust, deny, stage)
        steps = dp.deploy_plan(board_name, port, gate_id, zone, trust, deny, build=bdir, stage=stage,
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
@click.option("--gate-id", type=GATE_ID, required=True)
@click.option("--replace", is_flag=True, help="accept a new device key for an already registered gate id")
@click.option("--dry-run", is_flag=True, help="print the mpremote command only")
@user_errors
def provision_cmd(data_dir, board_name, port, gate_id, replace, dry_run):
    """Make the gate's device key on the gate (kept there), read its public key, register the gate."""
    from ..device import deploy as dp
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
