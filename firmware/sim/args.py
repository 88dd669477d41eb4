"""sim_main's command line (loaded for the boot and dropped after it, as the ESP32 entry drops its
boot-only helpers: code the simulator keeps resident should model what a device keeps; issue 12).
Usage: firmware/sim_main.py's docstring."""
import sys


def usage(msg):
    sys.stderr.write("sim_main: %s\nusage: sim_main.py CONFIG.json [--tcp HOST:PORT | --pty PATH] [--clock-offset S] [--rtc-start T] [--sync HOST:PORT]\n" % msg)
    sys.exit(2)


def parse(argv):
    if not argv:
        usage("missing CONFIG.json")
    opts = {"config": argv[0], "tcp": None, "pty": None, "offset": 0, "sync": None, "rtc_start": None}
    i = 1
    while i < len(argv):
        a = argv[i]
        if i + 1 >= len(argv):
            usage("option %s needs a value" % a)
        v = argv[i + 1]
        if a in ("--tcp", "--sync"):
            opts[a[2:]] = _address(a, v)
        elif a == "--pty":
            opts["pty"] = v
        elif a in ("--clock-offset", "--rtc-start"):
            try:
                opts["offset" if a == "--clock-offset" else "rtc_start"] = int(v)
            except ValueError:
                usage("%s needs whole seconds, got %r" % (a, v))
        else:
            usage("unknown option " + a)
        i += 2
    return opts


def _address(opt, v):
    host, _, port = v.rpartition(":")
    try:
        port = int(port)
    except ValueError:
        port = -1
    if not 0 < port < 65536:
        usage("%s needs HOST:PORT with a port 1..65535, got %r" % (opt, v))
    return host or "127.0.0.1", port
