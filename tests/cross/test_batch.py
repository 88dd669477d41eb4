"""Batch summaries: the firmware builds and seals on MicroPython (128k heap), the host opens them
with an independent implementation (offgate_host.sync.batch: cryptography + cbor2)."""
import hashlib
import struct

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from offgate_host.sync.batch import BatchError, open_batch


@pytest.fixture(scope="module")
def mp(mp_isolated):
    """The crypto and batch modules this loads stay out of the session-wide oracle."""
    return mp_isolated


GATE_D = bytes.fromhex("C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721")
BO_D = bytes.fromhex("4f1b6e0a5c3a2d9e8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f51")
EPH_D = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c762e7160f38b4da56a784d9045190cfe")


def key(d):
    return ec.derive_private_key(int.from_bytes(d, "big"), ec.SECP256R1())


def pub65(k):
    return k.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


def make(mp, root, *args):
    root = str(root)
    gate_pub, achain, hchain = mp.call("crypto_probe.make_batch", root, *args)
    with open(root + ".plain", "rb") as f:
        plain = f.read()
    with open(root + ".sealed", "rb") as f:
        sealed = f.read()
    return plain, sealed, gate_pub, achain, hchain


def host_chain(prev, recs):
    """The oplog chain, recomputed on the host from the batch rows (docs/oplog.md layout)."""
    c = prev
    for seq, t, cti, ctr, op, reason, missed in recs:
        body = bytes([0x4F, op, reason, 1 if cti is not None else 0]) + struct.pack(">III", seq, t, ctr)
        body += (cti if cti is not None else bytes(8)) + struct.pack(">I", missed)
        c = hashlib.sha256(c + body).digest()
    return c


@pytest.fixture(scope="module")
def sealed_batch(mp, tmp_path_factory):
    bo = key(BO_D)
    root = str(tmp_path_factory.mktemp("batch") / "log")
    plain, sealed, gate_pub, achain, hchain = make(mp, root, GATE_D, pub65(bo), 40, 30, 5, None, 1)
    return bo, plain, sealed, gate_pub, achain, hchain


def test_firmware_seals_host_opens(sealed_batch):
    bo, plain, sealed, gate_pub, achain, hchain = sealed_batch
    assert gate_pub == pub65(key(GATE_D))
    b = open_batch(sealed, bo, gate_pub)
    assert b == cbor2.loads(plain)
    assert b["gate"] == 7 and b["v"] == 1 and b["clock"]["synced"] is True
    assert (b["from"], b["to"]) == (6, 35) and len(b["recs"]) == 30   # acked 5, max_records 30
    assert b["prev"] == achain and b["head"] == [40, hchain]
    # the chain over the rows, recomputed independently, lands on the batch's chain value
    assert host_chain(b["prev"], b["recs"]) == b["chain"]
    agg = b["agg"]
    assert agg["open"] + agg["deny"] == 30 and sum(agg["reasons"].values()) == 30
    assert sum(sum(h.values()) for h in agg["hours"].values()) == 30
    assert agg["reasons"].get(0, 0) == agg["open"]
    assert all(h % 3600 == 0 for h in agg["hours"])
    # scalar form of the back office key works too
    assert open_batch(sealed, BO_D, gate_pub) == b


def test_tampering_anywhere_is_rejected(sealed_batch):
    bo, plain, sealed, gate_pub, _, _ = sealed_batch
    positions = sorted(set(list(range(0, 200)) + list(range(200, len(sealed), 7)) + [len(sealed) - 1]))
    for i in positions:
        t = bytearray(sealed)
        t[i] ^= 0x01
        with pytest.raises(BatchError):
            open_batch(bytes(t), bo, gate_pub)
    with pytest.raises(BatchError):
        open_batch(sealed + b"\x00", bo, gate_pub)
    with pytest.raises(BatchError):
        open_batch(sealed[:-1], bo, gate_pub)


def test_wrong_keys_are_rejected(sealed_batch):
    bo, plain, sealed, gate_pub, _, _ = sealed_batch
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(BatchError):
        open_batch(sealed, other, gate_pub)         # not sealed to this back office
    with pytest.raises(BatchError):
        open_batch(sealed, bo, pub65(other))        # not this gate


def test_signature_checked_after_decryption(mp, tmp_path):
    """A batch signed by another device key (but otherwise well formed) is refused."""
    bo = key(BO_D)
    other = bytes(31) + b"\x05"
    _, sealed, other_pub, _, _ = make(mp, tmp_path / "l", other, pub65(bo),
                                         3, 10, 0, None, 1)
    assert open_batch(sealed, bo, other_pub)["to"] == 3
    with pytest.raises(BatchError):
        open_batch(sealed, bo, pub65(key(GATE_D)))


def test_large_batch_on_small_heap(mp, tmp_path):
    """100 records (a 6+ KB plaintext) build and seal within the gate's 128k heap."""
    bo = key(BO_D)
    plain, sealed, gate_pub, _, _ = make(mp, tmp_path / "l", GATE_D, pub65(bo),
                                            100, 100, 0, None, 1)
    b = open_batch(sealed, bo, gate_pub)
    assert len(b["recs"]) == 100 and host_chain(bytes(32), b["recs"]) == b["chain"]


def test_vector_reproducible(mp, tmp_path):
    """The example in docs/protocol.md "Batch summaries": fixed keys, fixed ephemeral key and a
    plain RFC 6979 signature give these exact bytes."""
    bo = key(BO_D)
    plain, sealed, gate_pub, _, _ = make(mp, tmp_path / "l", GATE_D, pub65(bo),
                                            2, 10, 0, EPH_D, 0)
    print("plain", plain.hex())
    print("sealed", sealed.hex())
    b = open_batch(sealed, bo, gate_pub)
    assert len(b["recs"]) == 2
    assert hashlib.sha256(sealed).hexdigest() == VECTOR_SHA256


VECTOR_SHA256 = "180b3648bfd507b041fd6eb48d939767a1443e748aba6ad7089cdf4adb12333a"


def test_session_seals_each_have_their_own_key_and_index():
    """One ephemeral key per sync session (batch.seal ctx): the seals under it carry 1, 2, ... in
    the protected header (label -65537), each opens with the host's independent code, and an index
    changed in transit fails authentication (it is in the AAD and the key derivation)."""
    import synchelp  # noqa: F401  (the firmware and its CPython shims on sys.path)
    from offgate.crypto import devicekey
    from offgate.sync import batch
    gate = devicekey.DeviceKey(int.from_bytes(GATE_D, "big"))
    bo = key(BO_D)
    ctx = []
    seals = [bytes(batch.seal(b"\xa1\x61\x76\x01", gate, pub65(bo), ctx=ctx)) for _ in range(3)]
    heads = [cbor2.loads(cbor2.loads(s).value[0]) for s in seals]
    assert [h[-65537] for h in heads] == [1, 2, 3]
    assert len({h[-1][-2] for h in heads}) == 1              # the same ephemeral key
    assert len(set(seals)) == 3                             # but different ciphertexts
    for s in seals:
        assert open_batch(s, bo, gate.public_bytes()) == {"v": 1}
    env = cbor2.loads(seals[1])
    hdr = cbor2.loads(env.value[0])
    hdr[-65537] = 1                                          # replayed as the first seal's number
    forged = cbor2.dumps(cbor2.CBORTag(16, [cbor2.dumps(hdr), env.value[1], env.value[2]]))
    with pytest.raises(BatchError):
        open_batch(forged, bo, gate.public_bytes())


def test_session_seal_vector():
    """docs/protocol.md "Batch summaries", per-session key and "One signature per session": the
    vector's keys, plaintext {"v": 1}; seal 1 of a session is signed with E as external_aad (binds
    the session key to the gate), seal 2 (after an ack, as offgate.sync.ops.op_ack allows) carries the bare
    plaintext; no hedging: these exact bytes, opened by the host's independent code, and the
    unsigned one only inside the session that saw the binding, never replayed."""
    import synchelp  # noqa: F401
    from offgate.crypto import devicekey
    from offgate.sync import batch
    gate = devicekey.DeviceKey(int.from_bytes(GATE_D, "big"))
    eph = devicekey.DeviceKey(int.from_bytes(EPH_D, "big"))
    bo = key(BO_D)
    ctx = []
    s1 = bytes(batch.seal(b"\xa1\x61\x76\x01", gate, pub65(bo), eph=eph, hedge=False, ctx=ctx, sign=False))
    ctx[3] = True  # what op_ack does once the back office acknowledged a batch of the session
    s2 = bytes(batch.seal(b"\xa1\x61\x76\x01", gate, pub65(bo), hedge=False, ctx=ctx, sign=False))
    print("session sealed 1", s1.hex())
    print("session sealed 2", s2.hex())
    sess = {}
    assert open_batch(s1, bo, gate.public_bytes(), session=sess) == {"v": 1}
    assert sess["signed"] and sess["bound"] == eph.public_bytes()
    assert open_batch(s2, bo, gate.public_bytes(), session=sess) == {"v": 1} and sess["signed"] is False
    with pytest.raises(BatchError, match="unsigned"):
        open_batch(s2, bo, gate.public_bytes())                  # no session bound by a signature
    with pytest.raises(BatchError, match="unsigned"):
        open_batch(s2, bo, gate.public_bytes(), session={})      # another session
    with pytest.raises(BatchError, match="index"):
        open_batch(s2, bo, gate.public_bytes(), session=sess)    # replayed in its own session
    assert open_batch(s1, bo, gate.public_bytes()) == {"v": 1}  # a signed seal opens on its own
    assert len(s2) < len(s1) - 64
    assert hashlib.sha256(s1).hexdigest() == SESSION_VECTOR_SHA256
    assert hashlib.sha256(s2).hexdigest() == SESSION_UNSIGNED_VECTOR_SHA256


SESSION_VECTOR_SHA256 = "49c21cb153ee30fee39a475925d2b52c2636f3ab70fdfe764b904016cb3facf2"
SESSION_UNSIGNED_VECTOR_SHA256 = "8fd82d6980264e70f6a23f05382c0b01c6604a86d94042d306f20149a867f0fc"
