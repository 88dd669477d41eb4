"""Wallet simulator: the rider's phone. Holds a P-256 key, a credential and the code counter in a
JSON file (the private key PEM is stored inside: it is a simulator, not a secure wallet)."""
import json
import time
from pathlib import Path

from .wire import formats, keys
from .atomicfile import atomic_write
from .errors import OffgateError

WALLET_VERSION = 1


class WalletError(OffgateError):
    """A user-facing wallet problem (missing credential, bad file)."""


def _write_json_0600(path: Path, obj) -> None:
    if not path.parent.is_dir():  # a mistyped path must not make directories
        raise WalletError("cannot write %s: directory %s does not exist" % (path, path.parent))
    atomic_write(path, (json.dumps(obj, indent=2) + "\n").encode(), mode=0o600)


class Wallet:
    def __init__(self, path, key, credential=None, ctr=0, created=None, enc_key=None, receipts=None):
        self.path = Path(path)
        self.key = key
        self.pub65 = keys.pub_bytes(key)
        # a second P-256 key, for ECDH only: receipts are encrypted to it (a WebCrypto ECDSA key
        # cannot do ECDH); its public half is registered at enrolment
        self.enc_key = enc_key
        self.receipts = list(receipts or [])  # receipt bundles (bytes), as the back office sent them
        self.credential = credential
        self.ctr = ctr
        self.created = created if created is not None else int(time.time())

    # -- files
    @classmethod
    def create(cls, path, overwrite=False) -> "Wallet":
        path = Path(path)
        if path.exists() and not overwrite:
            raise WalletError("wallet file %s already exists" % path)
        w = cls(path, keys.generate(), enc_key=keys.generate())
        w.save()
        return w

    @classmethod
    def load(cls, path) -> "Wallet":
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except FileNotFoundError:
            raise WalletError("wallet file %s not found" % path) from None
        except (OSError, ValueError) as e:
            raise WalletError("cannot read wallet %s: %s" % (path, e)) from None
        try:
            key = keys.load_private_pem_bytes(d["private_key_pem"].encode("ascii"))
            cred = bytes.fromhex(d["credential"]) if d.get("credential") else None
            enc = keys.load_private_pem_bytes(d["enc_key_pem"].encode("ascii")) if d.get("enc_key_pem") else None
            w = cls(path, key, cred, int(d.get("ctr", 0)), d.get("created"), enc,
                    [bytes.fromhex(r) for r in d.get("receipts", [])])
        except (KeyError, ValueError, TypeError) as e:
            raise WalletError("wallet %s is malformed: %s" % (path, e)) from None
        if d.get("pub65") and bytes.fromhex(d["pub65"]) != w.pub65:
            raise WalletError("wallet %s: pub65 does not match the private key" % path)
        return w

    def to_json(self) -> dict:
        return {
            "version": WALLET_VERSION,
            "created": self.created,
            "pub65": self.pub65.hex(),
            "private_key_pem": keys.private_pem(self.key).decode("ascii"),
            "credential": self.credential.hex() if self.credential else None,
            "ctr": self.ctr,
            "enc_key_pem": keys.private_pem(self.enc_key).decode("ascii") if self.enc_key else None,
            "receipts": [r.hex() for r in self.receipts],
        }

    def save(self) -> None:
        _write_json_0600(self.path, self.to_json())

    @property
    def enc_pub65(self):
        return keys.pub_bytes(self.enc_key) if self.enc_key else None

    def ensure_enc_key(self) -> bytes:
        """The receipt encryption key's public half; a wallet made before receipts gets one now."""
        if self.enc_key is None:
            self.enc_key = keys.generate()
            self.save()
        return self.enc_pub65

    # -- credential and codes
    def set_credential(self, cred_bytes: bytes) -> None:
        """Store a credential issued for this wallet's key (checked: its cnf key must be ours).
        The counter is not reset: it only ever rises, so codes never repeat a counter."""
        info = formats.parse_credential(cred_bytes)
        if info["rider_pub65"] != self.pub65:
            raise WalletError("credential was issued for another key, not this wallet's")
        self.credential = bytes(cred_bytes)
        self.save()

    def credential_info(self) -> dict:
        if not self.credential:
            raise WalletError("wallet %s has no credential; issue one first" % self.path)
        return formats.parse_credential(self.credential)

    def code(self, iat: int, ctr: int) -> bytes:
        """A code with explicit iat and ctr (no state change; for tests and replay scenarios)."""
        if not self.credential:
            raise WalletError("wallet %s has no credential; issue one first" % self.path)
        return formats.make_auth_code(self.key, self.credential, iat=int(iat), ctr=int(ctr))

    def next_code(self, now=None) -> bytes:
        """The next code: iat = now (default: time.time()), ctr = previous + 1, saved before use."""
        if not self.credential:
            raise WalletError("wallet %s has no credential; issue one first" % self.path)
        iat = int(time.time() if now is None else now)
        if self.ctr >= formats.CTR_MAX:
            raise WalletError("code counter exhausted")
        self.ctr += 1
        self.save()
        return self.code(iat, self.ctr)

    @staticmethod
    def qr_text(code: bytes) -> str:
        return formats.qr_text(code)
