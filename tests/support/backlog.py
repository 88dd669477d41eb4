"""A simulated gate holding a large unsynced backlog, for the sync memory tests and bench: the
operation log is prefilled by the firmware's own OpLog (run under CPython, so the chain and layout
are the gate's) in the gate's state directory before the simulator boots."""
import os
import subprocess
import sys
import time
from pathlib import Path

from offgate_host.device.simgate import SimGate, firmware_dir, micropython_env, repo_root, sim_command, write_gate_dir
from offgate_host.sync.transports import TcpTransport
from offgate_host.device.provision import provision_gate_dir

from mpbridge import free_port


def prefill(state_dir, n, cfg=None, now=None):
    """Append n records (80 % OPEN over 500 credentials, 20 % DENY) to the gate's log, one second
    apart and ending now. Returns the log's head seq."""
    fw = str(firmware_dir())
    if fw not in sys.path:
        sys.path.insert(0, fw)
    from offgate.config import SCHEMA  # the defaults the gate itself uses
    from offgate.log.oplog import OpLog
    cfg = cfg or {}
    seg = cfg.get("log_segment_bytes", SCHEMA["log_segment_bytes"][0])
    nseg = cfg.get("log_max_segments", SCHEMA["log_max_segments"][0])
    log = OpLog(str(Path(state_dir) / "oplog"), seg, nseg)
    log.recover()
    now = int(time.time()) if now is None else now
    t0 = now - n - 60
    for i in range(n):
        if i % 5:
            log.append(t0 + i, (i % 500).to_bytes(8, "big"), i // 500 + 1, "OPEN", 0)
        else:
            log.append(t0 + i, None, 0, "DENY", 14)
    return log.head()[0]


class BacklogGate(SimGate):
    """A simulated gate (interpreter `mp`, heap `heap`) with its sync link on a loopback port."""

    def __init__(self, config_path, heap, mp=None, romfs=None):
        super().__init__(config_path, heap=heap, mp=mp)
        self.port = free_port()
        self.romfs = romfs  # a ROMFS image of the firmware (the 32-bit build's MICROPY_ROMFS), or None

    def start(self):
        cmd = sim_command(self.config_path, self.heap, "--sync", "127.0.0.1:%d" % self.port, mp=self.mp)
        self._actions = open(self.actions_path, "a")
        env = micropython_env(mp=self.mp)
        if self.romfs:
            env["MICROPY_ROMFS"] = str(self.romfs)
            env["MICROPYPATH"] = ".frozen:/rom"  # asyncio is frozen into the build
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._actions,
                                     env=env, cwd=str(repo_root()))
        self.boot = self._read()
        assert self.boot.get("event") == "boot", self.boot
        listening = self._read()
        assert listening.get("event") == "sync_listening", listening
        return self

    def transport(self):
        return TcpTransport("127.0.0.1", self.port, timeout=120)


def backlog_gate_dir(path, bo, n, gate_id=7, **settings):
    """A provisioned gate directory whose log holds n unsynced records. Returns the config path."""
    cfg = write_gate_dir(path, gate_id=gate_id, zone=1, trust=bo.trust_bytes(), deny=bo.deny_bytes(), **settings)
    provision_gate_dir(cfg.parent, bo, gate_id=gate_id)
    prefill(cfg.parent, n, settings)
    return cfg


# The sync link loads its code for a session only, but the unix port keeps module bytecode in the
# heap (a device runs it frozen from flash): SYNC_HEAP is what this simulation needs for it.
SYNC_HEAP = os.environ.get("OFFGATE_SYNC_HEAP", "208k")  # 64-bit port, .mpy: pulls are sized to the free heap (#12); a trust-list push with comb tables then status needs ~200k here
class SyncSimGate(BacklogGate):
    """A simulated gate with its sync link on loopback TCP port `port` (BacklogGate starts it)."""

    def __init__(self, config_path, port, heap=SYNC_HEAP):
        super().__init__(config_path, heap)
        self.port = port
