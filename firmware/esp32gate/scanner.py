"""GM65-class QR scanner on a machine.UART, as a stream the gate reads with `await read(n)`.

What comes out of `read(n)` is the scanner's data stream, cleaned up:
- acknowledgement frames (`02 00 00 L data[L] c1 c2`, e.g. `02 00 00 01 00 33 31`) that the module
  sends in the data stream after a command are removed (and counted; the last one is kept);
- the same code reported twice within `debounce_ms` (a continuous-mode module re-reports a code
  while it stays in view) is dropped; the window slides while the code keeps being reported;
- everything else, noise included, passes through: the gate's LineAssembler (offgate.scanner, the
  one home of the line rules: a run of CR/LF is one terminator, an empty line is no scan, a
  partial line is dropped after an idle gap) turns an endless or binary line (wrong baud, noise
  after a baud change) into LINE_TOO_LONG / NOT_TEXT.

Memory: one hold buffer of `max_line` bytes (a line is held until its terminator so a duplicate can
be dropped), one output buffer, a 16-byte frame buffer; a line longer than the hold buffer is
passed through unheld (it is LINE_TOO_LONG at the gate anyway). The UART is polled every
`poll_ms` (`any()`), which works the same on the device and on the fake UART in the tests.

Module configuration at boot (optional): command frames `7E 00 type len addrH addrL data AB CD`
(`AB CD` = no checksum): baud probing, then registers read and written only when they differ
(the module's settings live in its flash; rewriting them every boot would wear it), then saved.
"""
import time

import asyncio  # MicroPython >= 1.23 (what mpy v6 needs) has it under this name

from offgate.checksum import crc32

CHUNK = 128
CR = 13
LF = 10
STX = 2

READ = 0x07
WRITE = 0x08
SAVE = 0x09
BAUD_REG = 0x002A  # 2 bytes, little-endian divisor code
BAUD_CODES = {1200: 0x09C4, 4800: 0x0271, 9600: 0x0139, 14400: 0x00D0, 19200: 0x009C, 38400: 0x004E,
              57600: 0x0034, 115200: 0x001A}
PROBE_REG = 0x0000
ACK_MAX_DATA = 8


def command_frame(typ, addr, data):
    """A GM65 command frame (no checksum)."""
    return bytes([0x7E, 0x00, typ, len(data), (addr >> 8) & 255, addr & 255]) + bytes(data) + b"\xab\xcd"


def read_frame(addr, count=1):
    return command_frame(READ, addr, bytes([count]))


def write_frame(addr, data):
    return command_frame(WRITE, addr, data)


SAVE_FRAME = command_frame(SAVE, 0x0000, b"\x00")


def baud_frame(baud):
    code = BAUD_CODES[baud]
    return write_frame(BAUD_REG, bytes([code & 255, code >> 8]))


class GM65:
    def __init__(self, uart, max_line=1024, debounce_ms=1500, poll_ms=10, ticks_ms=None, ticks_diff=None):
        self.uart = uart
        self.debounce_ms = debounce_ms
        self.poll_ms = poll_ms
        self._ticks = ticks_ms or time.ticks_ms
        self._diff = ticks_diff or time.ticks_diff
        self._hold = bytearray(max_line)
        self._out = bytearray(max_line + CHUNK + 64)
        self._fb = bytearray(16)
        self._reset_stream()
        self._last_h = None
        self._last_n = -1
        self._last_t = 0
        # counters (status / tests)
        self.acks = 0
        self.last_ack = None
        self.debounced = 0
        self.lines = 0
        self.dropped = 0
        self.polls = 0
        self.last_poll = self._ticks()
        self.baud = None

    def _reset_stream(self):
        self._n = 0          # bytes held in the current line
        self._pass = False   # passing an over-long line through unheld
        self._after_cr = False
        self._fi = 0         # bytes held of a possible ack frame
        self._olen = 0
        self._opos = 0

    # -- output buffer ---------------------------------------------------------------------
    def _emit(self, data):
        k = len(data)
        room = len(self._out) - self._olen
        if k > room:  # cannot happen with the sizes above; never raise from the data path
            self.dropped += k - room
            k = room
        self._out[self._olen:self._olen + k] = data[:k] if k < len(data) else data
        self._olen += k

    def _emit_byte(self, b):
        if self._olen < len(self._out):
            self._out[self._olen] = b
            self._olen += 1
        else:
            self.dropped += 1

    # -- byte state machine ----------------------------------------------------------------
    def _ingest(self, chunk):
        fb = self._fb
        for b in chunk:
            if self._fi:
                self._frame_byte(b)
            elif b == STX:
                fb[0] = b
                self._fi = 1
            else:
                self._data(b)

    def _frame_byte(self, b):
        fb = self._fb
        fi = self._fi
        fb[fi] = b
        fi += 1
        self._fi = fi
        if fi <= 3:
            if b != 0:
                self._abort_frame()
            return
        if fi == 4:
            if b < 1 or b > ACK_MAX_DATA:
                self._abort_frame()
            return
        if fi == 4 + fb[3] + 2:
            self.acks += 1
            self.last_ack = bytes(fb[4:4 + fb[3]])
            self._fi = 0

    def _abort_frame(self):
        """Not an ack frame after all: the held bytes are data (noise, as it turns out); the byte
        that broke the pattern is looked at again, since it may start a frame itself."""
        fi = self._fi
        self._fi = 0
        last = self._fb[fi - 1]
        for i in range(fi - 1):
            self._data(self._fb[i])
        if last == STX:
            self._fb[0] = last
            self._fi = 1
        else:
            self._data(last)

    def _data(self, b):
        if self._pass:
            self._emit_byte(b)
            if b == CR or b == LF:
                self._pass = False
                self._after_cr = b == CR
            return
        if b == LF and self._after_cr:
            self._after_cr = False  # CR LF is one terminator
            return
        self._after_cr = b == CR
        if b == CR or b == LF:
            self._line_end()
            return
        n = self._n
        if n < len(self._hold):
            self._hold[n] = b
            self._n = n + 1
        else:  # longer than any code: stop holding, let the gate see it (LINE_TOO_LONG)
            self._emit(memoryview(self._hold)[:n])
            self._emit_byte(b)
            self._n = 0
            self._pass = True

    def _line_end(self):
        n = self._n
        self._n = 0
        if n == 0:
            return  # a run of CR/LF: one terminator; an empty line is never a scan (offgate.scanner)
        line = memoryview(self._hold)[:n]
        h = crc32(line)
        now = self._ticks()
        if (self.debounce_ms and h == self._last_h and n == self._last_n
                and self._diff(now, self._last_t) < self.debounce_ms):
            self._last_t = now  # still in view: the window slides
            self.debounced += 1
            return
        self._last_h = h
        self._last_n = n
        self._last_t = now
        self.lines += 1
        self._emit(line)
        self._emit_byte(CR)

    # -- stream interface --------------------------------------------------------------------
    def _pump(self):
        """Move what the UART has into the state machine. True if bytes were read."""
        k = self.uart.any()
        if not k:
            return False
        chunk = self.uart.read(min(k, CHUNK))
        if not chunk:
            return False
        self._ingest(chunk)
        return True

    async def read(self, n):
        """Up to n bytes of cleaned scanner data; waits until there are some (never returns b"")."""
        while True:
            if self._opos < self._olen:
                k = min(n, self._olen - self._opos)
                r = bytes(self._out[self._opos:self._opos + k])
                self._opos += k
                if self._opos == self._olen:
                    self._opos = self._olen = 0
                return r
            self.polls += 1
            self.last_poll = self._ticks()
            if self._olen == 0 and self._pump():
                continue
            await asyncio.sleep_ms(self.poll_ms)

    def drain(self):
        """Discard whatever the UART holds (after a baud change it is noise)."""
        while self.uart.any():
            if not self.uart.read(CHUNK):
                break

    # -- module commands ---------------------------------------------------------------------
    async def command(self, frame, timeout_ms=300):
        """Send a command frame; return the data of its ack frame, or None on timeout."""
        before = self.acks
        self.uart.write(frame)
        t0 = self._ticks()
        while True:
            self._pump()
            if self.acks != before:
                return self.last_ack
            if self._diff(self._ticks(), t0) >= timeout_ms:
                return None
            await asyncio.sleep_ms(self.poll_ms)

    async def read_register(self, addr, timeout_ms=300):
        ack = await self.command(read_frame(addr), timeout_ms)
        return ack[0] if ack else None

    async def probe(self, target, rates, timeout_ms=300):
        """Find the module's baud rate (it persists across power cycles) and move it to `target`.
        Returns the rate it answered at, or None if it never answered (scanner missing or dead:
        the UART stays at `target` and the gate keeps listening)."""
        order = [target] + [r for r in rates if r != target]
        found = None
        for rate in order:
            self.uart.init(baudrate=rate)
            self.drain()
            if await self.command(read_frame(PROBE_REG), timeout_ms) is not None:
                found = rate
                break
        if found is not None and found != target:
            await self.command(baud_frame(target), timeout_ms)  # acknowledged at the old rate
            self.uart.init(baudrate=target)
            self.drain()
            await self.command(SAVE_FRAME, timeout_ms)
        elif found is None:
            self.uart.init(baudrate=target)
        self.baud = target if found is not None else None
        return found

    async def configure(self, registers, timeout_ms=300):
        """Write each (address, value) that differs from the module's; save if any changed.
        Returns the list of addresses written, or None if the module did not answer."""
        written = []
        for addr, val in registers:
            cur = await self.read_register(addr, timeout_ms)
            if cur is None:
                return None
            if cur != val:
                if await self.command(write_frame(addr, bytes([val])), timeout_ms) is None:
                    return None
                written.append(addr)
        if written:
            await self.command(SAVE_FRAME, timeout_ms)
        return written

    async def setup(self, scfg):
        """Boot-time module setup from the board config's scanner section; returns a report dict."""
        rep = {"event": "scanner", "baud": scfg.get("baud", 9600)}
        rates = scfg.get("probe") or []
        if rates:
            found = await self.probe(rep["baud"], rates)
            rep["answered_at"] = found
        if scfg.get("configure") and scfg.get("registers"):
            rep["written"] = await self.configure([tuple(r) for r in scfg["registers"]])
        self.drain()
        self._reset_stream()  # bytes seen during setup (probing noise) are not scans
        rep["acks"] = self.acks
        return rep


def open_uart(scfg, uart_cls=None):
    """The scanner UART from the board config: rx buffer sized for the biggest code."""
    if uart_cls is None:
        from machine import UART as uart_cls
    return uart_cls(scfg["uart"], baudrate=scfg.get("baud", 9600), tx=scfg["tx"], rx=scfg["rx"],
                    rxbuf=scfg["rxbuf"], timeout=0, timeout_char=0)

