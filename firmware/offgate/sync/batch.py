"""Batch summaries: what the gate did since the last acknowledged record, signed by the gate's
device key and encrypted to the back office (docs/protocol.md, "Batch summaries").

build() makes the CBOR plaintext: the records after the acknowledged point (up to max_records),
their aggregates (per decision and reason, per hour), the chain values that tie the batch to
the log (chain before the first record, after the last, and the log's head), the gate id and
the clock state. seal() wraps it:

  signed = COSE_Sign1 (tag 18) [ bstr .cbor {1: -7, 4: gate_kid}, {}, plain, r||s ]
           ES256 by the device key over ["Signature1", protected, h'', plain]
  sealed = COSE_Encrypt0-style (tag 16) [ bstr .cbor {1: 31, 4: gate_kid, -1: COSE_Key(E)}, {}, ct ]
           E = fresh ephemeral P-256 key; Z = ECDH(e, back office key) (x coordinate)
           okm = HKDF-SHA-256(ikm=Z, salt=empty, info="offgate batch v1" || E || BO || G, 45)
           key = okm[0:32], nonce = okm[32:45]; ct = AES-CCM (16-byte tag, 13-byte nonce, alg 31
           AES-CCM-16-128/256) of `signed` with AAD = ["Encrypt0", protected, h''] (CBOR)
  gate_kid = SHA-256(gate public key, 65 bytes)[0:8]

Sign-then-encrypt: the inner signature covers the plaintext itself, so the back office can keep
(plaintext, signature) as non-repudiable evidence after decryption; observers of the link see
only the gate's kid and an ephemeral key. A fresh ephemeral key per seal makes every
(key, nonce) pair single-use, so the nonce can be derived rather than counted. Within one sync
session (seal(ctx=)) only some seals are signed (the first, every SIGN_EVERY-th, the empty one
that ends a pull loop); the others are authenticated by the session key the first signature
binds to the gate, and covered by the chain a later signature commits to.
"""
import hashlib
import struct
from array import array

from offgate.crypto import aesccm
from offgate.codec import cbor
from offgate.crypto.hkdf import hkdf_sha256

try:
    from offgate.sync.rowenc import row as _row_v  # viper: no viper emitter (CPython, webassembly) -> batchrows.row_raw
except Exception:
    _row_v = None

VERSION = 1
ALG_ES256 = -7
ALG_CCM_16_128_256 = 31
INFO = b"offgate batch v1"
_ROWS_BUF = 576   # bytes of rows encoded before they are moved into the batch (build)
# build's working buffers, made once with the module (loaded for a sync session only): no
# allocation per pull beyond the batch itself
_ROWS = bytearray(_ROWS_BUF)
# see offgate.sync.rowenc.row; made from a range, not from bytes(1056): no temporary 1 KB block
# on a fragmented session heap (the first build clears it all: agg[5] is not 0)
_AGG = array("i", range(264))


def gate_kid(pub65):
    return hashlib.sha256(pub65).digest()[:8]


def _clock(clock_state):
    # a Clock object is summarised; a dict (or None) goes in as given
    if clock_state is None or isinstance(clock_state, dict):
        return clock_state if clock_state is not None else {}
    return {"now": clock_state.now(), "offset": getattr(clock_state, "offset", 0)}


def _enc(out, obj):
    out.extend(cbor.dumps(obj))


LAST_TO = 0


def build(oplog, gate_id, clock_state, max_records):
    """CBOR plaintext of the next batch (records after the acknowledged point).

    Written piecewise into one growing buffer (rows are encoded as they are read, never held
    as a list): a 100-record batch must fit a 128 KB heap next to the gate. The top-level map's
    keys are in a fixed order (not sorted): receivers must not depend on key order."""
    aseq, achain = oplog.acked()
    hseq, hchain = oplog.head()
    n = oplog.available(aseq + 1, max_records) if hasattr(oplog, "available") else min(hseq - aseq, max_records)
    out = bytearray()
    raw = hasattr(oplog, "chained")
    breaks = []
    cbor._head(out, 5, 12 if raw else 11)  # a map of 12 entries (11 without "breaks")
    for k, v in (("v", VERSION), ("gate", gate_id), ("clock", _clock(clock_state)),
                 ("from", aseq + 1), ("prev", achain), ("head", [hseq, hchain])):
        _enc(out, k)
        _enc(out, v)
    _enc(out, "recs")
    cbor._head(out, 4, n)  # an array of n rows
    opened = denied = missed = damaged = 0
    reasons = {}
    hours = {}
    last_seq, last_chain = aseq, achain
    if raw:
        # raw records, decoded in place (no dict per record; docs/performance.md "Sync"), each
        # one's chain recomputed on the way (records do not store it)
        # rows are written into a small buffer (a row is at most 33 bytes, a damaged one 48; no
        # regrowth per byte), moved into `out` when nearly full, by offgate.sync.rowenc (viper) or
        # batchrows.row_raw (the same in Python), which also count them per decision and per reason
        # within the current hour window (agg, see rowenc.row)
        rows = _ROWS
        rmv = memoryview(rows)
        p = 0
        agg_a = _AGG  # its per-reason counts are all 0 after a build (_flush_hour clears them)
        for i in range(8 if agg_a[5] == 0 else 264):  # all of it after a build that raised
            agg_a[i] = 0  # counts, and an empty window: the first record opens one
        agg_a[5] = 1      # a build is running
        if _row_v is not None:
            rowf = _row_v
        else:  # no viper here: the same rows in Python (offgate.sync.batchrows, loaded only then)
            from offgate.sync.batchrows import row_raw as rowf
        got = 0
        c = None
        cur = None                          # the current window's hour start (Unix seconds)
        for seq, b, ok, c in oplog.chained(aseq + 1, n, achain, breaks):
            got += 1
            last_seq = seq
            if p > _ROWS_BUF - 48:
                out.extend(rmv[:p])
                p = 0
            if not ok:
                damaged += 1
                d = cbor.dumps([seq, "damaged", bytes(b)])
                rows[p:p + len(d)] = d
                p += len(d)
                continue
            q = rowf(b, rows, p, agg_a)
            if q < 0:
                # another hour: close the window, open this record's (a Unix time is a big int
                # on a 32-bit port: made only here, once per hour)
                _flush_hour(hours, cur, agg_a, reasons)
                t = struct.unpack_from(">I", b, 8)[0]
                cur = t - t % 3600
                agg_a[4] = cur - 0x100000000 if cur >= 0x80000000 else cur
                agg_a[2] = 0
                agg_a[3] = 3600
                q = rowf(b, rows, p, agg_a)
            p = q
            if b[24] or b[25] or b[26] or b[27]:
                missed += struct.unpack_from(">I", b, 24)[0]
        _flush_hour(hours, cur, agg_a, reasons)
        opened, denied = agg_a[0], agg_a[1]
        agg_a[5] = 0
        out.extend(rmv[:p])
        rows = rmv = None
        if got < n:
            raise ValueError("operation log shorter than its head")
        if c is not None:
            last_chain = c
    else:  # a log seen only through read() (dicts): plain Python, loaded only for such a log
        from offgate.sync.batchrows import dict_rows
        opened, denied, missed, damaged, last_seq, last_chain = dict_rows(out, oplog, aseq, achain, n, reasons,
                                                                           hours)
    global LAST_TO
    LAST_TO = last_seq  # the sync op records what a session was given (an ack may not go beyond)
    agg = {"open": opened, "deny": denied, "missed": missed, "reasons": reasons, "hours": hours}
    if damaged:
        agg["damaged"] = damaged
    for k, v in (("to", last_seq), ("chain", last_chain),
                 ("agg", agg),
                 ("not_logged", oplog.not_logged)):
        _enc(out, k)
        _enc(out, v)
    if raw:
        # segment starts where the chain restarts from the segment header (a lost segment, or
        # records before it changed on flash): [seq, chain before seq]; usually empty
        _enc(out, "breaks")
        _enc(out, breaks)
    return out  # a bytearray: a bytes() copy would double the peak heap of a pull


def _flush_hour(hours, cur, agg, reasons):
    """Move the window's per-reason counts (agg[8 + reason], offgate.sync.rowenc.row) into
    hours[cur] and the batch's totals per reason, and clear them."""
    if cur is None:
        return
    hb = None
    for rc in range(256):
        k = agg[8 + rc]
        if k:
            if hb is None:
                hb = hours.get(cur)
                if hb is None:
                    hb = hours[cur] = {}
            hb[rc] = hb.get(rc, 0) + k
            reasons[rc] = reasons.get(rc, 0) + k
            agg[8 + rc] = 0


def _cose_key(pub65):
    return {1: 2, -1: 1, -2: pub65[1:33], -3: pub65[33:65]}


def _bstr_head(n):
    h = bytearray()
    cbor._head(h, 2, n)
    return bytes(h)


def sign1(plain, device_key, hedge=True, aad=b""):
    """COSE_Sign1 (tagged) of plain, ES256 by the device key; aad: the external_aad (RFC 9052
    §4.4; a session's ephemeral key E under seal(ctx=)). The Sig_structure is hashed in pieces and
    the result assembled in one buffer: no extra copies of a large plaintext."""
    prot = cbor.dumps({1: ALG_ES256, 4: gate_kid(device_key.public_bytes())})
    # ["Signature1", protected, external_aad, payload] = 84 6A "Signature1" bstr(prot) bstr(aad) bstr(plain)
    h = hashlib.sha256(b"\x84" + cbor.dumps(["Signature1", prot, bytes(aad)])[1:] + _bstr_head(len(plain)))
    h.update(plain)
    sig = device_key.sign_digest(h.digest(), hedge)
    # D2 84 bstr(prot) A0 bstr(plain) 58 40 sig
    pre = b"\xd2\x84" + cbor.dumps(prot) + b"\xa0" + _bstr_head(len(plain))
    out = bytearray(len(pre) + len(plain) + 2 + 64)
    out[0:len(pre)] = pre
    o = len(pre) + len(plain)
    out[len(pre):o] = plain
    out[o:o + 2] = b"\x58\x40"
    out[o + 2:] = sig
    return out


def derive(z, eph_pub, bo_pub, gate_pub):
    """(key 32, nonce 13) for one seal."""
    okm = hkdf_sha256(z, b"", INFO + eph_pub + bo_pub + gate_pub, 45)
    return okm[:32], okm[32:]


SEAL_INDEX = -65537  # protected header (private-use label): the seal's number under its ephemeral key


SIGN_EVERY = 32  # under a session key, at least every this many seals is signed (ops.op_pull)


def seal(plain, device_key, backoffice_pub65, eph=None, hedge=True, ctx=None, sign=True, gate_pub=None):
    """Signed by device_key, encrypted to backoffice_pub65. eph (a DeviceKey) and hedge=False
    only for reproducible test vectors: in service a fresh ephemeral key is made per seal, or,
    with `ctx` (a list, empty at first, kept by the caller for one sync session), once per
    session: ctx = [E, Z, i, signed], and each seal under it carries its number i (1, 2, ...) in
    the protected header, which goes into the key derivation (info || i, 4 bytes BE) and the AAD.
    Every seal thus still has its own key and nonce; a session pays one ephemeral key and one
    ECDH instead of one per batch (docs/protocol.md "Batch summaries").

    Under a session key a signed seal's signature also covers E (external_aad), which binds the
    session key to the gate; once the caller has seen the back office accept a signed seal of the
    session (ops.op_ack sets ctx[3]), sign=False seals the bare plaintext (no COSE_Sign1:
    authenticated by AES-CCM under a key only this gate and the back office can derive). Every record still ends up under a gate signature: a later signed batch's
    `prev` chain covers it (docs/protocol.md "One signature per session").

    device_key may be None for an unsigned seal under a session key (ctx bound, sign=False) if
    `gate_pub` (the device public key, 65 bytes) is given: such a pull needs no code of
    offgate.crypto.devicekey in the heap (ops.op_pull). The session key's back office key is
    kept in ctx (ctx[4]): a different one later raises ValueError."""
    bo = bytes(backoffice_pub65)
    if gate_pub is None:
        gate_pub = device_key.public_bytes()
    hdr = {1: ALG_CCM_16_128_256, 4: gate_kid(gate_pub)}
    if ctx is None or not ctx:
        from offgate.crypto import devicekey  # loaded only where a key is made (and a signature)
        devicekey.parse_point(bo)  # a bad back office key fails here, before anything is signed
        e = eph if eph is not None else devicekey.generate()
        devicekey = None
        E = e.public_bytes()
        z = e.ecdh(bo)
        e = None
        if ctx is not None:
            ctx.extend((E, z, 0, False, bo))
    elif ctx[4] != bo:
        raise ValueError("back office batch key changed within the session")
    if ctx:
        E, z = ctx[0], ctx[1]
        if sign or not ctx[3]:
            inner = sign1(plain, device_key, hedge, E)
        else:
            inner = plain  # the session's key is already bound to this gate by a signed seal
        ctx[2] += 1
        hdr[SEAL_INDEX] = ctx[2]
        key, nonce = derive(z, E, bo, gate_pub + ctx[2].to_bytes(4, "big"))
    else:
        inner = sign1(plain, device_key, hedge)
        key, nonce = derive(z, E, bo, gate_pub)
    plain = None
    z = None
    hdr[-1] = _cose_key(E)
    prot = cbor.dumps(hdr)
    aad = cbor.dumps(["Encrypt0", prot, b""])
    # D0 83 bstr(prot) A0 bstr(ct || tag): the ciphertext is written straight into place
    clen = len(inner) + 16
    pre = b"\xd0\x83" + cbor.dumps(prot) + b"\xa0" + _bstr_head(clen)
    out = bytearray(len(pre) + clen)
    out[0:len(pre)] = pre
    aesccm.encrypt(key, nonce, inner, aad, 16, memoryview(out)[len(pre):])
    inner = None
    return out  # a bytearray (no final copy: the heap of a pull, ops.PULL_PER_RECORD)
