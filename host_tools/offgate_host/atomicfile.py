"""The host's one policy for replacing a file: write a temporary file beside it, flush and fsync,
then rename it over the target (atomic on POSIX file systems). A reader, or a crash at any point,
sees the old file or the new one, never a part of either. The gate has its own (firmware
offgate/statedir.py: littlefs)."""
import contextlib
import os
from pathlib import Path


@contextlib.contextmanager
def replacing(path, suffix=".tmp", mode=None):
    """Yield a temporary path beside `path` to write; on leaving without an exception it is fsynced
    and renamed over `path`, else removed. `mode` (e.g. 0o600): the file's permissions, set
    before the rename. The directory must exist (callers name their own error for a typo)."""
    path = Path(path)
    tmp = path.with_name(path.name + suffix)
    try:
        yield tmp
        if mode is not None:
            os.chmod(tmp, mode)
        fd = os.open(str(tmp), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write(path, data: bytes, mode=None) -> Path:
    """Replace `path` with `data` (bytes) atomically; `mode` as in replacing(). With a mode the
    temporary file is created with it, so a secret is never briefly readable by others.
    Returns the path."""
    path = Path(path)
    with replacing(path, mode=mode) as tmp:
        fd = os.open(str(tmp), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666 if mode is None else mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    return path
