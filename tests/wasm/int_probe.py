# 32-bit vs 64-bit differential probe: firmware behaviour at small-int / int32 / uint32 / int64
# boundaries (2**30 is where a 32-bit port's small ints end, 2**31 and 2**32 where 32-bit C ints
# end). Runs unchanged on the 64-bit unix port and the 32-bit wasm port; tests/wasm/test_wasm32.py
# requires their outputs to match line for line. Output: "<label> = <value>" lines, then "DONE <n>".
# Only deterministic values are printed (no dict/set iteration order: it follows hashes).
import os
import random
from binascii import hexlify, unhexlify

from offgate.codec import base45, cbor
from offgate import checksum, clock
from offgate.policy import denylist, replay

_n = [0]
_d = "/tmp/offgate-intprobe-%08x" % random.getrandbits(32)  # scratch files; removed at the end
os.mkdir(_d)


def out(label, thunk):
    try:
        v = thunk()
        if isinstance(v, (bytes, bytearray)):
            v = "b:" + hexlify(bytes(v)).decode()
        else:
            v = "%s:%r" % (type(v).__name__, v)
    except Exception as e:
        v = "raise %s: %s" % (type(e).__name__, e)
    print(label, "=", v.replace(_d, "<scratch>"))
    _n[0] += 1


BOUNDS = []
for b in (7, 8, 15, 16, 23, 24, 29, 30, 31, 32, 33, 53, 62, 63, 64):
    for d in (-1, 0, 1):
        BOUNDS.append((1 << b) + d)
INTS = sorted(set(BOUNDS + [-x for x in BOUNDS] + [-(1 << 64), -(1 << 64) - 1, (1 << 64) + 1, 0]))

# -- CBOR integers: encode, decode, round trip, and the value's type after decoding
for v in INTS:
    out("cbor.dumps(%d)" % v, lambda: cbor.dumps(v))
    out("cbor.rt(%d)" % v, lambda: (lambda d: (d == v, d - v, type(d).__name__))(cbor.loads(cbor.dumps(v))))
# heads with explicit argument widths (non-shortest ones must be rejected, the others decode)
for h in ("1a3fffffff", "1a40000000", "1a7fffffff", "1a80000000", "1affffffff", "1b0000000100000000",
          "1b000000007fffffff", "1b7fffffffffffffff", "1b8000000000000000", "1bffffffffffffffff",
          "3a3fffffff", "3a40000000", "3a7fffffff", "3a80000000", "3affffffff", "3b7fffffffffffffff",
          "3bffffffffffffffff", "1900ff", "1a0000ffff", "1b00000000ffffffff",
          # lengths/counts past int32 and past the input: must be clean CBOR errors
          "5a80000000", "5affffffff", "5b8000000000000000", "7a7fffffff", "9a40000000", "9a80000000",
          "9bffffffffffffffff", "ba40000000", "ba80000000", "bbffffffffffffffff",
          "da7fffffff00", "da8000000000", "dbffffffffffffffff00",
          "a21a800000000100", "a21a80000000011a7fffffff00", "a23a8000000001200a", "a2201a800000000000"):
    out("cbor.loads(%s)" % h, lambda: cbor.dumps(cbor.loads(unhexlify(h))))
    out("cbor.loads-tag(%s)" % h, lambda: cbor.dumps(cbor.loads(unhexlify(h), tags=(0x7fffffff, 0x80000000))))
# map keys at the boundaries: canonical order of the re-encoding
out("cbor.mapkeys", lambda: cbor.dumps({(1 << 31): 1, (1 << 30): 2, -(1 << 31): 3, -(1 << 30) - 1: 4, 1: 5, -1: 6,
                                        (1 << 32) - 1: 7, (1 << 63): 8}))
out("cbor.loads(mapkeys)", lambda: sorted(cbor.loads(cbor.dumps({(1 << 31): 1, (1 << 30): 2, -(1 << 31) - 1: 3})).items()))

# -- base45: chunk values at and past 0xFFFF
for t in ("FGW", "GGW", "U5", "V5", "000", "ZZZ", ":::", "%69 VD92EX0"):
    out("base45.decode(%s)" % t, lambda: base45.decode(t))

# -- CRC-32 (binascii or the fallback) and the fallback itself, on all-ones data too
for d in (b"", b"a", b"\xff" * 4, b"\xff" * 16, bytes(range(256))):
    out("crc32(%d)" % len(d), lambda: checksum.crc32(d) & 0xFFFFFFFF)


def crc_fallback(data, crc=0):  # the same algorithm as checksum.py's fallback
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0xEDB88320 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


for d in (b"", b"a", b"\xff" * 4, bytes(range(64))):
    out("crc32_fallback(%d)" % len(d), lambda: crc_fallback(d))

# -- clock arithmetic with post-2038 and post-2106 times
for t in ((1 << 31) - 1, 1 << 31, (1 << 32) - 1, 1 << 32):
    out("clock(%d)" % t, lambda: clock.Clock(offset=-5, source=lambda: t).now())

# -- replay guard: counters and expiry times across the boundaries, through a reload
_p = _d + "/r.log"
NOW = (1 << 31) - 100   # just before 2038-01-19
CTRS = [1, (1 << 30) - 1, 1 << 30, (1 << 31) - 1, 1 << 31, (1 << 32) - 2, (1 << 32) - 1]
EXPS = [NOW + 50, NOW + 100, (1 << 31) + 1, (1 << 32) - 1, NOW + 86400, (1 << 31), (1 << 30) * 3]


def cti(i):
    return bytes([0x80 | i, 0xff, i, 0, 0xff, 0xff, 0xff, i])


g = replay.ReplayGuard(_p, 16)
out("replay.load", lambda: g.load(NOW))
for i, (c, e) in enumerate(zip(CTRS, EXPS)):
    out("replay.fresh(%d,%d)" % (i, c), lambda: g.fresh(cti(i), c))
    out("replay.commit(%d,%d,%d)" % (i, c, e), lambda: g.commit(cti(i), c, e, NOW))
    out("replay.highest(%d)" % i, lambda: g.highest(cti(i)))
    out("replay.fresh-again(%d)" % i, lambda: (g.fresh(cti(i), c), g.fresh(cti(i), c - 1), g.fresh(cti(i), c + 1)))
out("replay.commit-lower", lambda: g.commit(cti(4), 5, NOW + 10, NOW))
out("replay.highest-after-lower", lambda: g.highest(cti(4)))
out("replay.close", lambda: g.close())
out("replay.file", lambda: open(_p, "rb").read())
for now in (NOW, (1 << 31) + 2, (1 << 32) - 10):
    h = replay.ReplayGuard(_p, 16)
    out("replay.reload(%d)" % now, lambda: h.load(now))
    out("replay.reload-highest(%d)" % now, lambda: [h.highest(cti(i)) for i in range(len(CTRS))])
    out("replay.reload-stats(%d)" % now, lambda: (h.used, h.records, h.skipped, h.evictions))
    h.close()

# -- deny list: header counts past int32, ids with the high bit set
out("deny.check(count 2^31)", lambda: denylist.check_bytes(b"OGDL\x01\x00\x00\x00\x80\x00\x00\x00"))
out("deny.check(count 2^32-1)", lambda: denylist.check_bytes(b"OGDL\x01\x00\x00\x00\xff\xff\xff\xff"))
ids = sorted(cti(i) for i in range(7)) + [b"\xff" * 8]
img = b"OGDL\x01\x00\x00\x00" + bytes([0, 0, 0, len(ids)]) + b"".join(ids)
out("deny.check(ids)", lambda: denylist.check_bytes(img))
with open(_d + "/deny.bin", "wb") as f:
    f.write(img)
dl = denylist.DenyList(_d + "/deny.bin")
out("deny.contains", lambda: [dl.contains(x) for x in ids] + [dl.contains(b"\xff" * 7 + b"\xfe"), dl.contains(bytes(8))])
dl.close()
with open(_d + "/deny2.bin", "wb") as f:
    f.write(b"OGDL\x01\x00\x00\x00\x80\x00\x00\x01" + bytes(8))
out("deny.open(count 2^31+1)", lambda: denylist.DenyList(_d + "/deny2.bin").count)
for _name in os.listdir(_d):
    os.remove(_d + "/" + _name)
os.rmdir(_d)
print("DONE", _n[0])
