"""Receipts and joint statistics (host side): prints one JSON object.

    python bench/privacy_bench.py [--cells 100000] [--receipts 300] [--pg postgresql://...]

stats: one round of three parties over N cells: masking (ECDH + HKDF + AES-256-CTR per pair) per
  party, submission size, verification and summation at the aggregator; reference in the same run:
  the same masks from HMAC-SHA256 per cell (the obvious alternative PRF), and a plain sum of the
  unmasked vectors.
receipts: issue R receipts (one trip each) on SQLite (and PostgreSQL with --pg or
  OFFGATE_TEST_PG_URL): receipts/s; verifications/s with the keys alone and against the back
  office (consistency + ledger); bundle bytes. Proof sizes (hashes) for trees of 10^3..10^6 leaves;
  merklelog's append + inclusion proof against pymerkle's on the same entries (reference).
"""
import argparse
import hashlib
import hmac
import json
import os
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "support"))

from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

from offgate_host.wire import keys, merklelog  # noqa: E402
from offgate_host.ledger import receipts, stats, stations
from offgate_host.backoffice.backoffice import BackOffice  # noqa: E402
from offgate_host.wire.formats import parse_credential  # noqa: E402
from offgate_host.ledger.ledger import ZERO32, Ledger, chain_next  # noqa: E402
from offgate_host.wallet import Wallet  # noqa: E402


def _t(fn, reps=1):
    t0 = time.perf_counter()
    for _ in range(reps):
        out = fn()
    return (time.perf_counter() - t0) / reps, out


def bench_stats(n_cells):
    privs = [ec.derive_private_key(k, ec.SECP256R1()) for k in (11, 22, 33)]
    parties = [{"name": "p%d" % i, "pub": keys.pub_bytes(p).hex()} for i, p in enumerate(privs)]
    stations_n = max(1, n_cells // (24 * 4))
    spec = stats.new_round("bench", parties, {"start": 1764547200, "hours": 24, "products": [1, 2, 3, 4],
                                              "stations": ["s%d" % i for i in range(stations_n)]})
    n = stats.n_cells(spec["index"])
    counts = [(c * 7919) % 50 for c in range(n)]
    mask_s, mask = _t(lambda: stats.mask_vector(privs[0], spec))
    digest = stats.round_digest(spec)

    def hmac_mask():   # the reference PRF: HMAC-SHA256(k_ij, cell) per cell, same pairs and signs
        mine = keys.pub_bytes(privs[0])
        out = [0] * n
        for p in parties[1:]:
            k = stats.pair_key(privs[0], bytes.fromhex(p["pub"]), digest)
            sign = 1 if mine < bytes.fromhex(p["pub"]) else -1
            for c in range(n):
                v = int.from_bytes(hmac.new(k, struct.pack(">I", c), hashlib.sha256).digest()[:8], "little")
                out[c] = (out[c] + sign * v) % stats.MOD
        return out
    hmac_s, _ = _t(hmac_mask)
    subs = []
    for p in privs:
        vec = stats.masked_vector(counts, stats.mask_vector(p, spec))
        payload = {stats.S_ROUND: spec["round"], stats.S_DIGEST: digest, stats.S_PARTY: keys.pub_bytes(p),
                   stats.S_CELLS: n, stats.S_VECTOR: vec, stats.S_CREATED: 0}
        import cbor2
        from offgate_host.wire import formats
        subs.append(formats.sign1(p, {formats.H_ALG: formats.ALG_ES256, formats.H_KID: keys.kid_of(keys.pub_bytes(p))},
                                   cbor2.dumps(payload)))
    with tempfile.TemporaryDirectory() as d:
        led = Ledger(str(Path(d) / "agg.db"))
        agg_s, res = _t(lambda: stats.aggregate(led, spec, subs))
        led.close()
    assert [c["count"] for c in res["cells"]] == [3 * c for c in counts]
    vecs = [[(c + i) for c in counts] for i in range(3)]
    plain_s, _ = _t(lambda: [sum(v) for v in zip(*vecs)])
    return {"parties": 3, "cells": n, "mask_one_party_s": round(mask_s, 3),
            "mask_hmac_reference_s": round(hmac_s, 3), "submission_bytes": len(subs[0]),
            "aggregate_s": round(agg_s, 3), "plain_sum_reference_s": round(plain_s, 4),
            "method": "mask = the two pairwise PRF streams of one party (ECDH, HKDF, AES-256-CTR); aggregate = "
                      "verify 3 signed submissions, unpack, sum mod 2^64, label cells, store the round (SQLite)"}


def _receipt_world(work, url, n_trips):
    bo = BackOffice(work / "bo")
    bo.init_issuer("bench", valid_from=int(time.time()) - 86400)
    led = Ledger(url) if url else Ledger.for_backoffice(bo)
    bo.create_account("a", balance=10 ** 9)
    w = Wallet.create(work / "w.json")
    now = int(time.time())
    w.set_credential(bo.issue_credential("a", w.pub65, zones=[1], valid_seconds=86400, now=now - 3600))
    receipts.register_enc_key(bo, w.pub65, w.enc_pub65)
    cti = parse_credential(w.credential)["cti"]
    led.enroll_gate(1, b"\x04" + bytes(64))
    stations.set_station(led, 1, "Rynek")
    prev, recs = ZERO32, []
    for i in range(n_trips):
        r = {"seq": i + 1, "t": now - 3000 + i, "cti": cti, "ctr": i + 1, "decision": "OPEN", "reason": 0, "missed": 0}
        r["chain"] = prev = chain_next(prev, r)
        recs.append(r)
    led.ingest(1, recs)
    led.settle(bo, now=now)
    return bo, led, w, now


def bench_receipts(n, url, label):
    with tempfile.TemporaryDirectory() as d:
        bo, led, w, now = _receipt_world(Path(d), url, n)
        reqs = [receipts.make_request(w.key, parse_credential(w.credential)["cti"], trip=(1, i + 1), now=now)
                for i in range(n)]
        t0 = time.perf_counter()
        bundles = [receipts.issue(bo, led, r, now=now) for r in reqs]
        issue_s = time.perf_counter() - t0
        k = receipts.public_keys(bo, led)
        rp, lp = bytes.fromhex(k["receipt_pub"]), bytes.fromhex(k["log_pub"])
        sample = bundles[:: max(1, n // 30)]
        off_s, _ = _t(lambda: [receipts.verify_bundle(b, rp, lp, w.enc_key) for b in sample])
        full_s, _ = _t(lambda: [receipts.verify_bundle(b, rp, lp, w.enc_key, led) for b in sample[:10]])
        audit_s, a = _t(lambda: receipts.audit(bo, led))
        assert a["problems"] == []
        out = {"db": label, "receipts": n, "issued_per_s": round(n / issue_s, 1),
               "verify_keys_only_per_s": round(len(sample) / off_s, 1),
               "verify_against_back_office_per_s": round(10 / full_s, 1),
               "audit_s": round(audit_s, 3), "bundle_bytes_median": int(statistics.median(len(b) for b in bundles))}
        led.close()
        bo.close()
    return out


def bench_proofs():
    from pymerkle import InmemoryTree
    sizes = []
    for n in (1000, 10000, 100000, 1000000):
        leaves = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(n)]
        inc = len(merklelog.inclusion_path(n // 3, leaves))
        con = len(merklelog.consistency_proof(n // 2 + 1, leaves))
        sizes.append({"tree_size": n, "inclusion_hashes": inc, "inclusion_bytes": 32 * inc,
                      "consistency_hashes": con, "consistency_bytes": 32 * con})
    n = 20000
    entries = [i.to_bytes(8, "big") for i in range(n)]
    t0 = time.perf_counter()
    f = []
    for e in entries:
        f = receipts._push(f, merklelog.leaf_hash(e))
    root = receipts._frontier_root(f)
    ours_append = time.perf_counter() - t0
    lh = [merklelog.leaf_hash(e) for e in entries]
    ours_proof, _ = _t(lambda: merklelog.inclusion_path(n // 3, lh), 3)
    ref = InmemoryTree(algorithm="sha256")
    t0 = time.perf_counter()
    for e in entries:
        ref.append_entry(e)
    ref_append = time.perf_counter() - t0
    assert ref.get_root(n) == root
    ref_proof, _ = _t(lambda: ref.prove_inclusion(n // 3 + 1, n), 3)
    return {"sizes": sizes, "compare_entries": n,
            "merklelog_append_per_s": round(n / ours_append), "pymerkle_append_per_s": round(n / ref_append),
            "merklelog_inclusion_proof_ms": round(1000 * ours_proof, 2),
            "pymerkle_inclusion_proof_ms": round(1000 * ref_proof, 2),
            "method": "merklelog append = the log's right-edge update (what issue() does); its proofs are computed "
                      "from the full list of leaf hashes (O(n)); pymerkle keeps its whole tree in memory"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", type=int, default=100000)
    ap.add_argument("--receipts", type=int, default=300)
    ap.add_argument("--pg", default=os.environ.get("OFFGATE_TEST_PG_URL"))
    a = ap.parse_args()
    out = {"stats": bench_stats(a.cells), "receipts": [bench_receipts(a.receipts, None, "sqlite")]}
    if a.pg:
        os.environ["OFFGATE_TEST_PG_URL"] = a.pg
        from ledgerhelp import _pg_url_with_schema
        out["receipts"].append(bench_receipts(a.receipts, _pg_url_with_schema()[0], "postgresql"))
    out["proofs"] = bench_proofs()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
