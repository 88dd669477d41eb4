"""A fake GM65 scanner module on the far end of a fake UART: answers command frames with ack
frames (`02 00 00 01 xx 33 31`) only when the UART runs at the module's baud rate (else noise),
keeps registers, switches rate when the baud register is written, counts flash saves."""


class FakeGM65:
    def __init__(self, uart, baud=9600, registers=None):
        self.uart = uart
        self.baud = baud
        self.regs = dict(registers or {})
        self.saves = 0
        self.writes = []
        uart.responder = self.on_write

    def ack(self, val=0):
        return bytes([0x02, 0x00, 0x00, 0x01, val, 0x33, 0x31])

    def on_write(self, uart, data):
        if uart.baudrate != self.baud:
            uart.feed(b"\xf8\x80\x00\xfe")  # the module hears garbage, the gate sees noise
            return
        if len(data) < 9 or data[0] != 0x7E or data[1] != 0 or data[-2:] != b"\xab\xcd":
            return
        typ, n = data[2], data[3]
        addr = (data[4] << 8) | data[5]
        payload = data[6:6 + n]
        if typ == 0x07:
            uart.feed(self.ack(self.regs.get(addr, 0)))
        elif typ == 0x08:
            for i, b in enumerate(payload):
                self.regs[addr + i] = b
            self.writes.append((addr, bytes(payload)))
            uart.feed(self.ack(0))
            if addr == 0x2A and len(payload) == 2:
                code = payload[0] | (payload[1] << 8)
                rates = {0x0139: 9600, 0x0034: 57600, 0x001A: 115200, 0x009C: 19200, 0x004E: 38400, 0x00D0: 14400}
                self.baud = rates.get(code, self.baud)
        elif typ == 0x09:
            self.saves += 1
            uart.feed(self.ack(0))
