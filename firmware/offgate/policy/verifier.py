"""The decision: one scanner line in, OPEN or DENY with a reason out.

Checks run in this order (docs/protocol.md §7), each with its own reason code:
  text → base45 → authorization code (COSE_Sign1) → credential → issuer signature (or cache)
  → credential validity (nbf/exp) → rider signature → freshness of iat → zone/gate
  → deny list → replay.
Nothing here writes: recording an accepted counter is the gate's job, done durably before the
relay moves (gate.py). Every failure is a reason, never an exception out of decide().
"""
import hashlib
from offgate.codec import base45, cbor, cose
from offgate.policy import credential
from offgate import reasons as R
from offgate.policy.credcache import CredCache

PREFIX = b"OG1:"
ES256 = -7
# Authorization code payload keys (docs/protocol.md §3)
A_CRED = 1
A_IAT = 2
A_CTR = 3
CTR_MAX = 0xFFFFFFFF


class Decision:
    __slots__ = ("reason", "cred", "ctr", "iat")

    def __init__(self, reason, cred=None, ctr=None, iat=None):
        self.reason = reason
        self.cred = cred
        self.ctr = ctr
        self.iat = iat

    @property
    def opened(self):
        return self.reason == R.OK


def _printable(line):
    for b in line:
        if b < 0x20 or b > 0x7E:
            return False
    return True


class Verifier:
    def __init__(self, trust, deny, replay, gate_id, zone, max_age_s=60, skew_s=30, cache_size=32, list_max_age_s=0):
        self.trust = trust
        self.deny = deny
        self.list_max_age_s = list_max_age_s  # > 0: deny LIST_STALE past this list age (gate.build: policy "refuse")
        self.replay = replay
        self.gate_id = gate_id
        self.zone = zone
        self.max_age_s = max_age_s
        self.skew_s = skew_s
        # cache_size: a count, or a CredCache made earlier (gate.build makes it before the heap fragments)
        self.cache = CredCache(cache_size) if isinstance(cache_size, int) else cache_size
        self._pending = None  # digest of the last newly cached credential, for idle()

    def idle(self):
        """Work for the gap between scans: make the newest cached rider's key faster to verify on
        the rider's next scan (2^128 * key, ecdsa.PublicKey.precompute_split: a returning rider's
        verification then needs half the doublings). True if it did something."""
        d = self._pending
        if d is None:
            return False
        self._pending = None
        return self.cache.precompute(d)

    def set_trust(self, trust):
        self.trust = trust
        self.cache.clear()  # a withdrawn key must not live on in the cache

    # -- the chain -------------------------------------------------------------------
    def _credential(self, cred_bytes, now):
        """Return (reason, Credential or None) for the credential bytes inside a code."""
        digest = hashlib.sha256(cred_bytes).digest()
        c = self.cache.get(digest)
        if c is not None:
            if not (c.key_nbf <= now < c.key_exp):
                return R.ISSUER_KEY_INACTIVE, None
            return R.OK, c
        try:
            s1 = cose.sign1_parse(cred_bytes)
        except ValueError:
            return R.MALFORMED_CREDENTIAL, None
        if s1.alg != ES256:
            return R.BAD_ALG, None
        kid = s1.kid
        if not isinstance(kid, bytes):
            return R.UNKNOWN_ISSUER, None
        status, keys = self.trust.lookup(kid, now)
        if status == self.trust.UNKNOWN:
            return R.UNKNOWN_ISSUER, None
        if status == self.trust.INACTIVE:
            return R.ISSUER_KEY_INACTIVE, None
        signer = None
        for k in keys:  # every active key sharing the kid is tried
            if cose.verify_parsed(s1, k.key):
                signer = k
                break
        if signer is None:
            return R.BAD_ISSUER_SIG, None
        try:
            c = credential.parse(s1.payload)
        except ValueError:
            return R.MALFORMED_CREDENTIAL, None
        c.key_nbf = signer.nbf
        c.key_exp = signer.exp
        if self.cache.put(digest, c):
            self._pending = digest
        return R.OK, c

    def decide(self, line, now, ahead=0):
        """Decision for one scanner line at gate time `now` (Unix s). ahead > 0: the clock is not
        trusted (offgate.timekeep degraded mode): a code whose iat lies in [now - max_age - skew,
        now + ahead] is judged at its own iat instead of `now`."""
        if not line:
            return Decision(R.EMPTY)
        if not _printable(line):
            return Decision(R.NOT_TEXT)
        if line[:4] != PREFIX:
            return Decision(R.BAD_PREFIX)
        try:
            code = base45.decode(line[4:])
        except ValueError:
            return Decision(R.BAD_BASE45)
        try:
            s1 = cose.sign1_parse(code)
        except ValueError:
            return Decision(R.MALFORMED_CODE)
        if s1.alg != ES256:
            return Decision(R.BAD_ALG)
        try:
            auth = cbor.loads(s1.payload)
        except ValueError:
            return Decision(R.MALFORMED_CODE)
        if not isinstance(auth, dict) or A_CRED not in auth or A_IAT not in auth or A_CTR not in auth:
            return Decision(R.MALFORMED_CODE)
        cred_bytes, iat, ctr = auth[A_CRED], auth[A_IAT], auth[A_CTR]
        if (not isinstance(cred_bytes, bytes) or not isinstance(iat, int) or isinstance(iat, bool)
                or not isinstance(ctr, int) or isinstance(ctr, bool) or not 1 <= ctr <= CTR_MAX
                or iat < 0):
            return Decision(R.MALFORMED_CODE)
        if ahead and now - self.max_age_s - self.skew_s <= iat <= now + ahead:
            now = iat  # degraded time: bounded in docs/security.md "Time"

        reason, c = self._credential(cred_bytes, now)
        if c is None:
            return Decision(reason)
        if now < c.nbf:
            return Decision(R.CRED_NOT_YET_VALID, c, ctr, iat)
        if now >= c.exp:
            return Decision(R.CRED_EXPIRED, c, ctr, iat)
        if not cose.verify_parsed(s1, c.rider):
            return Decision(R.BAD_RIDER_SIG, c, ctr, iat)
        if iat > now + self.skew_s:
            return Decision(R.CODE_FUTURE, c, ctr, iat)
        if iat < now - self.max_age_s - self.skew_s:
            return Decision(R.CODE_STALE, c, ctr, iat)
        if self.zone not in c.zones:
            return Decision(R.WRONG_ZONE, c, ctr, iat)
        if c.gates is not None and self.gate_id not in c.gates:
            return Decision(R.WRONG_GATE, c, ctr, iat)
        if self.deny.contains(c.cti):
            return Decision(R.REVOKED, c, ctr, iat)
        if self.list_max_age_s and self.deny.stale(now, self.list_max_age_s):
            return Decision(R.LIST_STALE, c, ctr, iat)
        if not self.replay.fresh(c.cti, ctr):
            return Decision(R.REPLAY, c, ctr, iat)
        return Decision(R.OK, c, ctr, iat)
