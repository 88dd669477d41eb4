"""Byte pipes to a gate for the sync client: TCP (the simulator, a gate on a network) and a serial
line (an ESP32 over USB). Each has open(), send(bytes), recv() -> bytes and close(); a broken link
raises LinkError."""
import socket
import time

from .frames import LinkError, ReplyTimeout

class TcpTransport:
    # bytes before a gate's first frame that may be something else: none on TCP (a gate's first
    # bytes are its frame), so anything else is not a gate (SyncClient says so at once)
    noise_allowance = 0

    def __init__(self, host, port, timeout=30.0):
        self.addr = (host, int(port))
        self.timeout = timeout
        self.sock = None

    def open(self):
        try:
            self.sock = socket.create_connection(self.addr, timeout=self.timeout)
        except OSError as e:
            raise LinkError("cannot connect to %s:%d: %s" % (self.addr[0], self.addr[1], e)) from None
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, data):
        try:
            self.sock.sendall(data)
        except OSError as e:
            raise LinkError("send failed: %s" % e) from None

    def recv(self):
        try:
            d = self.sock.recv(65536)
        except socket.timeout:
            raise ReplyTimeout("gate did not answer within %.0f s" % self.timeout) from None
        except OSError as e:
            raise LinkError("receive failed: %s" % e) from None
        if not d:
            raise LinkError("gate closed the connection")
        return d

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def __str__(self):
        return "tcp:%s:%d" % self.addr


class SerialTransport:
    """USB serial to a device running the sync server on its REPL-free port (pyserial)."""
    # a board reset by opening the port prints its boot messages first (ROM loader, MicroPython)
    noise_allowance = 4096

    def __init__(self, port, baudrate=115200, timeout=30.0):
        self.port = port
        self.baudrate = baudrate
        self.timeout = timeout
        self.ser = None

    def open(self):
        import serial
        try:
            self.ser = serial.Serial(self.port, self.baudrate, timeout=0.2)
        except Exception as e:
            raise LinkError("cannot open %s: %s" % (self.port, e)) from None
        self.ser.reset_input_buffer()

    def send(self, data):
        try:
            self.ser.write(data)
            self.ser.flush()
        except Exception as e:
            raise LinkError("serial write failed: %s" % e) from None

    def recv(self):
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            try:
                d = self.ser.read(max(1, self.ser.in_waiting or 1))
            except Exception as e:
                raise LinkError("serial read failed: %s" % e) from None
            if d:
                return d
        raise ReplyTimeout("gate did not answer within %.0f s" % self.timeout)

    def close(self):
        if self.ser is not None:
            self.ser.close()
            self.ser = None

    def __str__(self):
        return "serial:%s" % self.port


def parse_target(target: str, timeout=30.0):
    """`tcp:HOST:PORT` or `serial:/dev/ttyUSB0[@BAUD]` -> transport."""
    kind, _, rest = target.partition(":")
    if kind == "tcp":
        host, _, port = rest.rpartition(":")
        if not (port.isdigit() and 1 <= int(port) <= 65535):
            raise ValueError("bad target %r: expected tcp:HOST:PORT, PORT 1..65535" % target)
        return TcpTransport(host or "127.0.0.1", int(port), timeout)
    if kind == "serial" and rest:
        dev, _, baud = rest.partition("@")
        if not dev or (baud and not (baud.isdigit() and 0 < int(baud) <= 10000000)):
            raise ValueError("bad target %r: expected serial:/dev/ttyUSB0[@BAUD], BAUD a whole number of "
                             "bits per second" % target)
        return SerialTransport(dev, int(baud) if baud else 115200, timeout)
    raise ValueError("bad target %r: expected tcp:HOST:PORT or serial:/dev/ttyUSB0" % target)
