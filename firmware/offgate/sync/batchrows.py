"""A pull's batch rows in plain Python (offgate.sync.batch.build): for a log seen only through
read() (dicts per record) and, on ports without viper (CPython, webassembly), the raw records' rows
(offgate.sync.rowenc.row in Python: the same bytes and counts, tests/firmware/mp/test_batchrow.py).
Kept out of offgate.sync.batch so a gate with viper does not hold this code in its heap during a
pull (docs/performance.md "Sync on the gate")."""
import struct

from offgate.codec import cbor
from offgate.log.oplog import OPEN

_READ_CHUNK = 32  # records read from the log at a time (bounded heap while building)


def _enc(out, obj):
    out.extend(cbor.dumps(obj))


def dict_rows(out, oplog, aseq, achain, n, reasons, hours):
    """Append the rows of the n records after aseq (oplog.read dicts) to `out`, counting them into
    `reasons` ({reason: n}) and `hours` ({hour start: {reason: n}}). Returns (opened, denied, missed,
    damaged, last seq, chain after it). ValueError if the log holds fewer than n records."""
    opened = denied = missed = damaged = 0
    last_seq, last_chain = aseq, achain
    done = 0
    while done < n:
        chunk = oplog.read(last_seq + 1, min(_READ_CHUNK, n - done))
        if not chunk:
            raise ValueError("operation log shorter than its head")
        for r in chunk:
            if "damaged" in r:
                # flash damage: the record's bytes as they are, for the ledger to keep and show
                damaged += 1
                _enc(out, [r["seq"], "damaged", r["damaged"]])
                last_seq, last_chain = r["seq"], r["chain"]
                continue
            op = r["decision"] == "OPEN"
            if op:
                opened += 1
            else:
                denied += 1
            rc = r["reason"]
            missed += r["missed"]
            reasons[rc] = reasons.get(rc, 0) + 1
            hr = r["t"] - r["t"] % 3600
            hb = hours.get(hr)
            if hb is None:
                hb = hours[hr] = {}
            hb[rc] = hb.get(rc, 0) + 1
            row(out, r["seq"], r["t"], r["cti"], r["ctr"], op, rc, r["missed"])
            last_seq, last_chain = r["seq"], r["chain"]
        done += len(chunk)
        chunk = None
    return opened, denied, missed, damaged, last_seq, last_chain


def row_raw(b, dst, p, agg):
    """offgate.sync.rowenc.row in Python (CPython, ports without viper): the same bytes and counts."""
    t = struct.unpack_from(">I", b, 8)[0]
    rel = t - (agg[4] & 0xFFFFFFFF)
    if rel < agg[2] or rel >= agg[3]:
        return -1
    out = bytearray()
    out.append(0x87)
    _u32(out, b, 4)
    _u32(out, b, 8)
    if b[3] & 1:
        out.append(0x48)
        out.extend(b[16:24])
    else:
        out.append(0xF6)
    _u32(out, b, 12)
    if b[1] == OPEN:
        out.append(1)
        agg[0] += 1
    else:
        out.append(0)
        agg[1] += 1
    rc = b[2]
    if rc >= 24:
        out.append(0x18)
    out.append(rc)
    agg[8 + rc] += 1
    _u32(out, b, 24)
    dst[p:p + len(out)] = out
    return p + len(out)


def _u32(out, b, o):
    """Append the CBOR uint (major type 0, shortest form) of the big-endian u32 at b[o:o+4]."""
    if b[o] or b[o + 1]:
        out.append(0x1A)
        out.extend(b[o:o + 4])
    elif b[o + 2]:
        out.append(0x19)
        out.extend(b[o + 2:o + 4])
    else:
        v = b[o + 3]
        if v >= 24:
            out.append(0x18)
        out.append(v)


def row(out, seq, t, cti, ctr, op, rc, missed):
    """Append the CBOR row [seq, t, cti, ctr, open, reason, missed] (what cbor.dumps of that list
    gives, byte for byte; tests/cross/test_batch.py): written head by head, because a generic encode per
    row (a list, a buffer and a copy each) was most of a pull's gate CPU."""
    h = cbor._head
    out.append(0x87)
    h(out, 0, seq)
    h(out, 0, t)
    if cti is None:
        out.append(0xF6)
    else:
        h(out, 2, len(cti))
        out.extend(cti)
    h(out, 0, ctr)
    out.append(1 if op else 0)
    if isinstance(rc, int):
        h(out, 0, rc)
    else:
        _enc(out, rc)
    h(out, 0, missed)
