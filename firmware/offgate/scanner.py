"""Scanner framing: byte chunks from a stream in, whole lines out.

QR scanner modules end a code with CR, LF or CR LF, and some (misconfigured, or by design) with
CR CR, LF CR or CR LF CR LF: any run of CR/LF bytes ends one line, and an empty line is never a
scan (it is not reported at all), so one code gives exactly one decision. Chunks arrive split
anywhere. Lines are gathered in one preallocated buffer; a line that outgrows it is dropped up to
its terminator and reported once as LINE_TOO_LONG, so endless noise with no terminator costs no
memory. An unterminated fragment (noise, a half read) is dropped by the reader after an idle gap
(`drop_partial`, Gate.run) and when a new connection starts, so it is never glued onto the next
rider's code. This is the one place the gate's line rules live: every scanner stream (stdin, TCP,
pty, the ESP32 GM65 adapter) goes through it.
"""
from offgate import reasons as R

CR = 13
LF = 10


class LineAssembler:
    def __init__(self, max_line=1024):
        self.buf = bytearray(max_line)
        self.n = 0
        self.overflow = False
        self.dropped = 0  # partial lines dropped (idle gap, new connection)

    def feed(self, chunk):
        """Yield each complete line (bytes) or R.LINE_TOO_LONG, in order."""
        buf = self.buf
        cap = len(buf)
        for b in chunk:
            if b == CR or b == LF:
                if self.overflow:
                    self.overflow = False
                    yield R.LINE_TOO_LONG
                elif self.n:
                    yield bytes(buf[:self.n])
                # else: part of a run of terminators, or a stray one: not a line
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

    def drop_partial(self):
        """Forget an unterminated line (after an idle gap, or a new connection). True if there
        was one."""
        had = self.n > 0 or self.overflow
        self.n = 0
        self.overflow = False
        if had:
            self.dropped += 1
        return had
