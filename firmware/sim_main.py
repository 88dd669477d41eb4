"""Simulated gate: the real firmware on the MicroPython unix port.

    micropython firmware/sim_main.py CONFIG.json [--tcp HOST:PORT | --pty PATH] [--clock-offset S]

Scanner lines come from stdin (default), a TCP socket or a pty; one JSON line per scan goes to
stdout; relay/LED actions go to stderr. At the end of stdin a final status line is printed.
"""
import sys
import asyncio

from offgate import config, gate
from offgate.clock import Clock
from sim.actuators import SimActuator
from sim import streams


def usage(msg):
    sys.stderr.write("sim_main: %s\nusage: sim_main.py CONFIG.json [--tcp HOST:PORT | --pty PATH] [--clock-offset S]\n" % msg)
    sys.exit(2)


def parse_args(argv):
    if not argv:
        usage("missing CONFIG.json")
    opts = {"config": argv[0], "tcp": None, "pty": None, "offset": 0}
    i = 1
    while i < len(argv):
        a = argv[i]
        if i + 1 >= len(argv):
            usage("option %s needs a value" % a)
        v = argv[i + 1]
        if a == "--tcp":
            host, _, port = v.rpartition(":")
            opts["tcp"] = (host or "127.0.0.1", int(port))
        elif a == "--pty":
            opts["pty"] = v
        elif a == "--clock-offset":
            opts["offset"] = int(v)
        else:
            usage("unknown option " + a)
        i += 2
    return opts


def main():
    opts = parse_args(sys.argv[1:])
    try:
        cfg = config.load(opts["config"])
    except config.ConfigError as e:
        sys.stderr.write("sim_main: %s\n" % e)
        sys.exit(2)
    g = gate.build(cfg, SimActuator(sys.stderr), sys.stdout, Clock(opts["offset"]))
    if opts["tcp"]:
        asyncio.run(streams.serve_tcp(g, opts["tcp"][0], opts["tcp"][1]))
    else:
        reader = streams.file_reader(opts["pty"]) if opts["pty"] else streams.stdin_reader()
        asyncio.run(g.run(reader))
        g.emit(g.status())


main()
