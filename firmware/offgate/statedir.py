"""The gate's state directory (`state_dir` in gate.json): every state-file name, and the one
policy for replacing, reading and removing a file there (docs/architecture.md "Files on the gate").

Atomic replacement: the new bytes go to `<path>.tmp`, are flushed and closed (littlefs commits
file data on sync/close), then renamed over `<path>` (rename is atomic on littlefs): a reader,
or a boot after a power cut, sees the old file or the new one whole, never a mix. A `.tmp` left by
a cut is removed at boot (gateboot). Streamed writes (a compaction, an upload in chunks) write the
temporary file themselves and finish with replace().
"""
import os

# file names in state_dir (the host's side spells them once too: offgate_host)
CONFIG = "gate.json"
TRUST = "trust.cbor"
DENY = "deny.bin"
TABLES = "issuer_tables.bin"
REPLAY = "replay.log"
OPLOG = "oplog"            # a directory: <segno>.seg, ack, hwm (offgate.log.oplog)
DEVICE_KEY = "device.key"
ROOT_PUB = "root.pub"
BATCH_PUB = "batch.pub"
SYNC_STATE = "sync.json"
CLOCK_STATE = "clock.json"
TMP = ".tmp"               # suffix of a replacement not yet renamed over its file
DENY_NEW = DENY + ".new" + TMP  # a deny list being merged from a delta (policy/denydelta.py)


def _sync():
    try:
        os.sync()
    except (AttributeError, OSError):  # not on every port
        pass


def replace(tmp, path):
    """Rename the finished temporary file `tmp` over `path` (atomic on littlefs), with os.sync()
    before and after where the port has it. Raises OSError."""
    _sync()
    try:
        os.rename(tmp, path)
    except OSError:  # a VFS that will not rename onto an existing file
        try:
            os.remove(path)
        except OSError:
            pass
        os.rename(tmp, path)
    _sync()


def atomic_write(path, data):
    """Write `data` (bytes) to `path` through `path.tmp` + replace(): readers see the old or the
    new file whole. Raises OSError (e.g. 28, no space left: the old file stays)."""
    tmp = path + TMP
    with open(tmp, "wb") as f:
        f.write(data)
        try:
            f.flush()
        except (AttributeError, OSError):
            pass
    replace(tmp, path)


def read(path):
    """The whole file at `path` as bytes, or None if it cannot be read."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def remove(path):
    """Remove `path`: True if it was there and is gone, False otherwise. Never raises OSError."""
    try:
        os.remove(path)
        return True
    except OSError:
        return False


def fs_free(path):
    """Free bytes on the filesystem holding `path` (statvfs: f_bavail * f_bsize), or None.
    littlefs on MicroPython can report a negative count as an unsigned one (2^32 - 3 blocks on a
    full filesystem): a count above the total is read as 0."""
    try:
        st = os.statvfs(path)
    except Exception:
        return None
    bsize, blocks, bavail = st[0], st[2], st[4]
    if bavail > blocks or bavail < 0:
        bavail = 0
    return bavail * bsize
