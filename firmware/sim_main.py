"""Simulated gate: the real firmware on the MicroPython unix port.

    micropython firmware/sim_main.py CONFIG.json [--tcp HOST:PORT | --pty PATH] [--clock-offset S]
                                                 [--rtc-start T] [--sync HOST:PORT]

Scanner lines come from stdin (default), a TCP socket or a pty; one JSON line per scan goes to
stdout; relay/LED actions go to stderr. At the end of stdin a final status line is printed.
The simulated RTC is the host clock plus --clock-offset S, or (--rtc-start T) starts at Unix time
T when the process starts, as an ESP32 RTC restarts at 946684800 (2000-01-01) after a power loss.
The gate's correction of it (signed time) is kept in the state directory (offgate.timekeep).
--sync runs the sync link (offgate/sync/session.py) on a TCP port beside the scanner task.
"""
import sys
import asyncio

from offgate import gate, unload
from offgate.clock import Clock
from sim.actuators import SimActuator
from sim import streams


def sim_rtc(opts):
    """The simulated RTC (Unix seconds): host clock + offset, or counting from --rtc-start."""
    from offgate.clock import unix_now
    off = opts["offset"]
    if opts["rtc_start"] is not None:
        off = opts["rtc_start"] - unix_now()
    return lambda: unix_now() + off


def main():
    try:
        _main()
    except KeyboardInterrupt:  # Ctrl-C at the terminal: a one-line goodbye, not a traceback
        sys.stderr.write("sim_main: interrupted\n")
        sys.exit(130)
    except OSError as e:  # e.g. an address this host cannot listen on
        sys.stderr.write("sim_main: %s\n" % e)
        sys.exit(1)


def _main():
    from sim import args  # boot-only: the argument parsing goes back to the heap once it has run
    opts = args.parse(sys.argv[1:])
    args = None
    unload("sim.args")
    from offgate import config
    try:
        cfg = config.load(opts["config"])
    except config.ConfigError as e:
        sys.stderr.write("sim_main: %s\n" % e)
        sys.exit(2)
    config = None
    unload("offgate.config")  # boot-only: its bytecode (~4 KB on the unix port) goes back to the heap
    g = gate.build(cfg, SimActuator(sys.stderr), sys.stdout, Clock(source=sim_rtc(opts)))
    if opts["sync"]:
        streams.start_sync(g, opts["sync"][0], opts["sync"][1])
    if opts["tcp"]:
        asyncio.run(streams.with_sync(streams.serve_tcp(g, opts["tcp"][0], opts["tcp"][1])))
    else:
        reader = streams.file_reader(opts["pty"]) if opts["pty"] else streams.stdin_reader()
        asyncio.run(streams.with_sync(g.run(reader)))
        g.emit(g.status())


main()
