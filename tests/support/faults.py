"""Fault injection for the sync tests: a transport that cuts the link after N frames."""
from offgate_host.sync.frames import Deframer, LinkError

class DropAfter:
    """Wraps a transport and cuts the link after `frames` frames have crossed it (either way):
    the test hook for "interrupted at any frame"."""

    def __init__(self, inner, frames):
        self.inner = inner
        self.limit = frames
        self.count = 0
        self._d = Deframer()

    def open(self):
        self.inner.open()

    def _tick(self, n=1):
        self.count += n
        if self.count >= self.limit:
            self.inner.close()
            raise LinkError("link dropped on purpose after %d frames" % self.count)

    def send(self, data):
        if self.count >= self.limit:
            raise LinkError("link dropped")
        self.inner.send(data)
        self._tick()

    def recv(self):
        if self.count >= self.limit:
            raise LinkError("link dropped")
        d = self.inner.recv()
        n = len(self._d.feed(d))
        if n:
            self._tick(n)
        return d

    def close(self):
        self.inner.close()

    def __str__(self):
        return str(self.inner)
