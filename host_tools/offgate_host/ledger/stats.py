"""Masked aggregate statistics across operators (SEEDS 4; protocol and security argument: docs/stats.md).

Several operators, each running its own offgate back office, publish joint ridership without
showing each other, or the aggregator, their own numbers:

  round    a JSON file agreed by the parties: round id, the parties (name + P-256 public key, the
           "stats key" of each back office) and a common index (stations x hours x fare products);
           its digest = SHA-256 of its canonical CBOR binds all three.
  party    counts OPEN passages in its own ledger per cell (uint64), adds its mask, signs
           (COSE_Sign1, ES256, its stats key) and hands the submission to the aggregator.
  mask     for every other party j: k_ij = HKDF-SHA256(ECDH(sk_i, pk_j), salt = digest,
           info = "offgate-stats-mask-v1" || digest || lower pub || higher pub), 32 bytes;
           PRF per cell = AES-256-CTR keystream under k_ij (cell c = bytes 8c..8c+8, little
           endian); added by the party with the lower public key, subtracted by the other.
           The masks of all parties sum to zero modulo 2^64 in every cell.
  aggregator verifies every signature against the round's party list, refuses tampered, replayed,
           duplicate or wrong-round submissions, sums modulo 2^64 and publishes the totals. A
           missing party fails the round for good (nothing is unmasked); re-run it under a new
           round id, which gives new masks.

Units: counts are passages (OPEN records); hours are Unix seconds aligned to 3600.
Tables (ledger database, SQLite or PostgreSQL): stats_submissions (a party's own), stats_rounds and
stats_seen (the aggregator's).
"""
import hashlib
import json
import re
import struct
import time

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..wire import formats, keys
from . import stations
from ..errors import OffgateError

MOD = 1 << 64
ROUND_VERSION = 1
MASK_INFO = b"offgate-stats-mask-v1"
MAX_CELLS = 1 << 20
HOUR = 3600
# A correct total is a count of passages; a cell at or above this means the masks did not cancel.
SANE_MAX = 1 << 48
ROUND_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
# submission payload labels (CBOR map)
S_ROUND, S_DIGEST, S_PARTY, S_CELLS, S_VECTOR, S_CREATED = 1, 2, 3, 4, 5, 6

class StatsError(OffgateError, ValueError):
    """A round, submission or aggregation problem (one line, user-facing)."""


class RoundIncomplete(StatsError):
    """Not every party submitted: the round failed, nothing was unmasked."""


def _now(now=None):
    return int(time.time() if now is None else now)


# ---------------------------------------------------------------------------- keys and parties
def party_key(bo) -> ec.EllipticCurvePrivateKey:
    """This back office's stats key (keys/stats.pem, created on first use)."""
    path = bo.keys_dir / "stats.pem"
    if not path.exists():
        keys.save_private_pem(path, keys.generate())
    return keys.load_private_pem(path)


def party_info(bo, name) -> dict:
    """{"name", "pub" (hex of the 65-byte SEC1 key)}: what a party gives the round's coordinator."""
    if not isinstance(name, str) or not name:
        raise StatsError("party name must be non-empty text")
    return {"name": name, "pub": keys.pub_bytes(party_key(bo)).hex()}


# ---------------------------------------------------------------------------- rounds
def _check_index(index) -> dict:
    if not isinstance(index, dict):
        raise StatsError("index must be an object with start, hours, stations, products")
    start, hours = index.get("start"), index.get("hours")
    st, pr = index.get("stations"), index.get("products")
    if not formats.is_uint(start) or start % HOUR:
        raise StatsError("index start must be Unix seconds on a whole hour, got %r" % (start,))
    if not formats.is_uint(hours) or not 1 <= hours <= 24 * 366:
        raise StatsError("index hours must be an integer 1..8784, got %r" % (hours,))
    if not isinstance(st, list) or not st or not all(isinstance(s, str) and s for s in st) or len(set(st)) != len(st):
        raise StatsError("index stations must be a non-empty list of distinct names")
    if not isinstance(pr, list) or not pr or not all(formats.is_uint(p) for p in pr) or len(set(pr)) != len(pr):
        raise StatsError("index products must be a non-empty list of distinct non-negative integers")
    n = len(st) * hours * len(pr)
    if n > MAX_CELLS:
        raise StatsError("index has %d cells, more than %d" % (n, MAX_CELLS))
    return {"start": start, "hours": hours, "stations": list(st), "products": list(pr)}


def n_cells(index) -> int:
    return len(index["stations"]) * index["hours"] * len(index["products"])


def cell_of(index, station_pos, hour_pos, product_pos) -> int:
    """Cell number: station-major, then hour, then product."""
    return (station_pos * index["hours"] + hour_pos) * len(index["products"]) + product_pos


def cell_label(index, c) -> dict:
    np_, h = len(index["products"]), index["hours"]
    p, rest = c % np_, c // np_
    return {"station": index["stations"][rest // h], "hour": index["start"] + (rest % h) * HOUR,
            "product": index["products"][p]}


def new_round(round_id, parties, index, now=None) -> dict:
    """A round definition: {"version", "round", "parties": [{"name", "pub"}], "index", "created"}.
    Raises StatsError on a bad id, fewer than two parties, duplicate names/keys or a bad index."""
    if not isinstance(round_id, str) or not ROUND_ID_RE.match(round_id):
        raise StatsError("round id must be 1-64 characters of letters, digits, . _ : - (got %r)" % (round_id,))
    spec = {"version": ROUND_VERSION, "round": round_id, "parties": [], "index": _check_index(index),
            "created": _now(now)}
    for p in parties:
        try:
            pub = keys.pub_bytes(bytes.fromhex(p["pub"]))
        except (KeyError, TypeError, ValueError) as e:
            raise StatsError("party %r: bad public key (%s)" % (p.get("name") if isinstance(p, dict) else p, e)) from None
        if not isinstance(p.get("name"), str) or not p["name"]:
            raise StatsError("every party needs a name")
        spec["parties"].append({"name": p["name"], "pub": pub.hex()})
    check_round(spec)
    return spec


def rerun(spec, new_round_id, without, now=None) -> dict:
    """The same index with the parties not named in `without`, under a new round id (so new masks)."""
    check_round(spec)
    names = {p["name"] for p in spec["parties"]}
    unknown = [n for n in without if n not in names]
    if unknown:
        raise StatsError("not a party of round %s: %s" % (spec["round"], ", ".join(unknown)))
    if new_round_id == spec["round"]:
        raise StatsError("a re-run needs a new round id (masks are never reused)")
    return new_round(new_round_id, [p for p in spec["parties"] if p["name"] not in without], spec["index"], now)


def check_round(spec) -> dict:
    """Validate a round definition (as loaded from its JSON file); returns it."""
    if not isinstance(spec, dict) or spec.get("version") != ROUND_VERSION:
        raise StatsError("not a version-%d stats round" % ROUND_VERSION)
    if not isinstance(spec.get("round"), str) or not ROUND_ID_RE.match(spec["round"]):
        raise StatsError("bad round id %r" % (spec.get("round"),))
    _check_index(spec.get("index"))
    ps = spec.get("parties")
    if not isinstance(ps, list) or len(ps) < 2 or not all(isinstance(p, dict) for p in ps):
        raise StatsError("a round needs at least two parties")
    names = [p.get("name") for p in ps]
    pubs = [p.get("pub") for p in ps]
    if len(set(names)) != len(names) or len(set(pubs)) != len(pubs):
        raise StatsError("party names and keys must be distinct")
    for p in ps:
        try:
            keys.pub_from_bytes(bytes.fromhex(p["pub"]))
        except (KeyError, TypeError, ValueError):
            raise StatsError("party %r: bad public key" % p.get("name")) from None
    return spec


def load_round(path) -> dict:
    try:
        with open(path) as f:
            spec = json.load(f)
    except ValueError as e:
        raise StatsError("round file %s is not JSON: %s" % (path, e)) from None
    return check_round(spec)


def round_digest(spec) -> bytes:
    """SHA-256 over the canonical CBOR of (version, round id, parties, index): what masks and
    submissions are bound to. `created` is left out: it names no data."""
    body = [spec["version"], spec["round"], [[p["name"], bytes.fromhex(p["pub"])] for p in spec["parties"]],
            [spec["index"]["start"], spec["index"]["hours"], spec["index"]["stations"], spec["index"]["products"]]]
    return hashlib.sha256(cbor2.dumps(body, canonical=True)).digest()


# ---------------------------------------------------------------------------- counting and masking
def count_cells(bo, led, spec):
    """This operator's passages per cell: (list of n ints, number of OPEN passages in the round's
    window that fall outside the index: unknown station or product, or an unissued credential)."""
    index = spec["index"]
    t0, t1 = index["start"], index["start"] + index["hours"] * HOUR
    spos = {s: i for i, s in enumerate(index["stations"])}
    ppos = {p: i for i, p in enumerate(index["products"])}
    vec = [0] * n_cells(index)
    outside = 0
    products = {}
    for r in led.db.rows("SELECT gate, t, cti, station FROM ledger_records WHERE decision = 'OPEN' AND t >= ? AND t < ?",
                         (t0, t1)):
        cti = bytes(r["cti"]) if r["cti"] is not None else None
        if cti not in products:
            cred = bo.credential(cti) if cti else None
            products[cti] = cred["product"] if cred else None
        s = spos.get(stations.record_station(r["gate"], r["station"]))
        p = ppos.get(products[cti])
        if s is None or p is None:
            outside += 1
            continue
        vec[cell_of(index, s, (r["t"] - t0) // HOUR, p)] += 1
    return vec, outside


def pair_key(priv, peer_pub65, digest) -> bytes:
    """k_ij: the same 32 bytes for both parties of a pair, different in every round."""
    mine = keys.pub_bytes(priv)
    shared = priv.exchange(ec.ECDH(), keys.pub_from_bytes(peer_pub65))
    lo, hi = sorted((mine, bytes(peer_pub65)))
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=digest,
                info=MASK_INFO + digest + lo + hi).derive(shared)


def prf_cells(key, n) -> tuple:
    """n pseudo-random uint64 values: AES-256-CTR keystream under `key` (fresh per round and pair)."""
    enc = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor()
    return struct.unpack("<%dQ" % n, enc.update(bytes(8 * n)) + enc.finalize())


def mask_vector(priv, spec) -> list:
    """This party's mask: sum over the other parties of +/- PRF(k_ij), per cell, mod 2^64."""
    digest = round_digest(spec)
    mine = keys.pub_bytes(priv)
    n = n_cells(spec["index"])
    pubs = [bytes.fromhex(p["pub"]) for p in spec["parties"]]
    if mine not in pubs:
        raise StatsError("this back office's stats key is not a party of round %s" % spec["round"])
    out = [0] * n
    for pub in pubs:
        if pub == mine:
            continue
        stream = prf_cells(pair_key(priv, pub, digest), n)
        if mine < pub:
            out = [(a + b) % MOD for a, b in zip(out, stream)]
        else:
            out = [(a - b) % MOD for a, b in zip(out, stream)]
    return out


def masked_vector(counts, mask) -> bytes:
    return struct.pack("<%dQ" % len(counts), *[(c + m) % MOD for c, m in zip(counts, mask)])


def submit(bo, led, spec, now=None) -> bytes:
    """This party's signed submission for `spec` (COSE_Sign1 bytes). Stored: asked again for the
    same round, the same bytes come back; a round id already used with another definition is
    refused (the same masks over different data would show the difference)."""
    check_round(spec)
    digest = round_digest(spec)
    old = led.db.one("SELECT digest, submission FROM stats_submissions WHERE round_id = ?", (spec["round"],))
    if old is not None:
        if bytes(old["digest"]) != digest:
            raise StatsError("round id %s was already used with another round definition; masks are never "
                             "reused: pick a new round id" % spec["round"])
        return bytes(old["submission"])
    priv = party_key(bo)
    counts, _ = count_cells(bo, led, spec)
    vec = masked_vector(counts, mask_vector(priv, spec))
    pub = keys.pub_bytes(priv)
    payload = cbor2.dumps({S_ROUND: spec["round"], S_DIGEST: digest, S_PARTY: pub, S_CELLS: len(counts),
                           S_VECTOR: vec, S_CREATED: _now(now)})
    sub = formats.sign1(priv, {formats.H_ALG: formats.ALG_ES256, formats.H_KID: keys.kid_of(pub)}, payload)
    led.db.execute("INSERT INTO stats_submissions (round_id, digest, submission, created) VALUES (?, ?, ?, ?)",
                   (spec["round"], digest, sub, _now(now)))
    led.db.commit()
    return sub


# ---------------------------------------------------------------------------- aggregation
def open_submission(spec, sub) -> dict:
    """Verify one submission against the round: signature by a listed party, round id, digest,
    length. Returns {"party": name, "vector": bytes, "hash": SHA-256 of the submission}."""
    try:
        _, prot, _, payload = formats.split_sign1(sub, "submission")
        m = formats.decode_map(payload, "submission")
    except ValueError as e:
        raise StatsError(str(e)) from None
    pub = m.get(S_PARTY)
    party = next((p for p in spec["parties"] if isinstance(pub, bytes) and bytes.fromhex(p["pub"]) == pub), None)
    if party is None:
        raise StatsError("submission from a key that is not a party of round %s" % spec["round"])
    try:
        formats.cwt_verify(sub, keys.pub_from_bytes(pub), prot.get(formats.H_KID), "submission")
    except ValueError:
        raise StatsError("submission of party %s: signature does not verify (tampered)" % party["name"]) from None
    if m.get(S_ROUND) != spec["round"] or m.get(S_DIGEST) != round_digest(spec):
        raise StatsError("submission of party %s is for round %r, not this round %s (replayed or wrong round)"
                         % (party["name"], m.get(S_ROUND), spec["round"]))
    n = n_cells(spec["index"])
    vec = m.get(S_VECTOR)
    if m.get(S_CELLS) != n or not isinstance(vec, bytes) or len(vec) != 8 * n:
        raise StatsError("submission of party %s does not have the round's %d cells" % (party["name"], n))
    return {"party": party["name"], "vector": vec, "hash": hashlib.sha256(bytes(sub)).digest()}


def aggregate(led, spec, submissions, min_count=0, now=None) -> dict:
    """Verify and sum the parties' submissions (list of bytes). Returns the published totals:
    {"round", "digest", "parties", "index", "cells": [{"station","hour","product","count"}], "total"}.
    A cell with 0 < count < min_count is published as None ("suppressed").

    Raises StatsError for a bad, replayed or duplicate submission (nothing recorded: the party can
    send its stored submission again) and RoundIncomplete when a party is missing (the round is
    marked failed and can never be unmasked; re-run under a new round id)."""
    check_round(spec)
    digest = round_digest(spec)
    rid = spec["round"]
    row = led.db.one("SELECT digest, status, detail FROM stats_rounds WHERE round_id = ?", (rid,))
    if row is not None:
        if bytes(row["digest"]) != digest:
            raise StatsError("round id %s was already used for another round definition; use a new round id" % rid)
        raise StatsError("round %s is already %s (%s); re-run under a new round id" % (rid, row["status"], row["detail"]))
    got = {}
    for sub in submissions:
        s = open_submission(spec, sub)
        if led.db.one("SELECT round_id FROM stats_seen WHERE sub_hash = ?", (s["hash"],)):
            raise StatsError("submission of party %s was already used (replayed)" % s["party"])
        if s["party"] in got:
            raise StatsError("a second submission from party %s (replayed or duplicate)" % s["party"])
        got[s["party"]] = s
    missing = [p["name"] for p in spec["parties"] if p["name"] not in got]
    if missing:
        detail = "no submission from %s" % ", ".join(missing)
        led.db.execute("INSERT INTO stats_rounds (round_id, digest, status, detail, totals, t) VALUES (?, ?, ?, ?, NULL, ?)",
                       (rid, digest, "failed", detail, _now(now)))
        led.db.commit()
        raise RoundIncomplete("round %s failed: %s; nothing was unmasked. Re-run with the remaining parties "
                              "under a new round id" % (rid, detail))
    n = n_cells(spec["index"])
    totals = [0] * n
    for s in got.values():
        totals = [(a + b) % MOD for a, b in zip(totals, struct.unpack("<%dQ" % n, s["vector"]))]
    if any(t >= SANE_MAX for t in totals):
        led.db.execute("INSERT INTO stats_rounds (round_id, digest, status, detail, totals, t) VALUES (?, ?, ?, ?, NULL, ?)",
                       (rid, digest, "failed", "masks did not cancel", _now(now)))
        led.db.commit()
        raise StatsError("round %s: the masks did not cancel (a party masked for another party list?); "
                         "nothing published" % rid)
    cells = []
    for c, v in enumerate(totals):
        d = cell_label(spec["index"], c)
        d["count"] = None if 0 < v < min_count else v
        cells.append(d)
    out = {"round": rid, "digest": digest.hex(), "parties": [p["name"] for p in spec["parties"]],
           "index": spec["index"], "min_count": min_count, "cells": cells,
           "total": sum(c["count"] or 0 for c in cells), "suppressed": sum(1 for c in cells if c["count"] is None)}
    try:
        for s in got.values():
            led.db.execute("INSERT INTO stats_seen (sub_hash, round_id) VALUES (?, ?)", (s["hash"], rid))
        led.db.execute("INSERT INTO stats_rounds (round_id, digest, status, detail, totals, t) VALUES (?, ?, ?, ?, ?, ?)",
                       (rid, digest, "published", "%d parties" % len(got), json.dumps(out), _now(now)))
        led.db.commit()
    except BaseException:
        led.db.rollback()
        raise
    return out
