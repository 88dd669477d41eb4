# Host tests drive the firmware's operation log through this module (via oracle.py): plain values in
# and out (JSON), the log's files left in `root` for the host's own decoder to read.
from offgate.log.oplog import OpLog


def write_log(root, spec, segment_bytes=4096, max_segments=8):
    """Append the records of spec (JSON: [[t, cti hex or null, ctr, decision, reason, missed
    before it], ...]) to a new log at root. Returns [head seq, head chain, SHA-256 of
    every record's chain as the log recomputes it, concatenated]."""
    import json
    import os
    from binascii import unhexlify
    recs = json.loads(spec)
    try:
        os.mkdir(root)
    except OSError:
        pass
    lg = OpLog(root + "/oplog", segment_bytes, max_segments)
    lg.recover()
    for t, cti, ctr, decision, reason, missed in recs:
        cti = unhexlify(cti) if cti else None
        lg._missed = missed  # decisions not logged before this one (the `missed` field)
        lg.append(t, cti, ctr, decision, reason)
    lg.close()
    seq, chain = lg.head()
    recs = None
    import hashlib
    h = hashlib.sha256()
    for s, _b, _ok, c in lg.chained(1, seq):
        h.update(c)
    return [seq, chain, h.digest()]
