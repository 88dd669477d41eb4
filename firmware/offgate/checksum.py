"""CRC-32 for records on flash: binascii.crc32 where the port has it, a table-free fallback elsewhere."""
try:
    from binascii import crc32
except ImportError:  # ports built without it
    crc32 = None

if crc32 is None:
    def crc32(data, crc=0):
        crc ^= 0xFFFFFFFF
        for b in data:
            crc ^= b
            for _ in range(8):
                crc = (crc >> 1) ^ (0xEDB88320 & -(crc & 1))
        return crc ^ 0xFFFFFFFF
