# Host tests drive the firmware's decision path through this module (via oracle.py):
# setup() builds a verifier from trust/deny bytes in a scratch state dir; decide() returns the reason name.
import os
from offgate import reasons
from offgate.policy import trust, denylist, replay, verifier

_v = None
_dir = "/tmp"


def _write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def setup(state_dir, trust_bytes, deny_bytes, gate_id, zone, max_age_s, skew_s, cache_size):
    global _v, _dir
    _dir = state_dir
    _write(state_dir + "/deny.bin", deny_bytes)
    try:
        os.remove(state_dir + "/replay.log")
    except OSError:
        pass
    d = denylist.DenyList(state_dir + "/deny.bin")
    r = replay.ReplayGuard(state_dir + "/replay.log", 64)
    _v = verifier.Verifier(trust.TrustStore.from_bytes(trust_bytes), d, r, gate_id, zone,
                           max_age_s, skew_s, cache_size)
    return True


def decide(line, now):
    return reasons.name(_v.decide(line, now).reason)


def decide_and_commit(line, now):
    """Decide and, if it opens, record the counter as the gate would."""
    d = _v.decide(line, now)
    if d.opened:
        _v.replay.commit(d.cred.cti, d.ctr, d.cred.exp, now)
    return reasons.name(d.reason)


def cache_stats():
    return [len(_v.cache), _v.cache.hits, _v.cache.misses]
