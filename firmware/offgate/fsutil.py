"""Files on the gate's flash: atomic replacement and free space (one home for both)."""
import os


def _sync_fs():
    try:
        os.sync()
    except (AttributeError, OSError):
        pass


def atomic_write(path, data):
    """Write `data` to `path` through `path.tmp` + rename: readers see the old or the new file whole."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        try:
            f.flush()
        except (AttributeError, OSError):
            pass
    replace(tmp, path)


def replace(tmp, path):
    """Put the finished, closed file `tmp` in place of `path` (rename: atomic on littlefs), for
    files written in pieces (a deny list merged from a delta) as for atomic_write."""
    _sync_fs()
    try:
        os.rename(tmp, path)
    except OSError:  # a VFS that will not rename onto an existing file
        try:
            os.remove(path)
        except OSError:
            pass
        os.rename(tmp, path)
    _sync_fs()


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
