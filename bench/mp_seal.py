# MicroPython driver for bench/sync_heap.py: the gate side of K 200-record pulls (batch.build +
# batch.seal: signature, ephemeral key, ECDH, AES-CCM) from an operation log prefilled on the host.
#   micropython mp_seal.py LOGDIR MODE K
# MODE: session (fast path, one ephemeral key + ECDH per session, the batch unsigned: what the gate
# does for most pulls once the session's key is bound by a signed seal), session_signed (the same,
# every batch signed: the session's first, every batch.SIGN_EVERY-th and the final empty one),
# build (batch.build alone), per_seal (fast path, a fresh ephemeral key + ECDH per batch, signed),
# bigint (per batch, big-int path: before issue 12), none (setup only: the baseline). Setup (all
# modes) seals one 1-record batch, which makes the session's ephemeral key.
# Prints one JSON line {"ok": pulls done, "bytes": sealed size}.
import gc
import json
import sys

from offgate.crypto import devicekey, p256fast
from offgate.sync import batch
from offgate.log.oplog import OpLog

logdir, mode, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
log = OpLog(logdir + "/oplog")  # the default geometry, as tests/backlog.py prefills it
log.recover()
key = devicekey.DeviceKey(0x5EED5EED5EED)
bo = devicekey.DeviceKey(0xB0B0B0B0).public_bytes()
key.public_bytes()
p256fast.mul_g(1)  # G's comb table loaded in every mode (the gate has it for its scans)
ctx = []
batch.seal(batch.build(log, 1, {}, 1), key, bo, ctx=ctx)
ctx[3] = True  # the back office acknowledged a batch of this session (offgate.sync.ops.op_ack)
p256fast.ENABLED = mode != "bigint"  # after the setup, which is the same in every mode
done = size = 0
for _ in range(k if mode != "none" else 0):
    gc.collect()
    p = batch.build(log, 1, {}, 200)
    if mode == "build":
        sealed = p
    else:
        sealed = batch.seal(p, key, bo, ctx=ctx if mode.startswith("session") else None,
                            sign=mode != "session")
    p = None
    size = len(sealed)
    sealed = None
    done += 1
gc.collect()
print(json.dumps({"ok": done, "bytes": size}))
