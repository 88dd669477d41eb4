"""The files a gate holds, in one table: what `offgate gate init` (simulated gate), `offgate
deploy` / `make deploy` (a board over USB), `offgate provision` and sync write, and where each
comes from. Every writer takes its file names from here (tests/host/test_deploy.py compares what
each one writes, file by file).

Files in the gate's state directory (the simulator's gate dir; `/state` on a board):

    name                 from                         written by
    trust.cbor           BackOffice.trust_bytes()     gate init, deploy; sync (op trust)
    issuer_tables.bin    tables.issuer_tables_from_trust(trust)   gate init, deploy; sync (tables)
    deny.bin             BackOffice.deny_bytes()      gate init, deploy; sync (deny list, or a delta merged into it)
    root.pub             BackOffice.root_pub()        gate init, deploy (verifies trust, deny, time, operators)
    batch.pub            the batch key's public key   gate init, deploy (batches are sealed to it)
    device.key           made on the gate             provision (never leaves the gate)
    sync.json            the gate                     sync (time set, drift)

gate.json (the config) sits in the gate dir on the simulator and at `/` on a board; the operation
log and replay file are the gate's own (state_dir / log dir), made at first boot.
"""
from pathlib import Path

from ..wire import keys
from .tables import ISSUER_TABLES, issuer_tables_from_trust

TRUST = "trust.cbor"
DENY = "deny.bin"
ROOT_PUB = "root.pub"
BATCH_PUB = "batch.pub"
DEVICE_KEY = "device.key"
SYNC_STATE = "sync.json"
CONFIG = "gate.json"

# what the back office gives a gate, in the order deploy copies them
FROM_BACKOFFICE = (TRUST, ISSUER_TABLES, DENY, ROOT_PUB, BATCH_PUB)
MADE_ON_GATE = (DEVICE_KEY,)
WRITTEN_BY_SYNC = (TRUST, ISSUER_TABLES, DENY, SYNC_STATE)


def backoffice_files(bo, trust=None, deny=None, now=None):
    """{name: bytes} of every file the back office gives a gate (FROM_BACKOFFICE). trust / deny:
    bytes to use instead of the back office's current lists."""
    trust = bo.trust_bytes(now) if trust is None else trust
    return {
        TRUST: trust,
        ISSUER_TABLES: issuer_tables_from_trust(trust),
        DENY: bo.deny_bytes() if deny is None else deny,
        ROOT_PUB: bo.root_pub(),
        BATCH_PUB: keys.pub_bytes(bo.batch_key()),
    }


def stage(bo, stage_dir, trust=None, deny=None, now=None):
    """Write backoffice_files() into stage_dir; returns {name: Path} (deploy copies these).
    trust / deny: paths of files to use instead of the back office's current lists."""
    d = Path(stage_dir)
    d.mkdir(parents=True, exist_ok=True)
    files = backoffice_files(bo, Path(trust).read_bytes() if trust else None,
                             Path(deny).read_bytes() if deny else None, now)
    out = {}
    for name in FROM_BACKOFFICE:
        p = d / name
        p.write_bytes(files[name])
        out[name] = p
    return out
