"""Recompute an operation log's chain over decoded records (tests and tools: the gate itself never
loads this module, so it is not in its heap; issue 12). Formats: offgate/log/oplog.py."""
import struct

from offgate.log.record import BODY, DENY, MAGIC, OPEN, ZERO32, chain as _chain


def verify_records(prev_chain, records):
    """Recompute the chain over decoded records (as read() returns them) from prev_chain.
    Returns the final chain, or raises ValueError at the first break. For tests and tools."""
    b = bytearray(BODY)
    chain = bytes(prev_chain)
    for r in records:
        if "damaged" in r:
            chain = _chain(chain, r["damaged"][0:BODY])
        else:
            b[0] = MAGIC
            b[1] = OPEN if r["decision"] == "OPEN" else DENY
            b[2] = r["reason"]
            b[3] = 1 if r["cti"] is not None else 0
            struct.pack_into(">III", b, 4, r["seq"], r["t"], r["ctr"])
            b[16:24] = r["cti"] if r["cti"] is not None else ZERO32[:8]
            struct.pack_into(">I", b, 24, r["missed"])
            chain = _chain(chain, b)
        if chain != r["chain"]:
            raise ValueError("chain breaks at seq %d" % r["seq"])
    return chain
