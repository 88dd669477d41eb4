"""merklelog.py against the Certificate Transparency test vectors (RFC 6962 trees, the same hashing
as RFC 9162 §2.1: certificate-transparency-go merkle/log_verifier_test.go and ct/crypto/merkle_test.py),
and against an independent library, pymerkle: same roots, same audit paths."""
import random

import pytest
from pymerkle import InmemoryTree

from offgate_host.wire import merklelog as ml

LEAVES = [bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                                     "606162636465666768696a6b6c6d6e6f")]
ROOTS = ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
         "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
         "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
         "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
         "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
         "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
         "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
         "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"]
# (leaf index from 0, tree size, path)
INCLUSION = [
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (0, 1, []),
]
CONSISTENCY = [
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (3, 8, ["0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
            "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (1, 1, []),
]
LH = [ml.leaf_hash(d) for d in LEAVES]
H = bytes.fromhex


def test_roots_match_the_ct_vectors():
    assert ml.root([]).hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert LH[1].hex() == "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"
    assert [ml.root(LH[:n]).hex() for n in range(1, 9)] == ROOTS


@pytest.mark.parametrize("m,n,path", INCLUSION)
def test_inclusion_vectors(m, n, path):
    assert [p.hex() for p in ml.inclusion_path(m, LH[:n])] == path
    proof = [H(p) for p in path]
    assert ml.verify_inclusion(m, n, LH[m], proof, H(ROOTS[n - 1]))
    # the CT verifier's negative cases: wrong index, size, leaf, root, and altered proofs
    assert not ml.verify_inclusion(m + 1, n, LH[m], proof, H(ROOTS[n - 1]))
    assert not ml.verify_inclusion(m ^ 2, n, LH[m], proof, H(ROOTS[n - 1])) or m ^ 2 == m
    assert not ml.verify_inclusion(m, n * 2, LH[m], proof, H(ROOTS[n - 1]))
    assert not ml.verify_inclusion(m, n, ml.leaf_hash(b"WrongLeaf"), proof, H(ROOTS[n - 1]))
    assert not ml.verify_inclusion(m, n, LH[m], proof, ml.EMPTY_ROOT)
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = ml.EMPTY_ROOT
        assert not ml.verify_inclusion(m, n, LH[m], bad, H(ROOTS[n - 1]))
    assert not ml.verify_inclusion(m, n, LH[m], proof + [H(ROOTS[n - 1])], H(ROOTS[n - 1]))
    assert not ml.verify_inclusion(m, n, LH[m], [H(ROOTS[n - 1])] + proof, H(ROOTS[n - 1]))
    if proof:
        assert not ml.verify_inclusion(m, n, LH[m], proof[:-1], H(ROOTS[n - 1]))
    assert not ml.verify_inclusion(m, n, LH[m], proof + [b"short"], H(ROOTS[n - 1]))


@pytest.mark.parametrize("m,n,proof", CONSISTENCY)
def test_consistency_vectors(m, n, proof):
    assert [p.hex() for p in ml.consistency_proof(m, LH[:n])] == proof
    p = [H(x) for x in proof]
    r1, r2 = H(ROOTS[m - 1]), H(ROOTS[n - 1])
    assert ml.verify_consistency(m, n, r1, r2, p)
    if not p:
        return
    assert not ml.verify_consistency(m - 1, n, r1, r2, p)
    assert not ml.verify_consistency(m + 1, n, r1, r2, p)
    assert not ml.verify_consistency(m, n * 2, r1, r2, p)
    assert not ml.verify_consistency(m, n, r2, r1, p)
    assert not ml.verify_consistency(m, n, ml.EMPTY_ROOT, r2, p)
    assert not ml.verify_consistency(m, n, r1, r2, [])
    for i in range(len(p)):
        bad = list(p)
        bad[i] = ml.EMPTY_ROOT
        assert not ml.verify_consistency(m, n, r1, r2, bad)
    assert not ml.verify_consistency(m, n, r1, r2, p + [r1])
    assert not ml.verify_consistency(m, n, r1, r2, p[:-1])
    assert not ml.verify_consistency(m, n, r1, r2, [p[0]] + p)


def test_trivial_consistency_cases():
    r = H(ROOTS[0])
    assert ml.verify_consistency(0, 0, ml.EMPTY_ROOT, ml.EMPTY_ROOT, [])
    assert ml.verify_consistency(0, 1, ml.EMPTY_ROOT, r, [])
    assert not ml.verify_consistency(1, 0, r, ml.EMPTY_ROOT, [])           # time travel
    assert not ml.verify_consistency(1, 1, ml.EMPTY_ROOT, r, [])           # roots differ
    assert not ml.verify_consistency(1, 1, r, r, [ml.EMPTY_ROOT])          # proof not empty
    assert not ml.verify_consistency(1, 2, r, H(ROOTS[1]), [])             # empty proof


def test_every_proof_verifies_and_agrees_with_pymerkle():
    rnd = random.Random(9162)
    entries = [rnd.randbytes(rnd.randrange(0, 40)) for _ in range(70)]
    lh = [ml.leaf_hash(e) for e in entries]
    ref = InmemoryTree(algorithm="sha256")
    for e in entries:
        ref.append_entry(e)
    for n in range(1, len(entries) + 1):
        r = ml.root(lh[:n])
        assert r == ref.get_root(n)
        for m in range(n):
            path = ml.inclusion_path(m, lh[:n])
            assert ml.verify_inclusion(m, n, lh[m], path, r)
            if n in (1, 2, 7, 32, 33, 70):
                assert path == ref.prove_inclusion(m + 1, n).path[1:]   # pymerkle: 1-based, leaf first
        for m in range(1, n + 1):
            assert ml.verify_consistency(m, n, ml.root(lh[:m]), r, ml.consistency_proof(m, lh[:n]))
    with pytest.raises(ValueError):
        ml.inclusion_path(3, lh[:3])
    with pytest.raises(ValueError):
        ml.consistency_proof(0, lh[:3])
