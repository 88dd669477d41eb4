"""RFC 9162 Merkle tree hashing and proofs (Certificate Transparency v2, §2.1), exactly as written.

Own code rather than a library: pymerkle (PyPI) builds the same tree but proves in its own format
(not the RFC's audit paths), has no PostgreSQL store and says of itself that it awaits a security
audit. These few functions follow RFC 9162 §2.1.1 (MTH), §2.1.3 (inclusion: PATH and the
verification algorithm of §2.1.3.2) and §2.1.4 (consistency: PROOF/SUBPROOF and §2.1.4.2); the
tests check them against the Certificate Transparency test vectors (RFC 6962 trees) and against
pymerkle's roots and paths.

Everything works on *leaf hashes* (32 bytes, `leaf_hash(entry)`), so a log keeps only those.
Indexes count from 0. Functions raise ValueError on bad arguments; the verify functions return
False, never raise, on a malformed or wrong proof.
"""
import hashlib

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(entry: bytes) -> bytes:
    """MTH({d}) = SHA-256(0x00 || d)."""
    return hashlib.sha256(b"\x00" + bytes(entry)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n):
    """k: the largest power of two smaller than n (n > 1)."""
    k = 1
    while k << 1 < n:
        k <<= 1
    return k


def root(leaves) -> bytes:
    """MTH(D[n]) over a list of leaf hashes (RFC 9162 §2.1.1)."""
    n = len(leaves)
    if n == 0:
        return EMPTY_ROOT
    # bottom-up, pairing left to right and carrying an odd last node up: the same tree as the
    # RFC's recursive split (a left subtree is always the largest power of two)
    level = list(leaves)
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def inclusion_path(m, leaves) -> list:
    """PATH(m, D[n]) (RFC 9162 §2.1.3.1): the audit path of leaf m, from the leaf upwards."""
    n = len(leaves)
    if not 0 <= m < n:
        raise ValueError("leaf index %d outside a tree of size %d" % (m, n))
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return inclusion_path(m, leaves[:k]) + [root(leaves[k:])]
    return inclusion_path(m - k, leaves[k:]) + [root(leaves[:k])]


def consistency_proof(m, leaves) -> list:
    """PROOF(m, D[n]) (RFC 9162 §2.1.4.1) for 0 < m <= n; empty when m == n."""
    n = len(leaves)
    if not 0 < m <= n:
        raise ValueError("consistency needs 0 < first size (%d) <= second size (%d)" % (m, n))
    return _subproof(m, leaves, True)


def _subproof(m, d, b):
    n = len(d)
    if m == n:
        return [] if b else [root(d)]
    k = _split(n)
    if m <= k:
        return _subproof(m, d[:k], b) + [root(d[k:])]
    return _subproof(m - k, d[k:], False) + [root(d[:k])]


def _ok_hash(h):
    return isinstance(h, (bytes, bytearray)) and len(h) == 32


def root_from_inclusion(leaf_index, tree_size, leaf, path):
    """The root an inclusion path leads to (RFC 9162 §2.1.3.2 steps 1-5), or None if malformed."""
    if not (isinstance(leaf_index, int) and isinstance(tree_size, int) and 0 <= leaf_index < tree_size):
        return None
    if not _ok_hash(leaf) or not isinstance(path, (list, tuple)) or not all(_ok_hash(p) for p in path):
        return None
    fn, sn, r = leaf_index, tree_size - 1, bytes(leaf)
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(bytes(p), r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, bytes(p))
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def verify_inclusion(leaf_index, tree_size, leaf, path, root_hash) -> bool:
    """RFC 9162 §2.1.3.2: does `path` prove leaf hash `leaf` at `leaf_index` in the tree of
    `tree_size` leaves whose root is `root_hash`?"""
    r = root_from_inclusion(leaf_index, tree_size, leaf, path)
    return r is not None and _ok_hash(root_hash) and r == bytes(root_hash)


def verify_consistency(first, second, first_root, second_root, proof) -> bool:
    """RFC 9162 §2.1.4.2: is the tree of size `second` with root `second_root` an append-only
    extension of the tree of size `first` with root `first_root`?"""
    if not (isinstance(first, int) and isinstance(second, int) and 0 <= first <= second):
        return False
    if not _ok_hash(first_root) or not _ok_hash(second_root):
        return False
    if not isinstance(proof, (list, tuple)) or not all(_ok_hash(p) for p in proof):
        return False
    first_root, second_root = bytes(first_root), bytes(second_root)
    if first == second:
        return not proof and first_root == second_root
    if first == 0:
        return not proof  # the empty tree is a prefix of every tree
    if not proof:
        return False
    path = [bytes(p) for p in proof]
    # step 1: if first is an exact power of 2, prepend first_root
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    # step 3: while LSB(fn) is set, shift fn and sn right
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_root and sr == second_root and sn == 0
