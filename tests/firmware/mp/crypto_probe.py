# Host tests call the firmware's crypto through this module (via oracle.py): each function
# returns plain values (bytes/str/lists) so results travel back as JSON.
from offgate.crypto import aesccm, devicekey, hkdf
from offgate.crypto.hmac256 import hmac_sha256


def hmac(key, msg):
    return hmac_sha256(key, msg)


def hkdf_okm(ikm, salt, info, size):
    """[len, SHA-256] of the OKM: up to 8160 bytes would strain the oracle's JSON reply."""
    import hashlib
    try:
        okm = hkdf.hkdf_sha256(ikm, salt, info, size)
        return [len(okm), hashlib.sha256(okm).digest()]
    except ValueError as e:
        return "error: %s" % e


def ccm(key, nonce, aad, msg, ct_tag, tag_len):
    """[encrypt(msg) or error, decrypt(ct_tag) or error]."""
    try:
        enc = aesccm.encrypt(key, nonce, msg, aad, tag_len)
    except ValueError as e:
        enc = "error: %s" % e
    try:
        dec = aesccm.decrypt(key, nonce, ct_tag, aad, tag_len)
    except ValueError as e:
        dec = "error: %s" % e
    return [enc, dec]


def ecdh(d_bytes, pub):
    try:
        return devicekey.DeviceKey(int.from_bytes(d_bytes, "big")).ecdh(pub)
    except ValueError as e:
        return "error: %s" % e


def sign(d_bytes, msg, hedge):
    return devicekey.DeviceKey(int.from_bytes(d_bytes, "big")).sign(msg, hedge=bool(hedge))


def public(d_bytes):
    return devicekey.DeviceKey(int.from_bytes(d_bytes, "big")).public_bytes()


def make_batch(root, d_bytes, bo_pub, n, max_records, ack_to, eph_bytes, hedge):
    """Log n scans in a fresh OpLog at root, acknowledge up to ack_to, build and seal a batch.
    Writes root + ".plain" and root + ".sealed" (large results would strain the oracle's JSON
    reply on a 128k heap, not the firmware); returns [gate_pub, acked chain, head chain]."""
    import gc
    from offgate.sync import batch
    from offgate.log.oplog import OpLog
    lg = OpLog(root, 1024, 8, "refuse")
    lg.recover()
    for i in range(n):
        if i % 4 == 3:
            lg.append(1800000000 + 600 * i, None, None, "DENY", 13)
        else:
            lg.append(1800000000 + 600 * i, bytes([i & 255, 1, 2, 3, 4, 5, 6, 7]), i + 1,
                      "OPEN" if i % 4 else "DENY", 0 if i % 4 else 43)
    if ack_to:
        assert lg.acknowledge(ack_to, lg.read(ack_to, 1)[0]["chain"])
    dk = devicekey.DeviceKey(int.from_bytes(d_bytes, "big"))
    plain = batch.build(lg, 7, {"now": 1800000000, "offset": 0, "synced": True}, max_records)
    lg.close()
    gc.collect()
    eph = devicekey.DeviceKey(int.from_bytes(eph_bytes, "big")) if eph_bytes else None
    sealed = batch.seal(plain, dk, bo_pub, eph, bool(hedge))
    with open(root + ".plain", "wb") as f:
        f.write(plain)
    plain = None
    with open(root + ".sealed", "wb") as f:
        f.write(sealed)
    return [dk.public_bytes(), lg.acked()[1], lg.head()[1]]


def sha256(msg):
    import hashlib
    return hashlib.sha256(msg).digest()


def hkdf_full(ikm, salt, info, size):
    """The OKM itself (small sizes only: RFC 5869's test cases)."""
    return hkdf.hkdf_sha256(ikm, salt, info, size)
