"""Scanner framing: byte chunks from a stream in, whole lines out.

QR scanner modules end a code with CR, LF or CR LF; chunks arrive split anywhere. Lines are
gathered in one preallocated buffer; a line that outgrows it is dropped up to its terminator and
reported once as LINE_TOO_LONG, so endless noise with no terminator costs no memory.
"""
from offgate import reasons as R

CR = 13
LF = 10


class LineAssembler:
    def __init__(self, max_line=1024):
        self.buf = bytearray(max_line)
        self.n = 0
        self.overflow = False
        self._after_cr = False

    def feed(self, chunk):
        """Yield each complete line (bytes) or R.LINE_TOO_LONG, in order."""
        buf = self.buf
        cap = len(buf)
        for b in chunk:
            if b == LF and self._after_cr:
                self._after_cr = False  # CR LF is one terminator
                continue
            self._after_cr = b == CR
            if b == CR or b == LF:
                if self.overflow:
                    self.overflow = False
                    yield R.LINE_TOO_LONG
                else:
                    yield bytes(buf[:self.n])
                self.n = 0
                continue
            if self.n < cap:
                buf[self.n] = b
                self.n += 1
            else:
                self.overflow = True

    def pending(self):
        """Bytes of an unterminated line held so far (a scanner cut mid-code)."""
        return self.n
