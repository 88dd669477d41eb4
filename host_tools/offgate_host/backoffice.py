"""The back office: accounts, issuer keys, credential issuance and the deny list.

State lives in one directory: SQLite database `offgate.db` and issuer private keys as PEM files
(mode 0600) under `keys/`.
"""
import json
import os
import sqlite3
import time
from pathlib import Path

from . import formats, keys

DEFAULT_ISSUER = "offgate-demo"
DEFAULT_MIN_BALANCE = 500
DAY = 86400

SCHEMA = """
CREATE TABLE IF NOT EXISTS config (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS issuer_keys (
    kid      BLOB PRIMARY KEY,
    iss      TEXT NOT NULL,
    pub      BLOB NOT NULL,
    nbf      INTEGER NOT NULL,
    exp      INTEGER NOT NULL,
    created  INTEGER NOT NULL,
    key_file TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS accounts (
    id       TEXT PRIMARY KEY,
    balance  INTEGER NOT NULL,
    credit   INTEGER NOT NULL,
    created  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS credentials (
    cti       BLOB PRIMARY KEY,
    account   TEXT NOT NULL REFERENCES accounts(id),
    kid       BLOB NOT NULL REFERENCES issuer_keys(kid),
    iat       INTEGER NOT NULL,
    nbf       INTEGER NOT NULL,
    exp       INTEGER NOT NULL,
    cap       INTEGER,
    product   INTEGER NOT NULL,
    zones     TEXT NOT NULL,
    gates     TEXT,
    rider_pub BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS deny (
    cti    BLOB PRIMARY KEY,
    added  INTEGER NOT NULL
);
"""


class BackOfficeError(Exception):
    """A user-facing back-office problem."""


class IssueRefused(BackOfficeError):
    """The account does not qualify for a credential (balance and credit below the minimum)."""


class UnknownAccount(BackOfficeError, LookupError):
    def __str__(self):
        return "unknown account %r" % self.args[0] if self.args else "unknown account"


def _now(now=None) -> int:
    return int(time.time() if now is None else now)


def _cti_bytes(cti) -> bytes:
    if isinstance(cti, str):
        try:
            cti = bytes.fromhex(cti.strip())
        except ValueError:
            raise BackOfficeError("credential id must be 16 hex digits, got %r" % cti) from None
    if not isinstance(cti, (bytes, bytearray)) or len(cti) != 8:
        raise BackOfficeError("credential id must be 8 bytes (16 hex digits)")
    return bytes(cti)


def _atomic_write(path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def _amount(name, v) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise BackOfficeError("%s must be a non-negative integer (minor units), got %r" % (name, v))
    return v


class BackOffice:
    def __init__(self, data_dir):
        self.data_dir = Path(data_dir)
        self.keys_dir = self.data_dir / "keys"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.db_path = self.data_dir / "offgate.db"
        self.db = sqlite3.connect(str(self.db_path))
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA foreign_keys = ON")
        with self.db:
            self.db.executescript(SCHEMA)

    def close(self):
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ config
    def _get_config(self, key, default=None):
        row = self.db.execute("SELECT value FROM config WHERE key = ?", (key,)).fetchone()
        return json.loads(row["value"]) if row else default

    def _set_config(self, key, value):
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO config (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    def set_min_balance(self, amount: int) -> None:
        self._set_config("min_balance", _amount("minimum", amount))

    def min_balance(self) -> int:
        return self._get_config("min_balance", DEFAULT_MIN_BALANCE)

    # ------------------------------------------------------------------ issuer keys
    def issuer_keys(self) -> list:
        """All issuer keys, oldest first: dicts with kid, iss, pub, nbf, exp, created, key_file."""
        rows = self.db.execute("SELECT * FROM issuer_keys ORDER BY nbf, created, rowid").fetchall()
        return [{"kid": bytes(r["kid"]), "iss": r["iss"], "pub": bytes(r["pub"]), "nbf": r["nbf"],
                 "exp": r["exp"], "created": r["created"], "key_file": r["key_file"]} for r in rows]

    def _add_issuer_key(self, name, valid_from, valid_days) -> bytes:
        if not isinstance(valid_days, (int, float)) or valid_days <= 0:
            raise BackOfficeError("valid_days must be positive")
        nbf = _now(valid_from)
        exp = nbf + int(valid_days * DAY)
        key = keys.generate()
        pub = keys.pub_bytes(key)
        kid = keys.kid_of(pub)
        rel = "keys/issuer-%s.pem" % kid.hex()
        keys.save_private_pem(self.data_dir / rel, key)
        with self.db:
            self.db.execute("INSERT INTO issuer_keys (kid, iss, pub, nbf, exp, created, key_file) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?)", (kid, name, pub, nbf, exp, _now(), rel))
        return kid

    def init_issuer(self, name=DEFAULT_ISSUER, valid_from=None, valid_days=365) -> bytes:
        """Create the first issuer key if there is none; return the kid of the current signing key
        (or of the existing newest key)."""
        existing = self.issuer_keys()
        if existing:
            return existing[-1]["kid"]
        if not isinstance(name, str) or not name:
            raise BackOfficeError("issuer name must be a non-empty string")
        self._set_config("issuer_name", name)
        return self._add_issuer_key(name, valid_from, valid_days)

    def rotate_issuer(self, valid_from=None, valid_days=365) -> bytes:
        """Add a new issuer key alongside the existing ones; it signs new credentials from its nbf on."""
        if not self.issuer_keys():
            raise BackOfficeError("no issuer key yet; run init_issuer first (offgate issuer init)")
        return self._add_issuer_key(self._get_config("issuer_name", DEFAULT_ISSUER), valid_from, valid_days)

    def signing_key(self, now=None):
        """(key dict, private key) of the newest key active at `now` (nbf <= now < exp)."""
        now = _now(now)
        active = [k for k in self.issuer_keys() if k["nbf"] <= now < k["exp"]]
        if not active:
            if not self.issuer_keys():
                raise BackOfficeError("no issuer key; run `offgate issuer init` first")
            raise BackOfficeError("no issuer key is valid at %d; rotate the issuer key" % now)
        k = sorted(active, key=lambda k: (k["nbf"], k["created"]))[-1]  # stable: later rowid wins ties
        return k, keys.load_private_pem(self.data_dir / k["key_file"])

    def trust_bytes(self) -> bytes:
        ks = self.issuer_keys()
        if not ks:
            raise BackOfficeError("no issuer key; run `offgate issuer init` first")
        return formats.trust_store_bytes(ks)

    def export_trust(self, path) -> Path:
        return _atomic_write(path, self.trust_bytes())

    # ------------------------------------------------------------------ accounts
    def create_account(self, account_id, balance=0, credit=0) -> dict:
        if not isinstance(account_id, str) or not account_id:
            raise BackOfficeError("account id must be a non-empty string")
        try:
            with self.db:
                self.db.execute("INSERT INTO accounts (id, balance, credit, created) VALUES (?, ?, ?, ?)",
                                (account_id, _amount("balance", balance), _amount("credit", credit), _now()))
        except sqlite3.IntegrityError:
            raise BackOfficeError("account %r already exists" % account_id) from None
        return self.get_account(account_id)

    def get_account(self, account_id) -> dict:
        r = self.db.execute("SELECT * FROM accounts WHERE id = ?", (account_id,)).fetchone()
        if r is None:
            raise UnknownAccount(account_id)
        return dict(r)

    def list_accounts(self) -> list:
        return [dict(r) for r in self.db.execute("SELECT * FROM accounts ORDER BY id")]

    def update_account(self, account_id, *, balance=None, credit=None) -> dict:
        self.get_account(account_id)
        with self.db:
            if balance is not None:
                self.db.execute("UPDATE accounts SET balance = ? WHERE id = ?", (_amount("balance", balance), account_id))
            if credit is not None:
                self.db.execute("UPDATE accounts SET credit = ? WHERE id = ?", (_amount("credit", credit), account_id))
        return self.get_account(account_id)

    # ------------------------------------------------------------------ credentials
    def issue_credential(self, account_id, rider_pub65, *, zones, product=1, gates=None, valid_from=None,
                         valid_seconds=86400, cap=None, now=None) -> bytes:
        """Issue a credential for `account_id`'s rider key. Refused (IssueRefused) unless the account's
        balance or its credit is at least the configured minimum."""
        now = _now(now)
        acct = self.get_account(account_id)
        minimum = self.min_balance()
        if not (acct["balance"] >= minimum or acct["credit"] >= minimum):
            raise IssueRefused("account %r: balance %d and credit %d are both below the minimum %d; "
                               "credential refused" % (account_id, acct["balance"], acct["credit"], minimum))
        if isinstance(valid_seconds, bool) or not isinstance(valid_seconds, int) or valid_seconds <= 0:
            raise BackOfficeError("valid_seconds must be a positive integer")
        rider_pub65 = keys.pub_bytes(rider_pub65)
        zones = list(zones)
        if not zones:
            raise BackOfficeError("a credential needs at least one zone")
        nbf = _now(valid_from) if valid_from is not None else now
        kinfo, ikey = self.signing_key(now)
        # The gate uses a trusted key only while nbf <= now < exp, so a credential cannot outlive
        # the key that signed it: clip exp to the key's exp.
        exp = min(nbf + valid_seconds, kinfo["exp"])
        if exp <= nbf:
            raise BackOfficeError("the signing key expires before the credential becomes valid; rotate the issuer key")
        for _ in range(8):
            cti = os.urandom(8)
            if not self.db.execute("SELECT 1 FROM credentials WHERE cti = ?", (cti,)).fetchone():
                break
        else:  # pragma: no cover
            raise BackOfficeError("could not allocate a credential id")
        try:
            cred = formats.make_credential(ikey, kinfo["kid"], iss=kinfo["iss"], sub=account_id, cti=cti,
                                           nbf=nbf, exp=exp, rider_pub65=rider_pub65, zones=zones,
                                           gates=gates, product=product, cap=cap, compressed=True)
        except ValueError as e:
            raise BackOfficeError(str(e)) from None
        with self.db:
            self.db.execute(
                "INSERT INTO credentials (cti, account, kid, iat, nbf, exp, cap, product, zones, gates, rider_pub) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (cti, account_id, kinfo["kid"], now, nbf, exp, cap, product, json.dumps(zones),
                 json.dumps(list(gates)) if gates is not None else None, rider_pub65))
        return cred

    def credentials(self, account_id=None) -> list:
        q = "SELECT * FROM credentials" + (" WHERE account = ?" if account_id is not None else "") + " ORDER BY iat, rowid"
        rows = self.db.execute(q, (account_id,) if account_id is not None else ()).fetchall()
        out = []
        for r in rows:
            d = dict(r)
            d["cti"], d["kid"], d["rider_pub"] = bytes(d["cti"]), bytes(d["kid"]), bytes(d["rider_pub"])
            d["zones"] = json.loads(d["zones"])
            d["gates"] = json.loads(d["gates"]) if d["gates"] else None
            out.append(d)
        return out

    # ------------------------------------------------------------------ deny list
    def deny(self, cti) -> bytes:
        """Add a credential id (8 bytes or 16 hex digits) to the deny list. Idempotent."""
        cti = _cti_bytes(cti)
        with self.db:
            self.db.execute("INSERT OR IGNORE INTO deny (cti, added) VALUES (?, ?)", (cti, _now()))
        return cti

    def deny_list(self) -> list:
        return [bytes(r["cti"]) for r in self.db.execute("SELECT cti FROM deny ORDER BY cti")]

    def deny_bytes(self) -> bytes:
        return formats.deny_list_bytes(self.deny_list())

    def export_deny(self, path) -> Path:
        return _atomic_write(path, self.deny_bytes())
