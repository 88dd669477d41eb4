"""Signed electronic receipts on a tamper-evident log (SEEDS 5; docs/receipts.md).

A rider asks for a receipt (one trip, or a period) with a request signed by its wallet key, the
key its credential certifies (COSE_Sign1, ES256). The back office
  1. checks the request: a credential it issued, that credential's rider key signed it, fresh
     (iat within REQUEST_SKEW seconds), never seen before (replay);
  2. builds the receipt from the charged trips of that rider key (the back office's `charges`,
     one per ledger record (gate, seq)), each with its time, station, gate, amount (minor
     currency units) and the record's hash from the gate's operation-log chain; totals and tax;
  3. signs it (COSE_Sign1, ES256, the receipt key `keys/receipt.pem`) -> S;
  4. encrypts S to the rider (COSE_Encrypt, ECDH-ES + HKDF-256 to the rider's encryption key
     registered at enrolment, A256GCM) -> E;
  5. appends the log entry CBOR [receipt id, SHA-256(S), SHA-256(E)] to an append-only Merkle log
     (RFC 9162 hashing, merklelog.py) and signs a new tree head (STH, COSE_Sign1 ES256 with the log
     key `keys/receipt-log.pem`: {1: log kid, 2: tree size, 3: root hash, 4: time}).
The rider gets a *bundle* (CBOR): {"v", "id", "receipt": E, "index", "size", "path": inclusion
path, "sth"}. `verify_bundle` checks the signature, the inclusion proof and the STH, and, with the
back office's database at hand, consistency with the current tree and the ledger records named.

Tables (ledger database, SQLite or PostgreSQL): receipt_log, receipt_sth, receipts,
receipt_settings. In the back office's own database: rider_enc_keys.
"""
import hashlib
import json
import os
import time

import cbor2
from cwt import COSE, COSEKey, Recipient

from ..wire import formats, keys, merklelog
from . import stations
from ..errors import OffgateError

BUNDLE_VERSION = 1
RECEIPT_VERSION = 1
REQUEST_SKEW = 300          # seconds a request's iat may differ from the back office's clock
ALG_ECDH_ES_HKDF_256 = -25  # RFC 9053 §6.3.1
ALG_A256GCM = 3
CONTENT_ALG = "A256GCM"
ID_LEN = 16
# request payload labels
R_CTI, R_FROM, R_TO, R_TRIP, R_NONCE, R_IAT = 1, 2, 3, 4, 5, 6
# STH payload labels
T_LOG, T_SIZE, T_ROOT, T_TIME = 1, 2, 3, 4
DEFAULT_SETTINGS = {"operator": None, "tax_id": "", "address": "", "currency": "PLN", "vat_bp": 800}

class ReceiptError(OffgateError, ValueError):
    """A refused request, or a receipt that does not verify (one line, user-facing)."""


def _now(now=None):
    return int(time.time() if now is None else now)


def money(v, cur) -> str:
    """`v` minor units of currency `cur` as text in major units ("5.00 PLN", "500 JPY")."""
    from ..fares.feed import MINOR_UNITS
    d = MINOR_UNITS.get(cur, 2)
    sign, v = ("-" if v < 0 else ""), abs(int(v))
    if not d:
        return "%s%d %s" % (sign, v, cur)
    return "%s%d.%0*d %s" % (sign, v // 10 ** d, d, v % 10 ** d, cur)


def _sha(b):
    return hashlib.sha256(bytes(b)).digest()


# ---------------------------------------------------------------------------- keys
def _key_file(bo, name):
    path = bo.keys_dir / name
    if not path.exists():
        keys.save_private_pem(path, keys.generate())
    return keys.load_private_pem(path)


def receipt_key(bo):
    """The key that signs receipts (keys/receipt.pem, made on first use)."""
    return _key_file(bo, "receipt.pem")


def log_key(bo):
    """The key that signs the receipt log's tree heads (keys/receipt-log.pem, made on first use)."""
    return _key_file(bo, "receipt-log.pem")


def public_keys(bo, led) -> dict:
    """What a verifier needs: {"operator", "receipt_pub", "log_pub"} (hex SEC1)."""
    return {"operator": settings(bo, led)["operator"], "receipt_pub": keys.pub_bytes(receipt_key(bo)).hex(),
            "log_pub": keys.pub_bytes(log_key(bo)).hex()}


def register_enc_key(bo, rider_pub65, enc_pub65, now=None) -> None:
    """Enrolment: the rider's ECDH key (P-256) that receipts are encrypted to, under its wallet key."""
    rider_pub65, enc_pub65 = keys.pub_bytes(bytes(rider_pub65)), keys.pub_bytes(bytes(enc_pub65))
    if rider_pub65 == enc_pub65:
        raise ReceiptError("the encryption key must not be the signing key")
    with bo.db:
        bo.db.upsert("rider_enc_keys", ("rider_pub",), {"rider_pub": rider_pub65, "enc_pub": enc_pub65,
                                                         "registered": _now(now)})


def enc_key_of(bo, rider_pub65):
    r = bo.db.execute("SELECT enc_pub FROM rider_enc_keys WHERE rider_pub = ?", (bytes(rider_pub65),)).fetchone()
    return bytes(r[0]) if r else None


# ---------------------------------------------------------------------------- settings
def settings(bo, led) -> dict:
    """Operator name (default: the issuer name), tax id, address, currency (ISO 4217), VAT rate
    in basis points (800 = 8 %, fares are tax-inclusive)."""
    out = dict(DEFAULT_SETTINGS)
    for r in led.db.rows("SELECT key, value FROM receipt_settings"):
        if r["key"] in out:
            out[r["key"]] = json.loads(r["value"])
    if not out["operator"]:
        ks = bo.issuer_keys()
        out["operator"] = ks[0]["iss"] if ks else "offgate operator"
    return out


def set_settings(led, **kw) -> None:
    for k, v in kw.items():
        if v is None:
            continue
        if k not in DEFAULT_SETTINGS:
            raise ReceiptError("unknown receipt setting %r" % k)
        if k == "vat_bp" and (isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 10000):
            raise ReceiptError("VAT rate must be 0..10000 basis points")
        if k == "currency" and (not isinstance(v, str) or len(v) != 3 or not v.isalpha()):
            raise ReceiptError("currency must be a three-letter ISO 4217 code")
        led.db.execute("INSERT INTO receipt_settings (key, value) VALUES (?, ?) "
                       "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (k, json.dumps(v)))
    led.db.commit()


def tax_split(total, vat_bp) -> dict:
    """Tax contained in a tax-inclusive total (minor units, rounded half up): {"rate_bp", "net", "tax"}."""
    tax = (total * vat_bp * 2 + 10000 + vat_bp) // (2 * (10000 + vat_bp))
    return {"rate_bp": vat_bp, "net": total - tax, "tax": tax}


# ---------------------------------------------------------------------------- COSE helpers
def _ecdh_cose_key(pub65, priv=None):
    pub65 = keys.pub_bytes(bytes(pub65)) if priv is None else keys.pub_bytes(priv)
    params = {1: 2, 2: keys.kid_of(pub65), 3: ALG_ECDH_ES_HKDF_256, -1: 1, -2: pub65[1:33], -3: pub65[33:65]}
    if priv is not None:
        params[-4] = priv.private_numbers().private_value.to_bytes(32, "big")
    return COSEKey.new(params)


def encrypt_to(enc_pub65, plaintext) -> bytes:
    """COSE_Encrypt (tag 96): A256GCM content key from ECDH-ES + HKDF-256 (RFC 9053 §6.3) with an
    ephemeral sender key, to the rider's registered P-256 encryption key."""
    k = _ecdh_cose_key(enc_pub65)
    # alg in the recipient's protected header: RFC 9053 §5.2 puts that header's bytes into the KDF
    # context, and cwt puts {1: alg} there whatever the header holds, so the two agree only this way
    # (a WebCrypto wallet builds the context from the header it receives: docs/receipts.md)
    r = Recipient.new(protected={1: ALG_ECDH_ES_HKDF_256},
                      unprotected={4: keys.kid_of(keys.pub_bytes(bytes(enc_pub65)))},
                      recipient_key=k, context={"alg": CONTENT_ALG})
    return COSE.new().encode(bytes(plaintext), protected={1: ALG_A256GCM}, recipients=[r])


def decrypt_with(enc_priv, enc) -> bytes:
    try:
        return COSE.new().decode(bytes(enc), _ecdh_cose_key(None, enc_priv), context={"alg": CONTENT_ALG})
    except Exception as e:
        raise ReceiptError("the receipt does not decrypt with this wallet's key (%s)" % type(e).__name__) from None


def _sign(priv, payload) -> bytes:
    return formats.sign1(priv, {formats.H_ALG: formats.ALG_ES256, formats.H_KID: keys.kid_of(keys.pub_bytes(priv))},
                          payload, tagged=True)


def _open_signed(data, pub65, what) -> dict:
    try:
        _, prot, _, payload = formats.split_sign1(data, what)
        formats.cwt_verify(data, keys.pub_from_bytes(bytes(pub65)), prot.get(formats.H_KID), what)
        return formats.decode_map(payload, what)
    except ValueError as e:
        raise ReceiptError(str(e)) from None


# ---------------------------------------------------------------------------- requests (wallet side)
def make_request(wallet_key, cti, *, period=None, trip=None, now=None) -> bytes:
    """A receipt request signed by the wallet key: for one trip (gate, seq) or a period
    (from, to) in Unix seconds, to exclusive."""
    if (period is None) == (trip is None):
        raise ReceiptError("ask for either one trip or one period")
    m = {R_CTI: formats.need_bytes("credential id", cti, 8), R_NONCE: os.urandom(16), R_IAT: _now(now)}
    if period is not None:
        t0, t1 = period
        if not (formats.is_uint(t0) and formats.is_uint(t1) and t0 < t1):
            raise ReceiptError("a period needs from < to, Unix seconds")
        m[R_FROM], m[R_TO] = t0, t1
    else:
        gate, seq = trip
        if not (formats.is_uint(gate) and formats.is_uint(seq)):
            raise ReceiptError("a trip is GATE:SEQ, two non-negative integers")
        m[R_TRIP] = [gate, seq]
    return _sign(wallet_key, cbor2.dumps(m))


# ---------------------------------------------------------------------------- the log
def _frontier(led):
    r = led.db.one("SELECT value FROM receipt_settings WHERE key = 'frontier'")
    return [(s, bytes.fromhex(h)) for s, h in json.loads(r["value"])] if r else []


def _push(frontier, leaf):
    """Append a leaf to the list of perfect-subtree roots (sizes decreasing, RFC 9162's tree)."""
    f = list(frontier) + [(1, leaf)]
    while len(f) > 1 and f[-1][0] == f[-2][0]:
        (s, left), (_, right) = f[-2], f[-1]
        f[-2:] = [(2 * s, merklelog.node_hash(left, right))]
    return f


def _frontier_root(f):
    if not f:
        return merklelog.EMPTY_ROOT
    r = f[-1][1]
    for _, h in reversed(f[:-1]):
        r = merklelog.node_hash(h, r)
    return r


def _leaf_hashes(led, size=None):
    q = "SELECT idx, entry FROM receipt_log" + (" WHERE idx < ?" if size is not None else "") + " ORDER BY idx"
    rows = led.db.rows(q, (size,) if size is not None else ())
    return [merklelog.leaf_hash(bytes(r["entry"])) for r in rows], rows


def latest_sth(led):
    r = led.db.one("SELECT size, root, t, sth FROM receipt_sth ORDER BY size DESC LIMIT 1")
    return None if r is None else {"size": int(r["size"]), "root": bytes(r["root"]), "t": int(r["t"]), "sth": bytes(r["sth"])}


def consistency(led, first, second):
    """PROOF(first, D[second]) from the stored log."""
    lh, _ = _leaf_hashes(led, second)
    if len(lh) != second:
        raise ReceiptError("the log holds %d entries, not %d" % (len(lh), second))
    return merklelog.consistency_proof(first, lh)


def inclusion(led, index, size):
    lh, _ = _leaf_hashes(led, size)
    if len(lh) != size:
        raise ReceiptError("the log holds %d entries, not %d" % (len(lh), size))
    return merklelog.inclusion_path(index, lh)


# ---------------------------------------------------------------------------- issuing (back office)
# a trip's amount on a receipt: as charged plus its corrections (docs/fares.md "Settled is final")
_NET = ("c.amount + COALESCE((SELECT SUM(k.amount) FROM charge_corrections k WHERE k.gate = c.gate AND "
        "k.seq = c.seq), 0)")


def _trips(bo, led, account, ctis, request):
    marks = ",".join("?" * len(ctis))
    if R_TRIP in request:
        gate, seq = request[R_TRIP]
        rows = bo.db.execute("SELECT c.gate, c.seq, c.cti, " + _NET + ", c.t FROM charges c WHERE c.gate = ? AND "
                             "c.seq = ? AND c.cti IN (%s)" % marks, (gate, seq, *ctis)).fetchall()
        if not rows:
            raise ReceiptError("no charged trip gate %d seq %d for this rider" % (gate, seq))
    else:
        rows = bo.db.execute("SELECT c.gate, c.seq, c.cti, " + _NET + ", c.t FROM charges c WHERE c.t >= ? AND "
                             "c.t < ? AND c.cti IN (%s) ORDER BY c.t, c.gate, c.seq" % marks,
                             (request[R_FROM], request[R_TO], *ctis)).fetchall()
        if not rows:
            raise ReceiptError("no charged trips for this rider between %d and %d" % (request[R_FROM], request[R_TO]))
    out = []
    for gate, seq, cti, amount, t in rows:
        rec = led.db.one("SELECT chain, station FROM ledger_records WHERE gate = ? AND seq = ?", (gate, seq))
        if rec is None:
            raise ReceiptError("trip gate %d seq %d is charged but not in the ledger" % (gate, seq))
        cred = bo.credential(bytes(cti))
        out.append({"gate": int(gate), "seq": int(seq), "t": int(t), "station": stations.record_station(gate, rec["station"]),
                    "product": cred["product"], "credential": bytes(cti), "amount": int(amount),
                    "record": bytes(rec["chain"])})
    return out


def _is_conflict(e):
    # sqlite3.IntegrityError, psycopg.IntegrityError (UniqueViolation): another writer took the index
    return any(c.__name__ == "IntegrityError" for c in type(e).__mro__)


def issue(bo, led, request, now=None) -> bytes:
    """Process a signed receipt request (bytes); returns the rider's bundle (CBOR bytes).
    Raises ReceiptError (nothing stored) for an unknown credential, a bad signature, a stale or
    replayed request, a rider with no registered encryption key, or no charged trips.
    Two back-office processes appending at once: the loser's transaction fails on the log index
    and is retried on the new right edge."""
    for attempt in range(5):
        try:
            return _issue(bo, led, request, now)
        except Exception as e:
            if not _is_conflict(e) or attempt == 4:
                if _is_conflict(e):
                    raise ReceiptError("the receipt log was busy; try again") from None
                raise
    raise AssertionError("unreachable")


def _issue(bo, led, request, now):
    now = _now(now)
    try:
        _, _, _, payload = formats.split_sign1(request, "receipt request")
        m = formats.decode_map(payload, "receipt request")
    except ValueError as e:
        raise ReceiptError(str(e)) from None
    cti = m.get(R_CTI)
    cred = bo.credential(cti) if isinstance(cti, bytes) and len(cti) == 8 else None
    if cred is None:
        raise ReceiptError("receipt request names a credential this back office never issued")
    _open_signed(request, cred["rider_pub"], "receipt request")   # signed by the key the credential certifies
    if not formats.is_uint(m.get(R_IAT)) or abs(m[R_IAT] - now) > REQUEST_SKEW:
        raise ReceiptError("receipt request is stale or dated ahead (iat %r, now %d)" % (m.get(R_IAT), now))
    if not isinstance(m.get(R_NONCE), bytes) or len(m[R_NONCE]) != 16:
        raise ReceiptError("receipt request needs a 16-byte nonce")
    if (R_TRIP in m) == (R_FROM in m or R_TO in m):
        raise ReceiptError("receipt request must name one trip or one period")
    if R_TRIP in m and not (isinstance(m[R_TRIP], list) and len(m[R_TRIP]) == 2 and all(map(formats.is_uint, m[R_TRIP]))):
        raise ReceiptError("receipt request: trip must be [gate, seq]")
    if R_FROM in m and not (formats.is_uint(m.get(R_FROM)) and formats.is_uint(m.get(R_TO)) and m[R_FROM] < m[R_TO]):
        raise ReceiptError("receipt request: period must be from < to")
    req_hash = _sha(request)
    if led.db.one("SELECT id FROM receipts WHERE request_hash = ?", (req_hash,)):
        raise ReceiptError("receipt request already answered (replayed)")
    enc_pub = enc_key_of(bo, cred["rider_pub"])
    if enc_pub is None:
        raise ReceiptError("no receipt encryption key was registered for this rider at enrolment")
    ctis = [c["cti"] for c in bo.credentials(cred["account"]) if c["rider_pub"] == cred["rider_pub"]]
    trips = _trips(bo, led, cred["account"], ctis, m)
    st = settings(bo, led)
    total = sum(t["amount"] for t in trips)
    rid = os.urandom(ID_LEN)
    body = {"v": RECEIPT_VERSION, "id": rid, "issued": now,
            "operator": {"name": st["operator"], "tax_id": st["tax_id"], "address": st["address"]},
            "account": cred["account"], "rider_key": keys.kid_of(cred["rider_pub"]),
            "period": [m[R_FROM], m[R_TO]] if R_FROM in m else None, "currency": st["currency"],
            "trips": trips, "total": total, "tax": tax_split(total, st["vat_bp"]), "request": req_hash}
    signed = _sign(receipt_key(bo), cbor2.dumps(body))
    enc = encrypt_to(enc_pub, signed)
    entry = cbor2.dumps([rid, _sha(signed), _sha(enc)])
    lk = log_key(bo)
    try:
        frontier = _frontier(led)
        size = sum(s for s, _ in frontier)
        path = [h for _, h in reversed(frontier)]   # the audit path of the leaf appended next
        frontier = _push(frontier, merklelog.leaf_hash(entry))
        root = _frontier_root(frontier)
        sth = _sign(lk, cbor2.dumps({T_LOG: keys.kid_of(keys.pub_bytes(lk)), T_SIZE: size + 1, T_ROOT: root,
                                     T_TIME: now}))
        led.db.execute("INSERT INTO receipt_log (idx, entry) VALUES (?, ?)", (size, entry))
        led.db.execute("INSERT INTO receipts (id, idx, account, rider_pub, enc, request_hash, created) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)", (rid, size, cred["account"], cred["rider_pub"], enc, req_hash, now))
        led.db.execute("INSERT INTO receipt_sth (size, root, t, sth) VALUES (?, ?, ?, ?)", (size + 1, root, now, sth))
        led.db.execute("INSERT INTO receipt_settings (key, value) VALUES ('frontier', ?) ON CONFLICT (key) "
                       "DO UPDATE SET value = excluded.value", (json.dumps([(s, h.hex()) for s, h in frontier]),))
        led.db.commit()
    except BaseException:
        led.db.rollback()
        raise
    return cbor2.dumps({"v": BUNDLE_VERSION, "id": rid, "receipt": enc, "index": size, "size": size + 1,
                        "path": path, "sth": sth})


def _bundle(rid, enc, idx, head, path) -> bytes:
    return cbor2.dumps({"v": BUNDLE_VERSION, "id": bytes(rid), "receipt": bytes(enc), "index": int(idx),
                        "size": head["size"], "path": path, "sth": head["sth"]})


def bundle_of(led, receipt_id) -> bytes:
    """A fresh bundle for a stored receipt: inclusion in the latest signed tree."""
    r = led.db.one("SELECT idx, enc FROM receipts WHERE id = ?", (bytes(receipt_id),))
    if r is None:
        raise ReceiptError("no receipt %s" % bytes(receipt_id).hex())
    head = latest_sth(led)
    return _bundle(receipt_id, r["enc"], r["idx"], head, inclusion(led, int(r["idx"]), head["size"]))


def wallet_bundles(led, rider_pub) -> list:
    """Every receipt one wallet key (65-byte SEC1) asked for, as fresh bundles (inclusion in the
    latest signed tree): [{"id", "created", "bundle"}], oldest first. Reads the log once."""
    mine = led.db.rows("SELECT id, idx, enc, created FROM receipts WHERE rider_pub = ? ORDER BY idx", (bytes(rider_pub),))
    if not mine:
        return []
    head = latest_sth(led)
    lh, _ = _leaf_hashes(led, head["size"])
    if len(lh) != head["size"]:
        raise ReceiptError("the log holds %d entries, not %d" % (len(lh), head["size"]))
    return [{"id": bytes(r["id"]), "created": int(r["created"]),
             "bundle": _bundle(r["id"], r["enc"], r["idx"], head, merklelog.inclusion_path(int(r["idx"]), lh))}
            for r in mine]


# ---------------------------------------------------------------------------- verification
def parse_bundle(data) -> dict:
    try:
        b = cbor2.loads(bytes(data))
    except Exception as e:
        raise ReceiptError("not a receipt bundle (CBOR: %s)" % e) from None
    if not isinstance(b, dict) or b.get("v") != BUNDLE_VERSION:
        raise ReceiptError("not a version-%d receipt bundle" % BUNDLE_VERSION)
    if not (("receipt" in b) ^ ("signed" in b)):
        raise ReceiptError("a bundle holds either the encrypted receipt or the signed one")
    for k in ("index", "size"):
        if not formats.is_uint(b.get(k)):
            raise ReceiptError("bundle: bad %s" % k)
    if not isinstance(b.get("path"), list) or not isinstance(b.get("sth"), bytes) or not isinstance(b.get("id"), bytes):
        raise ReceiptError("bundle: missing path, tree head or id")
    return b


def export_plain(bundle_bytes, enc_priv) -> bytes:
    """The bundle with the signed receipt in the clear (for an employer or a tax office): it
    carries the hash of the encrypted form, which the log entry names."""
    b = parse_bundle(bundle_bytes)
    if "signed" in b:
        return bytes(bundle_bytes)
    signed = decrypt_with(enc_priv, b["receipt"])
    out = dict(b)
    del out["receipt"]
    out["signed"], out["enc_hash"] = signed, _sha(b["receipt"])
    return cbor2.dumps(out)


def verify_bundle(bundle_bytes, receipt_pub, log_pub, enc_priv=None, led=None) -> dict:
    """Check a receipt bundle: the receipt's signature (receipt key), its log entry's inclusion
    (RFC 9162 §2.1.3.2) under the signed tree head (log key), its sums. With `led` (the back
    office's ledger database) also: consistency of that tree head with the current one
    (§2.1.4.2) and every trip's ledger record (gate, seq, record hash, chain verified).
    Returns {"receipt": the receipt body, "checks": [text]}; raises ReceiptError naming the failure."""
    b = parse_bundle(bundle_bytes)
    if "receipt" in b:
        if enc_priv is None:
            raise ReceiptError("the receipt is encrypted: give the rider's wallet")
        signed, enc_hash = decrypt_with(enc_priv, b["receipt"]), _sha(b["receipt"])
    else:
        signed, enc_hash = b["signed"], b.get("enc_hash")
    body = _open_signed(signed, receipt_pub, "receipt")
    checks = ["receipt signature (ES256, receipt key %s)" % keys.kid_of(bytes(receipt_pub)).hex()]
    if body.get("id") != b["id"]:
        raise ReceiptError("bundle and receipt name different receipt ids")
    sth = _open_signed(b["sth"], log_pub, "signed tree head")
    if sth.get(T_SIZE) != b["size"] or not isinstance(sth.get(T_ROOT), bytes):
        raise ReceiptError("the signed tree head is for another tree size")
    checks.append("signed tree head: size %d, root %s" % (b["size"], sth[T_ROOT].hex()[:16]))
    leaf = merklelog.leaf_hash(cbor2.dumps([b["id"], _sha(signed), enc_hash]))
    if not merklelog.verify_inclusion(b["index"], b["size"], leaf, b["path"], sth[T_ROOT]):
        raise ReceiptError("the receipt is not in the log at index %d of %d (inclusion proof fails)"
                           % (b["index"], b["size"]))
    checks.append("inclusion proof: entry %d of %d (%d hashes)" % (b["index"], b["size"], len(b["path"])))
    try:
        trips = body.get("trips") or []
        total = sum(t["amount"] for t in trips)
        sums_ok = total == body.get("total") and body.get("tax") == tax_split(total, body["tax"]["rate_bp"])
    except (KeyError, TypeError):
        raise ReceiptError("the receipt is malformed (trips, total or tax)") from None
    if not sums_ok:
        raise ReceiptError("the receipt's totals or tax do not add up")
    cur = body.get("currency")
    checks.append("totals: %d trip(s), %s, tax %s" % (len(trips), money(total, cur), money(body["tax"]["tax"], cur)))
    if led is not None:
        head = latest_sth(led)
        if head is None or head["size"] < b["size"]:
            raise ReceiptError("the back office's log is shorter than the receipt's tree head (log rewritten)")
        cur = _open_signed(head["sth"], log_pub, "current tree head")
        lh, _ = _leaf_hashes(led, head["size"])
        if len(lh) != head["size"] or merklelog.root(lh) != cur.get(T_ROOT):
            raise ReceiptError("the back office's stored log does not hash to its signed tree head (log rewritten "
                               "or altered)")
        proof = merklelog.consistency_proof(b["size"], lh)
        if not merklelog.verify_consistency(b["size"], head["size"], sth[T_ROOT], cur[T_ROOT], proof):
            raise ReceiptError("the log's current tree is not an extension of the receipt's tree head (log rewritten)")
        if not merklelog.verify_inclusion(b["index"], head["size"], leaf, merklelog.inclusion_path(b["index"], lh),
                                          cur[T_ROOT]):
            raise ReceiptError("the receipt's entry is no longer in the back office's log (log rewritten)")
        checks.append("consistency: tree %d -> %d (%d hashes); still included at %d"
                      % (b["size"], head["size"], len(proof), b["index"]))
        for t in trips:
            rec = led.db.one("SELECT chain, chain_ok FROM ledger_records WHERE gate = ? AND seq = ?", (t["gate"], t["seq"]))
            if rec is None or bytes(rec["chain"]) != t["record"]:
                raise ReceiptError("trip gate %d seq %d: the ledger's record differs from the receipt's" % (t["gate"], t["seq"]))
            if not rec["chain_ok"]:
                raise ReceiptError("trip gate %d seq %d: the ledger flags that record's chain as broken" % (t["gate"], t["seq"]))
        checks.append("ledger: %d record(s) found with the same hashes, chains verified" % len(trips))
    return {"receipt": body, "checks": checks}


def audit(bo, led) -> dict:
    """The back office's own check of its receipt store: every stored tree head's signature and
    root against the log, the log's indexes, every receipt's entry. Returns {"size", "receipts",
    "tree_heads", "problems": [text]}: an empty problem list means nothing was altered, dropped
    or reordered."""
    problems = []
    lh, rows = _leaf_hashes(led)
    n = len(rows)
    if [int(r["idx"]) for r in rows] != list(range(n)):
        problems.append("the log's entries are not numbered 0..%d without gaps (an entry was dropped)" % (n - 1))
    log_pub = keys.pub_bytes(log_key(bo))
    sths = led.db.rows("SELECT size, root, sth FROM receipt_sth ORDER BY size")
    for s in sths:
        size = int(s["size"])
        try:
            body = _open_signed(bytes(s["sth"]), log_pub, "tree head")
        except ReceiptError as e:
            problems.append("tree head %d: %s" % (size, e))
            continue
        if body.get(T_SIZE) != size or body.get(T_ROOT) != bytes(s["root"]):
            problems.append("tree head %d: the stored size/root differ from the signed ones" % size)
        if size > n:
            problems.append("tree head %d: the log holds only %d entries (entries dropped)" % (size, n))
        elif merklelog.root(lh[:size]) != body.get(T_ROOT):
            problems.append("tree head %d: the log's first %d entries do not hash to its signed root "
                            "(an entry was altered, dropped or reordered)" % (size, size))
    if sths and int(sths[-1]["size"]) != n:
        problems.append("the log has %d entries but the newest signed tree head covers %d" % (n, int(sths[-1]["size"])))
    entries = {int(r["idx"]): bytes(r["entry"]) for r in rows}
    recs = led.db.rows("SELECT id, idx, enc FROM receipts ORDER BY idx")
    if len(recs) != n:
        problems.append("%d receipts stored for %d log entries (a receipt was dropped or added)" % (len(recs), n))
    for r in recs:
        e = entries.get(int(r["idx"]))
        try:
            rid, _, enc_hash = cbor2.loads(e) if e else (None, None, None)
        except Exception:
            rid = enc_hash = None
        if rid != bytes(r["id"]):
            problems.append("receipt %s: log entry %d names another receipt (reordered)" % (bytes(r["id"]).hex(), r["idx"]))
        elif enc_hash != _sha(r["enc"]):
            problems.append("receipt %s: its stored bytes differ from what log entry %d recorded (altered)"
                            % (bytes(r["id"]).hex(), r["idx"]))
    return {"size": n, "receipts": len(recs), "tree_heads": len(sths), "problems": problems}


def read_bundle(bundle_bytes, enc_priv=None) -> dict:
    """The receipt body inside a bundle, decrypted with the wallet's key (not verified: see
    verify_bundle)."""
    b = parse_bundle(bundle_bytes)
    signed = b["signed"] if "signed" in b else decrypt_with(enc_priv, b["receipt"]) if enc_priv else None
    if signed is None:
        raise ReceiptError("the receipt is encrypted: give the rider's wallet")
    try:
        _, _, _, payload = formats.split_sign1(signed, "receipt")
        return formats.decode_map(payload, "receipt")
    except ValueError as e:
        raise ReceiptError(str(e)) from None


def stored(led, account=None) -> list:
    """The back office's receipts: [{"id", "idx", "account", "created"}], oldest first."""
    q = "SELECT id, idx, account, created FROM receipts" + (" WHERE account = ?" if account else "") + " ORDER BY idx"
    return [dict(r, id=bytes(r["id"])) for r in led.db.rows(q, (account,) if account else ())]
