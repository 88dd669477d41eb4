# Runs the ESP32 sync link (esp32gate.synclink) on the unix port with the console = this
# process's stdin/stdout, which the test connects to a pty: the host syncs over pyserial exactly as
# it would over a USB serial port. Usage: micropython synclink_driver.py GATE.json
import sys
import asyncio

from offgate import config, gate
from offgate.clock import Clock
from esp32gate import synclink


class NoRelay:
    def open(self, ms):
        pass

    def deny(self, reason):
        pass


cfg = config.load(sys.argv[1])
g = gate.build(cfg, NoRelay(), open(cfg["state_dir"] + "/reports.jsonl", "a"), Clock())
asyncio.run(synclink.serve(g, synclink.ConsoleIO(), log=sys.stderr))
