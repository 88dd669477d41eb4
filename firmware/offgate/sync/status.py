"""The sync link's status and config commands (docs/protocol.md "Sync protocol"): what the
host asks first in every sync. Apart from offgate/sync/admin.py (uploads, trust, time: 7.7 KB of
heap from .mpy on the 32-bit build) because a session's status comes right after its handshake,
when the heap is fullest: this module is ~2 KB. Loaded by session.Session.request for these
requests only and dropped before any other command.

Each op(server, state (unused), request map) returns a response map.
"""
import os

from offgate.statedir import fs_free


def op_status(srv, _, req):
    port = srv.port
    cfg = port.cfg
    st = {}
    serial, issued, nkeys = port.trust_info()
    now = port.clock.now()
    try:
        st = port.status()
    except Exception:
        pass
    deny = port.deny_info()
    deny["age"] = (now - deny["issued"]) if deny["issued"] else None
    out = {"gate_id": port.gate_id, "zone": cfg.get("zone"), "firmware": _firmware(),
           "station": cfg.get("station", ""), "direction": cfg.get("direction", "both"),
           "clock": srv.clock_state(), "trust_serial": serial,
           "trust": {"serial": serial, "issued": issued, "age": (now - issued) if issued else None},
           "deny": deny, "trust_keys": nkeys, "deny_count": deny["count"],
           "scans": st.get("scans"), "opened": st.get("opened"), "denied": st.get("denied")}
    log = port.oplog
    if log is not None:
        try:
            ls = log.status()
            head = log.head()
            acked = log.acked()
            out["log"] = _plain(ls)
            out["head"] = [head[0], bytes(head[1])]
            out["acked"] = [acked[0], bytes(acked[1])]
        except Exception as e:
            out["log_error"] = str(e)
    try:
        v = os.statvfs(port.dir)
        # free blocks from fs_free (a full littlefs can report 2^32 - 3 free blocks)
        out["storage"] = {"block": v[0], "blocks": v[2], "free": (fs_free(port.dir) or 0) // (v[0] or 1)}
    except (AttributeError, OSError):
        pass
    return out

def op_config(srv, _, req):
    return {"config": _plain(srv.port.cfg)}

def _firmware():
    import offgate
    return offgate.VERSION


def _plain(v):
    """A JSON-ish structure safe for the CBOR encoder (drops what it cannot carry)."""
    if v is None or v is True or v is False or isinstance(v, (int, str, bytes)):
        return v
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    return str(v)


OPS = {
    "status": op_status,
    "config": op_config,
}
