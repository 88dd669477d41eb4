"""The gate's report stream on the device: JSON lines into a small rotating log file.

The gate writes one line per scan and calls flush() after each; to spare the flash, lines are
kept in RAM and written when 512 bytes have gathered or when `sync()` runs (a periodic task,
and before a reset). The durable record of decisions is the replay state and the operation log,
not this file: it is for diagnosis, and losing its last seconds in a power cut is acceptable.
`echo` also prints each line on the console (development only: in production the console carries
the sync protocol).
"""
import os

FLUSH_AT = 512


class LogOut:
    def __init__(self, directory, max_kb=32, files=2, echo=False, console=None):
        self.dir = directory
        self.max_bytes = max_kb * 1024
        self.files = files
        self.echo = echo
        self.console = console
        self.buf = []
        self.buffered = 0
        self.lines = 0
        self.errors = 0
        try:
            os.mkdir(directory)
        except OSError:
            pass

    def path(self, i=0):
        return self.dir + "/gate.log" if i == 0 else "%s/gate.%d.log" % (self.dir, i)

    def write(self, text):
        self.lines += 1
        self.buf.append(text)
        self.buffered += len(text)
        if self.echo:
            try:
                (self.console or _stdout()).write(text)
            except Exception:
                pass

    def flush(self):
        if self.buffered >= FLUSH_AT:
            self.sync()

    def sync(self):
        if not self.buf:
            return
        try:
            try:
                size = os.stat(self.path())[6]
            except OSError:
                size = 0
            if size + self.buffered > self.max_bytes:
                self._rotate()
            with open(self.path(), "a") as f:
                for t in self.buf:
                    f.write(t)
        except Exception:
            self.errors += 1
        self.buf = []
        self.buffered = 0

    def _rotate(self):
        for i in range(self.files - 1, 0, -1):
            try:
                os.rename(self.path(i - 1), self.path(i))  # littlefs: rename replaces atomically
            except OSError:
                pass
        if self.files == 1:
            try:
                os.remove(self.path())
            except OSError:
                pass


def _stdout():
    import sys
    return sys.stdout
