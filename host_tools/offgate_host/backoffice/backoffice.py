"""The back office: accounts, issuer keys, credential issuance and the deny list.

State lives in one directory: SQLite database `offgate.db` and issuer private keys as PEM files
(mode 0600) under `keys/`.
"""
import json
import os
import re
import time
from pathlib import Path

from ..wire import formats, keys
from ..atomicfile import atomic_write
from ..db import safe_url as _safe
from ..errors import NoBackOffice, OffgateError

DEFAULT_ISSUER = "offgate-demo"
DEFAULT_MIN_BALANCE = 500
# The cap (hold) of a credential issued without --cap: four flat fares (ledger.DEFAULT_FARE), a
# day's riding for most riders; capped further by what the account can cover.
DEFAULT_CAP = 1000
DAY = 86400
# Largest balance, credit, cap or movement (minor units): 10 billion in major units, far beyond any
# rider account, so that sums over many accounts stay inside a 64-bit integer (SQLite, BIGINT).
MAX_AMOUNT = 10 ** 12
# A credential's cap travels in the credential and the gate keeps it as an unsigned 32-bit value
# (firmware/offgate/policy/credcache.py, 0xFFFFFFFF = no cap).
MAX_CAP = 2 ** 32 - 2

ACCOUNT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}\Z")


class BackOfficeError(OffgateError):
    """A user-facing back-office problem."""


class IssueRefused(BackOfficeError):
    """The account does not qualify for a credential (balance and credit below the minimum)."""


class ClockRefused(BackOfficeError):
    """The host's clock fails its plausibility check: nothing is signed with it."""


class UnknownAccount(BackOfficeError, LookupError):
    def __str__(self):
        return "unknown account %r" % self.args[0] if self.args else "unknown account"


# charge_trips' result per trip (charge_trip_rows: a tuple in this order): the account charged, the
# amount (minor units), the part from the credential's hold, the part beyond it (0 without a
# hold), the credential's cap, its charges in total, whether the account ended below its credit
CHARGE_FIELDS = ("account", "amount", "from_hold", "over_cap", "cap", "charged_total", "overdrawn")


def _now(now=None) -> int:
    return int(time.time() if now is None else now)


def _utc(t) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(t))


DEFAULT_LEAD_DAYS = 7           # a rotated-in key signs only after this lead time (or once all gates hold it)
DENY_REISSUE_S = 6 * 3600      # a deny list older than this is re-signed (new serial) at the next sync
DENY_EXPIRY_GRACE_S = DAY       # an expired credential's id leaves the deny list this long after exp
DENY_ID_BYTES = 5              # bytes of each id the signed deny list stores (docs/protocol.md §6)
CLOCK_TOLERANCE_S = 300        # how far the host clock may be behind what it already signed
CLOCK_MAX_JUMP_S = 30 * 86400  # the host clock is implausible this far ahead of what it last signed


def _cti_bytes(cti) -> bytes:
    if isinstance(cti, str):
        try:
            cti = bytes.fromhex(cti.strip())
        except ValueError:
            raise BackOfficeError("credential id must be 16 hex digits, got %r" % cti) from None
    if not isinstance(cti, (bytes, bytearray)) or len(cti) != 8:
        raise BackOfficeError("credential id must be 8 bytes (16 hex digits)")
    return bytes(cti)


def read_id_file(path) -> list:
    """Credential ids from a text file, one per line: 16 hex digits (the first field of the line
    when it has commas or spaces); blank lines and lines starting with # are skipped. Returns
    [bytes], each id once (a repeated line is not counted again); BackOfficeError naming the file
    and line of the first bad id."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BackOfficeError("file not found: %s" % path) from None
    except (OSError, UnicodeDecodeError) as e:
        raise BackOfficeError("cannot read %s: %s" % (path, getattr(e, "strerror", None) or e)) from None
    out = []
    seen = set()
    for no, line in enumerate(text.splitlines(), 1):
        f = line.replace(",", " ").split()
        if not f or f[0].startswith("#"):
            continue
        try:
            b = bytes.fromhex(f[0])
        except ValueError:
            b = b""
        if len(b) != 8:
            raise BackOfficeError("%s line %d: %r is not a credential id (16 hex digits)" % (path, no, f[0][:40]))
        if b not in seen:
            seen.add(b)
            out.append(b)
    return out


def _atomic_write(path, data: bytes) -> Path:
    """Write `data` to `path` atomically (temp file, fsync, rename). The directory must exist:
    an output path with a typo must not make directories."""
    path = Path(path)
    if not path.parent.is_dir():
        raise BackOfficeError("cannot write %s: directory %s does not exist" % (path, path.parent))
    return atomic_write(path, data)


def _reason(reason) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise BackOfficeError("a reason is required (it goes into the account's audit trail)")
    if len(reason) > 200:
        raise BackOfficeError("the reason is too long (at most 200 characters)")
    return " ".join(reason.split())


def _amount(name, v, maximum=MAX_AMOUNT) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0 or v > maximum:
        raise BackOfficeError("%s must be an integer from 0 to %d (minor units), got %r" % (name, maximum, v))
    return v


DB_NAME = "offgate.db"
# A back office whose database is not its own offgate.db (PostgreSQL, or a SQLite file elsewhere,
# `offgate init --db URL`) names it in this file (one line, mode 0600: a URL may hold a password).
DB_URL_FILE = "database.url"


def exists(data_dir) -> bool:
    """Whether `data_dir` holds a back office (its database file, or the URL of its database)."""
    return (Path(data_dir) / DB_NAME).is_file() or (Path(data_dir) / DB_URL_FILE).is_file()


def database_url(data_dir):
    """The URL of the database of the back office in `data_dir` (None: it has none yet)."""
    data_dir = Path(data_dir)
    if (data_dir / DB_URL_FILE).is_file():
        return (data_dir / DB_URL_FILE).read_text().strip()
    if (data_dir / DB_NAME).is_file():
        return str((data_dir / DB_NAME).resolve())
    return None


def record_database_url(data_dir, url) -> None:
    """Make `url` the database of the back office in `data_dir` (written atomically, mode 0600)."""
    from ..db import normal_url
    path = Path(data_dir) / DB_URL_FILE
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(normal_url(url) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def upgrade_backoffice(data_dir, db=None) -> dict:
    """`offgate db upgrade`: bring the back office's database to the newest schema revision. With
    `db` naming another database -- a back office from before the one database, whose ledger was
    kept apart (`offgate init --db URL` then) -- bring both up to date, copy the back office's
    tables into `db` (one transaction; refused if a table holds rows in both), make `db` the back
    office's database (database.url) and keep the old offgate.db as offgate.db.merged.
    Returns {"url", "before", "after"} (+ "merged_from", "kept_as", "tables", "rows")."""
    from ..db import Database, merge_into, parse_url, same_database, upgrade_url
    data_dir = Path(data_dir)
    url = database_url(data_dir)
    if url is None:
        raise NoBackOffice("no back office in %s (create one with `offgate init --data %s`)" % (data_dir, data_dir))
    if db is None or same_database(db, url):
        before, after = upgrade_url(url)
        return {"url": url, "before": before, "after": after}
    parse_url(db, BackOfficeError)
    if (data_dir / DB_URL_FILE).is_file():
        raise BackOfficeError("the back office in %s already keeps everything in %s; --db %s names another "
                              "database" % (data_dir, _safe(url), _safe(db)))
    upgrade_url(url)
    before, after = upgrade_url(db)
    src, dst = Database(url, error=BackOfficeError), Database(db, error=BackOfficeError)
    try:
        tables, rows = merge_into(src, dst, BackOfficeError)
    finally:
        src.close()
        dst.close()
    record_database_url(data_dir, db)
    kept = data_dir / (DB_NAME + ".merged")
    for suffix in ("-wal", "-shm", ""):  # the file last: until then it is still the back office
        if (data_dir / (DB_NAME + suffix)).exists():
            os.replace(data_dir / (DB_NAME + suffix), data_dir / (DB_NAME + ".merged" + suffix))
    return {"url": db, "before": before, "after": after, "merged_from": str(data_dir / DB_NAME),
            "kept_as": str(kept), "tables": tables, "rows": rows}


class BackOffice:
    def __init__(self, data_dir, create=True, db=None):
        """Open the back office in `data_dir`: its keys there, everything else in its one database
        (offgate_host.db): `offgate.db` in the directory, or the database named in its
        `database.url`. With create=False (every CLI command but `offgate init`) a directory without
        a back office raises NoBackOffice instead of getting a fresh, empty one: a mistyped --data
        or OFFGATE_DATA must not look like an empty back office; a database whose schema is older
        than this offgate raises OutdatedDatabase (`offgate db upgrade`). With create=True the
        directory itself may be made, never its missing parents, and a new, empty database gets
        the schema (by the migrations); an existing database is never moved forward here. `db` (a PostgreSQL URL or SQLite path): the database of a new back office
        (create=True); for an existing one it must name the database it has (BackOfficeError).
        A file that is not an offgate database raises BackOfficeError."""
        from ..db import Database, same_database, parse_url
        self.data_dir = Path(data_dir)
        self.keys_dir = self.data_dir / "keys"
        self.db_path = self.data_dir / DB_NAME
        if db is not None:
            parse_url(db, BackOfficeError)  # a bad URL fails before anything is created
        url = database_url(self.data_dir)
        if url is None:
            if not create:
                raise NoBackOffice("no back office in %s (create one with `offgate init --data %s`, or point "
                                   "--data / OFFGATE_DATA at an existing one)" % (self.data_dir, self.data_dir))
            if self.data_dir.exists() and not self.data_dir.is_dir():
                raise BackOfficeError("%s exists and is not a directory" % self.data_dir)
            if not self.data_dir.parent.is_dir():
                raise BackOfficeError("cannot create a back office in %s: %s does not exist"
                                      % (self.data_dir, self.data_dir.parent))
        elif db is not None and not same_database(db, url):
            raise BackOfficeError("the back office in %s keeps its data in %s, not %s (one database holds "
                                  "everything; `offgate db upgrade --data %s --db URL` moves a back office "
                                  "from before that into URL)" % (self.data_dir, _safe(url), _safe(db), self.data_dir))
        target = url or db or str(self.db_path)
        made = False
        if url is None:
            # check the database can be made before making the directory (no half-made back office)
            if parse_url(target)[0] == "sqlite" and not Path(parse_url(target)[1]).parent.is_dir() \
                    and Path(parse_url(target)[1]).parent != self.data_dir:
                raise BackOfficeError("database %s: directory %s does not exist"
                                      % (target, Path(parse_url(target)[1]).parent))
            made = not self.data_dir.exists()
            self.data_dir.mkdir(exist_ok=True)
        try:
            self.db = Database(target, create=create, error=BackOfficeError)
        except BaseException:
            if url is None and made and not any(self.data_dir.iterdir()):
                self.data_dir.rmdir()  # nothing half-made stays behind
            raise
        if url is None and db is not None:
            if not self.db.created:  # two back offices in one database would mix their accounts
                self.db.close()
                if made and not any(self.data_dir.iterdir()):
                    self.data_dir.rmdir()
                raise BackOfficeError("database %s already holds a back office; give a new, empty database (a "
                                      "back office from before the one database: `offgate db upgrade --db`)"
                                      % _safe(db))
            record_database_url(self.data_dir, db)

    def close(self):
        self.db.close()

    def _rowid(self, key):
        # insertion order breaks ties on SQLite; PostgreSQL has no rowid: the key does
        return "rowid" if self.db.kind == "sqlite" else key

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
            self.db.upsert("config", ("key",), {"key": key, "value": json.dumps(value)})

    def set_min_balance(self, amount: int) -> None:
        self._set_config("min_balance", _amount("minimum", amount))

    def min_balance(self) -> int:
        return self._get_config("min_balance", DEFAULT_MIN_BALANCE)

    def set_default_cap(self, amount: int) -> None:
        """The cap (hold) a credential gets when issued without one, minor units (> 0)."""
        if _amount("default cap", amount, MAX_CAP) == 0:
            raise BackOfficeError("the default cap must be positive: every credential carries a cap")
        self._set_config("default_cap", amount)

    def default_cap(self) -> int:
        return self._get_config("default_cap", DEFAULT_CAP)

    # ------------------------------------------------------------------ issuer keys
    def issuer_keys(self, include_retired=False) -> list:
        """Issuer keys, oldest first: dicts with kid, iss, pub, nbf, exp, created, key_file
        (retired ones only with include_retired)."""
        rows = self.db.execute("SELECT * FROM issuer_keys ORDER BY nbf, created, " + self._rowid("kid")).fetchall()
        retired = () if include_retired else self._get_config("retired_keys", [])
        return [{"kid": bytes(r["kid"]), "iss": r["iss"], "pub": bytes(r["pub"]), "nbf": r["nbf"],
                 "exp": r["exp"], "created": r["created"], "key_file": r["key_file"]} for r in rows
                if bytes(r["kid"]).hex() not in retired]

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
        self._bump_trust_serial()
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

    def rotate_issuer(self, valid_from=None, valid_days=365, lead_days=DEFAULT_LEAD_DAYS) -> bytes:
        """Add a new issuer key alongside the existing ones (staged rotation). It goes into the
        trust list at once, so syncs bring it to the gates, but it signs credentials only from
        `lead_days` after its nbf, or earlier once every enrolled gate has reported a trust list
        that holds it (`promote_ready`), or by `promote` (an explicit operator decision)."""
        if not self.issuer_keys():
            raise BackOfficeError("no issuer key yet; run init_issuer first (offgate issuer init)")
        if isinstance(lead_days, bool) or not isinstance(lead_days, (int, float)) or lead_days < 0:
            raise BackOfficeError("lead_days must be a non-negative number")
        kid = self._add_issuer_key(self._get_config("issuer_name", DEFAULT_ISSUER), valid_from, valid_days)
        k = [x for x in self.issuer_keys() if x["kid"] == kid][0]
        staged = self._get_config("staged_keys", {})
        staged[kid.hex()] = {"sign_from": k["nbf"] + int(lead_days * DAY), "serial": self.trust_serial()}
        self._set_config("staged_keys", staged)
        return kid

    def staged_keys(self) -> dict:
        """{kid hex: {"sign_from": Unix seconds, "serial": the trust serial that first held it}}."""
        return self._get_config("staged_keys", {})

    def promote(self, kid, now=None) -> None:
        """Let staged key `kid` sign from now on."""
        staged = self.staged_keys()
        h = bytes(kid).hex() if isinstance(kid, (bytes, bytearray)) else str(kid)
        if h not in staged:
            raise BackOfficeError("issuer key %s is not staged" % h)
        staged[h]["sign_from"] = min(staged[h]["sign_from"], _now(now))
        self._set_config("staged_keys", staged)

    def rollout(self, gate_trust_serials: dict, now=None) -> list:
        """Staged keys and the enrolled gates that have not reported a trust list holding them:
        [{"kid", "sign_from", "lacking": [gate ids]}] (gate_trust_serials: gate -> reported serial)."""
        now = _now(now)
        out = []
        for h, st in sorted(self.staged_keys().items()):
            lacking = sorted(g for g, ser in gate_trust_serials.items() if (ser or 0) < st["serial"])
            out.append({"kid": h, "sign_from": st["sign_from"], "signing": st["sign_from"] <= now, "lacking": lacking})
        return out

    def promote_ready(self, gate_trust_serials: dict, now=None) -> list:
        """Promote every staged key that all enrolled gates hold. Returns the promoted kids (hex)."""
        done = []
        for r in self.rollout(gate_trust_serials, now):
            if not r["signing"] and not r["lacking"] and gate_trust_serials:
                self.promote(r["kid"], now)
                done.append(r["kid"])
        return done

    def retire(self, kid) -> None:
        """Retire issuer key `kid`: it signs nothing more and leaves the trust list (new serial);
        gates drop it at their next sync, and credentials it signed stop working there."""
        h = bytes(kid).hex() if isinstance(kid, (bytes, bytearray)) else str(kid)
        if h not in [k["kid"].hex() for k in self.issuer_keys(include_retired=True)]:
            raise BackOfficeError("unknown issuer key %s" % h)
        retired = self._get_config("retired_keys", [])
        if h not in retired:
            if len(self.issuer_keys()) <= 1:
                raise BackOfficeError("cannot retire the last issuer key; rotate first")
            retired.append(h)
            self._set_config("retired_keys", retired)
            self._bump_trust_serial()

    def signing_key(self, now=None):
        """(key dict, private key) of the newest key active at `now` (nbf <= now < exp) whose
        staging lead time is over; if only staged keys are active, the newest of them."""
        now = _now(now)
        active = [k for k in self.issuer_keys() if k["nbf"] <= now < k["exp"]]
        if not active:
            if not self.issuer_keys():
                raise BackOfficeError("no issuer key; run `offgate issuer init` first")
            raise BackOfficeError("no issuer key is valid at %d; rotate the issuer key" % now)
        staged = self.staged_keys()
        ready = [k for k in active if staged.get(k["kid"].hex(), {}).get("sign_from", 0) <= now]
        k = sorted(ready or active, key=lambda k: (k["nbf"], k["created"]))[-1]  # later rowid wins ties
        return k, keys.load_private_pem(self.data_dir / k["key_file"])

    # what a gate accepts (firmware offgate/policy/trust.py MAX_KEYS): more is refused whole there
    GATE_MAX_KEYS = 16

    def trust_serial(self) -> int:
        """The trust list's serial: grows with every change of the issuer keys (never goes back)."""
        return self._get_config("trust_serial", 0)

    def _bump_trust_serial(self):
        self._set_config("trust_serial", self.trust_serial() + 1)

    def trust_bytes(self, now=None) -> bytes:
        """The gate's trust store (trust.cbor, with its serial and issue time inside): the issuer
        keys not yet expired at `now` (Unix s; default the current time), newest last; an expired
        key is never shipped (each costs gate heap, and a gate refuses a store of more than
        GATE_MAX_KEYS). BackOfficeError if none is left or too many are."""
        return formats.trust_store_bytes(self.gate_trust_keys(now), serial=self.trust_serial(),
                                         issued=self._issued_time(now))

    def gate_trust_keys(self, now=None) -> list:
        """The issuer keys a gate gets at `now` (Unix s; default the current time): those not yet
        expired, newest last. BackOfficeError if none is left or more than GATE_MAX_KEYS are."""
        t = _now(now)
        ks = [k for k in self.issuer_keys() if k["exp"] > t]
        if not ks:
            raise BackOfficeError("no issuer key valid now; run `offgate issuer init` or rotate the key")
        if len(ks) > self.GATE_MAX_KEYS:
            raise BackOfficeError("%d unexpired issuer keys: a gate holds at most %d" % (len(ks), self.GATE_MAX_KEYS))
        return ks

    def export_trust(self, path) -> Path:
        return _atomic_write(path, self.trust_bytes())

    # ------------------------------------------------------------------ accounts
    def create_account(self, account_id, balance=0, credit=0, by="back office", now=None) -> dict:
        """A new account: id of 1-64 letters, digits and . _ @ + - (starting with a letter or
        digit); balance and credit in minor units, 0..MAX_AMOUNT."""
        if not isinstance(account_id, str) or not ACCOUNT_ID.match(account_id):
            raise BackOfficeError("account id must be 1-64 letters, digits or . _ @ + - (starting with a letter or "
                                  "digit), got %r" % (account_id,))
        now = _now(now)
        try:
            with self.db:
                self.db.execute("INSERT INTO accounts (id, balance, credit, created) VALUES (?, ?, ?, ?)",
                                (account_id, _amount("balance", balance), _amount("credit", credit), now))
                self._audit(account_id, "opening", balance, "account opened", by, now, credit=credit)
        except self.db.IntegrityError:
            raise BackOfficeError("account %r already exists" % account_id) from None
        return self.get_account(account_id)

    def _audit(self, account_id, kind, amount, reason, by, now, credit=None):
        # inside the caller's transaction
        self.db.execute("INSERT INTO account_audit (account, kind, amount, credit, reason, \"by\", t) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)", (account_id, kind, amount, credit, reason, by, now))

    def get_account(self, account_id) -> dict:
        r = self.db.execute("SELECT * FROM accounts WHERE id = ?", (account_id,)).fetchone()
        if r is None:
            raise UnknownAccount(account_id)
        return dict(r)

    def list_accounts(self) -> list:
        return [dict(r) for r in self.db.execute("SELECT * FROM accounts ORDER BY id")]

    def update_account(self, account_id, *, balance=None, credit=None, reason="set by the back office",
                       by="back office", now=None) -> dict:
        """Set the balance (recorded as an adjustment by the difference) and/or the credit limit
        (minor units), with the reason in the audit trail."""
        old = self.get_account(account_id)
        now = _now(now)
        with self.db:
            if balance is not None and _amount("balance", balance) != old["balance"]:
                self.db.execute("UPDATE accounts SET balance = ? WHERE id = ?", (balance, account_id))
                self._audit(account_id, "adjustment", balance - old["balance"], reason, by, now)
            if credit is not None and _amount("credit", credit) != old["credit"]:
                self.db.execute("UPDATE accounts SET credit = ? WHERE id = ?", (credit, account_id))
                self._audit(account_id, "credit", 0, reason, by, now, credit=credit)
        return self.get_account(account_id)

    def adjust(self, account_id, amount, reason, by="back office", now=None) -> dict:
        """Change the balance by `amount` (minor units, signed, non-zero): a correction, refund or
        write-off, with its reason in the audit trail. A negative adjustment may not take the
        account below its credit limit (-credit), nor take what its open holds reserve for trips
        already made offline (BackOfficeError)."""
        if isinstance(amount, bool) or not isinstance(amount, int) or amount == 0 or abs(amount) > MAX_AMOUNT:
            raise BackOfficeError("an adjustment must be a non-zero integer from -%d to %d (minor units), got %r"
                                  % (MAX_AMOUNT, MAX_AMOUNT, amount))
        reason = _reason(reason)
        a = self.get_account(account_id)
        if a["balance"] + amount > MAX_AMOUNT:
            raise BackOfficeError("account %r: a balance above %d is refused" % (account_id, MAX_AMOUNT))
        if amount < 0 and a["balance"] + amount < -a["credit"]:
            raise BackOfficeError("account %r: adjusting by %d would take the balance %d below the credit limit -%d"
                                  % (account_id, amount, a["balance"], a["credit"]))
        held = self.outstanding_holds(account_id) if amount < 0 else 0
        if held and a["balance"] + a["credit"] + amount < held:
            # the holds back trips already made offline: taking that money would flag an honest
            # rider's next trips as overdraft and deny the credential (QA8)
            raise BackOfficeError("account %r: adjusting by %d would take money its live credentials' holds "
                                  "reserve (%d; %d can be adjusted): their holds are released by the first "
                                  "settlement after they expire" % (account_id, amount, held,
                                                     max(0, a["balance"] + a["credit"] - held)))
        with self.db:
            # the checks above again, in the UPDATE itself: two adjustments (or an adjustment and a
            # hold) racing both passed a check made before either wrote (QA9)
            cur = self.db.execute(
                "UPDATE accounts SET balance = balance + ? WHERE id = ? AND (? >= 0 OR (balance + ? >= -credit "
                "AND balance + credit + ? >= (SELECT COALESCE(SUM(amount - used), 0) FROM holds "
                "WHERE account = accounts.id AND state = 'held')))",
                (amount, account_id, amount, amount, amount))
            if cur.rowcount != 1:
                raise BackOfficeError("account %r changed while adjusting by %d (another adjustment or a new hold): "
                                      "nothing changed; look at `offgate account show` and try again"
                                      % (account_id, amount))
            self._audit(account_id, "adjustment", amount, reason, by, _now(now))
        return self.get_account(account_id)

    # ------------------------------------------------------------------ credentials
    def issue_credential(self, account_id, rider_pub65, *, zones, product=1, gates=None, valid_from=None,
                         valid_seconds=86400, cap=None, rider_category=None, now=None) -> bytes:
        """Issue a credential for `account_id`'s rider key. Refused (IssueRefused) unless what the
        account can cover (balance + credit - open holds) is at least the configured minimum.
        cap (minor units): the credential's offline spending cap, held on the account until the
        credential expires; default min(default_cap(), what the account can cover); a larger cap
        than the account can cover is refused (BackOfficeError). rider_category: the GTFS
        rider_category_id fares are charged for (kept here, not in the credential: no QR growth)."""
        if rider_category is not None and (not isinstance(rider_category, str) or not rider_category):
            raise BackOfficeError("rider category must be a non-empty GTFS rider_category_id")
        for what, ids in (("zone", zones), ("gate", gates or ())):
            # the gate keeps ids as small ints (31 bits on the ESP32): formats.MAX_ID, as gate ids
            if not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i <= formats.MAX_ID for i in ids):
                raise BackOfficeError("%s ids must be integers from 0 to %d, got %r" % (what, formats.MAX_ID,
                                                                                       list(ids)))
        if not zones:
            raise BackOfficeError("a credential needs at least one zone")
        now = _now(now)
        acct = self.get_account(account_id)
        minimum = self.min_balance()
        cover = self.coverable(account_id)  # balance + credit - what open holds reserve
        if cover < minimum:
            raise IssueRefused("account %r can cover %d (balance %d + credit %d - open holds %d), below the minimum "
                               "%d; credential refused" % (account_id, cover, acct["balance"], acct["credit"],
                                                           self.outstanding_holds(account_id), minimum))
        # every credential carries a cap, held on the account and enforced at settlement. The
        # CWT names it only when it was asked for: the gate does not enforce caps offline, and
        # the claim's 2-6 bytes would push a typical code to QR version 12 once its counter
        # passes 255 (docs/protocol.md §7)
        in_cwt = cap is not None
        if cap is None:
            cap = min(self.default_cap(), cover)
        elif _amount("cap", cap, MAX_CAP) > cover:
            raise BackOfficeError("cap %d is more than account %r can cover (%d: balance + credit - open holds)"
                                  % (cap, account_id, cover))
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
        cti = self._new_cti()
        try:
            # compact credential (docs/protocol.md §2): no iss/sub; nbf only for a future start
            cred = formats.make_credential(ikey, kinfo["kid"], cti=cti, nbf=nbf if nbf > now else None,
                                           exp=exp, rider_pub65=rider_pub65, zones=zones,
                                           gates=gates, product=product, cap=cap if in_cwt else None,
                                           compressed=True)
        except ValueError as e:
            raise BackOfficeError(str(e)) from None
        with self.db:
            self.db.execute(
                "INSERT INTO credentials (cti, account, kid, iat, nbf, exp, cap, product, zones, gates, rider_pub, "
                "rider_category) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (cti, account_id, kinfo["kid"], now, nbf, exp, cap, product, json.dumps(zones),
                 json.dumps(list(gates)) if gates is not None else None, rider_pub65, rider_category))
            self._place_hold(cti, account_id, cap, exp, now)
        return cred

    def credentials(self, account_id=None) -> list:
        q = "SELECT * FROM credentials" + (" WHERE account = ?" if account_id is not None else "") + " ORDER BY iat, " + self._rowid("cti")
        return self._credential_dicts(self.db.execute(q, (account_id,) if account_id is not None else ()).fetchall())

    def credentials_of(self, account_ids) -> list:
        """credentials() of many accounts in one query (settlement's chunk of accounts), oldest
        first per account as credentials() gives them."""
        return self._credential_dicts(self.db.rows_in("SELECT * FROM credentials WHERE account", set(account_ids),
                                                      " ORDER BY iat, " + self._rowid("cti")))

    @staticmethod
    def _credential_dicts(rows):
        out = []
        for r in rows:
            d = dict(r)
            d["cti"], d["kid"], d["rider_pub"] = bytes(d["cti"]), bytes(d["kid"]), bytes(d["rider_pub"])
            d["zones"] = json.loads(d["zones"])
            d["gates"] = json.loads(d["gates"]) if d["gates"] else None
            out.append(d)
        return out

    # ------------------------------------------------------------------ deny list
    def deny(self, cti, reason="deny add", by="back office") -> bytes:
        """Add a credential id (8 bytes or 16 hex digits) to the deny list. Idempotent."""
        cti = _cti_bytes(cti)
        self.deny_many([cti], reason, by)
        return cti

    def deny_list(self) -> list:
        return [bytes(r["cti"]) for r in self.db.execute("SELECT cti FROM deny ORDER BY cti")]

    def deny_count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM deny").fetchone()[0]

    def deny_bytes(self, now=None) -> bytes:
        """The current signed deny list (version 2, docs/protocol.md §6). A new one, with the next
        serial and a fresh issue time, is signed when the list changed or the current one is older
        than `deny_reissue_s` (default 6 h, so gates can tell a fresh list from a stale one); the
        host's clock is checked first (`signing_time`). Before signing, ids of credentials that
        expired more than `deny_expiry_grace_s` ago leave the list (deny_prune_expired), and the
        changes against the previous list are recorded so that gates can get a delta
        (deny_delta)."""
        cur = self._get_config("deny_current")
        t = _now(now)
        reissue = self._get_config("deny_reissue_s", DENY_REISSUE_S)
        if cur is None or self._get_config("deny_dirty", False) or t - cur["issued"] >= reissue:
            t = self._issued_time(now)
            self.deny_prune_expired(t)
            serial = (cur["serial"] if cur else 0) + 1
            data = formats.signed_deny_list_bytes(self.deny_list(), serial, t, self.root_sign, self.deny_id_bytes())
            info = formats.deny_list_info(data)
            prev = formats.deny_list_info(bytes.fromhex(cur["data"])) if cur else None
            # the changes as the gates store them (prefixes): what a delta carries
            old = set(prev["ids"]) if prev and prev["id_bytes"] == info["id_bytes"] else None
            new = set(info["ids"])
            cur = {"serial": serial, "issued": t, "data": data.hex()}
            with self.db:
                for k, v in (("deny_current", cur), ("deny_dirty", False)):
                    self.db.upsert("config", ("key",), {"key": k, "value": json.dumps(v)})
                if old is None or self._get_config("deny_history_from") is None:
                    # no record of what the gates' lists hold before this one (or they store ids of
                    # another length): deltas start here
                    self.db.upsert("config", ("key",), {"key": "deny_history_from", "value": json.dumps(serial)})
                else:
                    self.db.executemany("INSERT INTO deny_changes (serial, cti, op) VALUES (?, ?, ?)",
                                        [(serial, c, 1) for c in new - old] + [(serial, c, 0) for c in old - new])
        return bytes.fromhex(cur["data"])

    def deny_delta(self, base, now=None):
        """A delta (docs/protocol.md §6) from the gate's list `base` to the current signed list,
        or None when only the full list will do (base 0 or unknown, older than the recorded
        history, or not older than the current list). Bytes: 32-byte header, sorted adds and
        removes, the current list's signature, CRC."""
        data = self.deny_bytes(now)
        cur = self._get_config("deny_current")
        start = self._get_config("deny_history_from")
        if not isinstance(base, int) or base <= 0 or start is None or base < start or base >= cur["serial"]:
            return None
        first, last = {}, {}
        for r in self.db.execute("SELECT cti, op FROM deny_changes WHERE serial > ? ORDER BY serial", (base,)):
            c = bytes(r["cti"])
            first.setdefault(c, r["op"])
            last[c] = r["op"]
        # an id whose first change after base is a removal was on the base list; whose last is an add is on the new
        adds = [c for c in last if last[c] == 1 and first[c] == 1]
        removes = [c for c in last if last[c] == 0 and first[c] == 0]
        return formats.deny_delta_bytes(adds, removes, base, data)

    def deny_many(self, ctis, reason="deny add", by="back office", now=None) -> int:
        """Add many credential ids (bytes or hex) with one reason, in one transaction and one
        audit line (table deny_audit; settlement denies hundreds at once). Returns how many were new."""
        reason = _reason(reason)
        ids = [_cti_bytes(c) for c in ctis]
        if not ids:
            return 0
        t = _now(now)
        with self.db:
            before = self.db.execute("SELECT COUNT(*) FROM deny").fetchone()[0]
            self.db.executemany("INSERT INTO deny (cti, added, reason) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                                [(c, t, reason) for c in ids])
            n = self.db.execute("SELECT COUNT(*) FROM deny").fetchone()[0] - before
            if n:
                self.db.upsert("config", ("key",), {"key": "deny_dirty", "value": "true"})
            self.db.execute("INSERT INTO deny_audit (op, ids, changed, reason, \"by\", t) VALUES ('add', ?, ?, ?, ?, ?)",
                            (len(ids), n, reason, by, t))
        return n

    def undeny_many(self, ctis, reason, by="back office", now=None) -> int:
        """Take many credential ids off the deny list, in one transaction and one audit line.
        Returns how many were on it."""
        reason = _reason(reason)
        ids = [_cti_bytes(c) for c in ctis]
        with self.db:
            before = self.db.execute("SELECT COUNT(*) FROM deny").fetchone()[0]
            self.db.executemany("DELETE FROM deny WHERE cti = ?", [(c,) for c in ids])
            n = before - self.db.execute("SELECT COUNT(*) FROM deny").fetchone()[0]
            if n:
                self.db.upsert("config", ("key",), {"key": "deny_dirty", "value": "true"})
            self.db.execute("INSERT INTO deny_audit (op, ids, changed, reason, \"by\", t) VALUES ('remove', ?, ?, ?, ?, ?)",
                            (len(ids), n, reason, by, _now(now)))
        return n

    def deny_prune_expired(self, now=None) -> int:
        """Take off the deny list the ids of credentials (rider and operator) that expired more than
        `deny_expiry_grace_s` (default 1 day) before `now`: a gate refuses an expired credential by
        itself (CRED_EXPIRED), so keeping its id only costs flash and sync. The grace covers gate
        clocks running slow. One audit line when any left. Returns how many."""
        t = _now(now) - self._get_config("deny_expiry_grace_s", DENY_EXPIRY_GRACE_S)
        q = "SELECT cti FROM credentials WHERE exp <= ? UNION SELECT cti FROM operator_credentials WHERE exp <= ?"
        with self.db:
            cur = self.db.execute("DELETE FROM deny WHERE cti IN (%s)" % q, (t, t))
            n = cur.rowcount
            if n:
                self.db.upsert("config", ("key",), {"key": "deny_dirty", "value": "true"})
                self.db.execute("INSERT INTO deny_audit (op, ids, changed, reason, \"by\", t) "
                                "VALUES ('expired', ?, ?, 'credentials expired', 'back office', ?)", (n, n, _now(now)))
        return n

    def deny_id_bytes(self) -> int:
        """How many leading bytes of each credential id the deny list stores (config
        `deny_id_bytes`, 4 .. 8, default DENY_ID_BYTES = 5)."""
        return self._get_config("deny_id_bytes", DENY_ID_BYTES)

    def deny_prefix_clashes(self, ctis, now=None) -> list:
        """[(denied id, other credential id)] for ids whose stored prefix (deny_id_bytes()) an
        unexpired credential other than themselves also starts with: gates would refuse that
        credential too. Only ids never issued here can clash (_new_cti keeps prefixes unique)."""
        L = self.deny_id_bytes()
        t = _now(now)
        out = []
        if L >= 8:
            return out
        for c in ctis:
            c = _cti_bytes(c)
            lo, hi = c[:L] + bytes(8 - L), c[:L] + b"\xff" * (8 - L)
            for r in self.db.execute("SELECT cti FROM credentials WHERE cti BETWEEN ? AND ? AND cti != ? AND exp > ?",
                                     (lo, hi, c, t)):
                out.append((c, bytes(r["cti"])))
        return out

    def _new_cti(self) -> bytes:
        """A random 8-byte credential id whose first deny_id_bytes() bytes no other credential
        (rider or operator) and no deny list entry starts with: a deny list of prefixes then
        matches only the credential it was meant for."""
        L = self.deny_id_bytes()
        q = ("SELECT 1 FROM credentials WHERE cti BETWEEN ? AND ? UNION ALL SELECT 1 FROM deny WHERE cti BETWEEN ? "
             "AND ? UNION ALL SELECT 1 FROM operator_credentials WHERE cti BETWEEN ? AND ?")
        for _ in range(16):
            cti = os.urandom(8)
            lo, hi = cti[:L] + bytes(8 - L), cti[:L] + b"\xff" * (8 - L)
            if not self.db.execute(q, (lo, hi) * 3).fetchone():
                return cti
        raise BackOfficeError("could not allocate a credential id")  # pragma: no cover

    def deny_audit(self) -> list:
        """Every bulk change of the deny list, oldest first: [{op, ids, changed, reason, by, t}]."""
        return [dict(r) for r in self.db.execute('SELECT op, ids, changed, reason, "by", t FROM deny_audit ORDER BY id')]

    def deny_serial(self) -> int:
        """Serial of the newest signed deny list (0: none signed yet)."""
        cur = self._get_config("deny_current")
        return cur["serial"] if cur else 0

    # ------------------------------------------------------------------ the host's clock
    def time_floor(self) -> int:
        """The newest time this back office has signed or recorded (issuer key creation included):
        its clock must not be behind it."""
        created = [k["created"] for k in self.issuer_keys()]
        return max([self._get_config("time_floor", 0)] + created)

    def signing_time(self, now=None, *, not_before=None, force=False) -> int:
        """The host's time, checked before anything is signed with it (time for gates, deny and
        trust list issue times). Refused (ClockRefused, one line) if it is more than
        CLOCK_TOLERANCE_S behind what this back office already signed (`time_floor`) or behind
        `not_before` (e.g. the time a gate was last given), or further than `clock_max_jump_s`
        (default 30 days) ahead of the floor; `force=True` (--force-time) overrides after a
        deliberate clock check. Raises the floor to the time returned."""
        t = _now(now)
        floor = self.time_floor()
        tol = CLOCK_TOLERANCE_S
        if not force:
            if floor and t < floor - tol:
                raise ClockRefused("host clock %s is %d s behind the newest time this back office has already "
                                   "signed (%s); fix the host clock (or --force-time): not signing"
                                   % (_utc(t), floor - t, _utc(floor)))
            if not_before and t < not_before - tol:
                raise ClockRefused("host clock %s is %d s behind the time this gate was last given (%s); fix the "
                                   "host clock (or --force-time): not signing" % (_utc(t), not_before - t,
                                                                                  _utc(not_before)))
            jump = self._get_config("clock_max_jump_s", CLOCK_MAX_JUMP_S)
            if floor and jump and t > floor + jump:
                raise ClockRefused("host clock %s is %d days ahead of the newest time this back office has signed "
                                   "(%s), more than the plausible %d; check the host clock (or --force-time): not "
                                   "signing" % (_utc(t), (t - floor) // DAY, _utc(floor), jump // DAY))
        if t > self._get_config("time_floor", 0):
            self._set_config("time_floor", t)
        return t

    def settlement_time(self, now=None, force=False) -> int:
        """The time (Unix seconds) a settlement prices and posts its charges at: `now`, but always
        after the time the previous settlement used (recorded here, config "settle_floor"; a back
        office from before it: its newest charge or correction). A host clock stepped back thus
        neither un-prices a settled journey (an incomplete one turned pending again) nor posts
        lines above those already on a statement (docs/fares.md "Settled is final"), nor above the
        account lines the back office posted (openings, top-ups, holds). Refused (ClockRefused)
        more than `clock_max_jump_s` (30 days) ahead of the newest time the back office knows (it
        signed, or settled at), unless `force` (--force-time, after checking the clock): a time far
        ahead would release every live hold as expired and date every later posting after it.
        Records the time returned (inside the caller's transaction)."""
        t = _now(now)
        floor = self._get_config("settle_floor")
        known = max(self.time_floor(), floor or 0)
        jump = self._get_config("clock_max_jump_s", CLOCK_MAX_JUMP_S)
        if not force and known and jump and t > known + jump:
            raise ClockRefused("settlement time %s is %d days ahead of the newest time this back office knows "
                               "(%s), more than the plausible %d; check the host clock (or --force-time): not "
                               "settling" % (_utc(t), (t - known) // DAY, _utc(known), jump // DAY))
        if floor is None:
            floor = int(self.db.execute(
                "SELECT MAX(x) FROM (SELECT MAX(settled) AS x FROM charges UNION ALL "
                "SELECT MAX(t) AS x FROM charge_corrections) m").fetchone()[0] or 0)
        # nor before a line already posted by the back office (an opening, a top-up, a hold): a
        # statement sorts by posting time, so a trip must not land above the account's opening
        posted = int(self.db.execute(
            "SELECT MAX(x) FROM (SELECT MAX(t) AS x FROM account_audit UNION ALL "
            "SELECT MAX(created) AS x FROM holds) m").fetchone()[0] or 0)
        floor = max(floor, posted)
        if floor and t <= floor:
            t = floor + 1  # strictly after: a statement sorts by posting time
        self._set_config("settle_floor", t)
        return t

    def _issued_time(self, now=None) -> int:
        return self.signing_time(now)

    def export_deny(self, path) -> Path:
        return _atomic_write(path, self.deny_bytes())

    # ------------------------------------------------------------------ holds (SEEDS 3)
    def _place_hold(self, cti, account_id, amount, exp, now):
        # called inside issue_credential's transaction
        self.db.execute("INSERT INTO holds (cti, account, amount, used, exp, state, created) "
                        "VALUES (?, ?, ?, 0, ?, 'held', ?)", (cti, account_id, amount, exp, now))

    def holds(self, account_id=None) -> list:
        q = "SELECT * FROM holds" + (" WHERE account = ?" if account_id is not None else "") + " ORDER BY created, " + self._rowid("cti")
        out = []
        for r in self.db.execute(q, (account_id,) if account_id is not None else ()):
            d = dict(r)
            d["cti"] = bytes(d["cti"])
            out.append(d)
        return out

    def outstanding_holds(self, account_id) -> int:
        r = self.db.execute("SELECT COALESCE(SUM(amount - used), 0) FROM holds WHERE account = ? AND state = 'held'",
                            (account_id,)).fetchone()
        return int(r[0])

    def available(self, account_id) -> int:
        """Balance minus what open holds still reserve."""
        return self.get_account(account_id)["balance"] - self.outstanding_holds(account_id)

    def coverable(self, account_id) -> int:
        """What the account can still commit (minor units): balance + credit limit - what open holds
        reserve. Credit is consumed like balance: the balance may go down to -credit."""
        a = self.get_account(account_id)
        return a["balance"] + a["credit"] - self.outstanding_holds(account_id)

    def _overdrawn(self, account_id) -> bool:
        r = self.db.execute("SELECT balance, credit FROM accounts WHERE id = ?", (account_id,)).fetchone()
        return r["balance"] < -r["credit"]

    def credential(self, cti) -> dict:
        r = self.db.execute("SELECT * FROM credentials WHERE cti = ?", (_cti_bytes(cti),)).fetchone()
        if r is None:
            return None
        d = dict(r)
        d["cti"], d["kid"], d["rider_pub"] = bytes(d["cti"]), bytes(d["kid"]), bytes(d["rider_pub"])
        return d

    def charge_trip(self, gate, seq, cti, t, amount, now=None):
        """Charge one passage (gate, seq) to the credential's account, against its hold first.
        Idempotent: a (gate, seq) already charged returns None. Returns a dict describing the charge
        (over_cap = the part beyond the hold, taken straight from the balance; overdrawn = the
        account is now below its credit limit: the ledger flags and denies)."""
        return self.charge_trips([(gate, seq, cti, t, amount)], now)[0]

    def credentials_many(self, ctis) -> dict:
        """credential() for many credential ids (8 bytes each) in one query: {cti: dict}; an id the
        back office never issued is absent."""
        out = {}
        for r in self.db.rows_in("SELECT * FROM credentials WHERE cti", {_cti_bytes(c) for c in ctis}):
            d = dict(r)
            d["cti"], d["kid"], d["rider_pub"] = bytes(d["cti"]), bytes(d["kid"]), bytes(d["rider_pub"])
            out[d["cti"]] = d
        return out

    def charge_trips(self, trips, now=None, creds=None) -> list:
        """charge_trip for many (gate, seq, cti, t, amount) in one transaction; one result each
        (None for a (gate, seq) already charged). `creds`: {cti: credential()} the caller has
        already read (settlement reads them once for all chunks).

        Bulk, for settlement at scale (issue #13): the credentials, holds, charge totals and
        accounts of the whole call are read with a few IN queries, the charges worked out here in
        trip order (the hold first, running totals and balances: the same results as charging the
        trips one by one), then written with one COPY (charges; executemany on SQLite) and one
        executemany each for the holds and balances moved."""
        return [None if c is None else dict(zip(CHARGE_FIELDS, c)) for c in self.charge_trip_rows(
            [(gate, seq, bytes(cti), t, amount) for gate, seq, cti, t, amount in trips], now, creds)]

    def charge_trip_rows(self, trips, now=None, creds=None) -> list:
        """charge_trips without its per-trip dicts (settlement's 100,000 trips): `trips` are tuples
        starting (gate, seq, cti (bytes), t, amount) (more items are ignored); one result each,
        None or a tuple in CHARGE_FIELDS order."""
        now = _now(now)
        if not trips:
            return []
        out = []
        with self.db:
            ctis = {tr[2] for tr in trips}
            creds = dict(creds or {})
            missing = [c for c in ctis if c not in creds]
            if missing:
                creds.update(self.credentials_many(missing))
            for c in ctis:
                if creds.get(c) is None:
                    raise BackOfficeError("unknown credential %s" % c.hex())
            holds = {bytes(r[0]): [r[1], r[2], r[3], False] for r in self.db.rows_in(
                "SELECT cti, amount, used, state FROM holds WHERE cti", ctis)}  # amount, used, state, moved
            totals = dict.fromkeys(ctis, 0)
            for r in self.db.rows_in("SELECT cti, SUM(amount) FROM charges WHERE cti", ctis, " GROUP BY cti"):
                totals[bytes(r[0])] = int(r[1])
            for r in self.db.rows_in("SELECT cti, SUM(amount) FROM charge_corrections WHERE cti", ctis, " GROUP BY cti"):
                totals[bytes(r[0])] += int(r[1])
            accts = {r[0]: [r[1], r[2], 0] for r in self.db.rows_in(
                "SELECT id, balance, credit FROM accounts WHERE id", {creds[c]["account"] for c in ctis})}
            done = self._charged([(tr[0], tr[1]) for tr in trips])  # a crash repaired
            rows = []
            for tr in trips:
                gate, seq, cti, t, amount = tr[0], tr[1], tr[2], tr[3], tr[4]
                if (gate, seq) in done:  # already charged: idempotent
                    out.append(None)
                    continue
                done.add((gate, seq))
                cred = creds[cti]
                acct = cred["account"]
                hold = holds.get(cti)
                from_hold = 0
                if hold is not None and hold[2] == "held":
                    from_hold = min(amount, hold[0] - hold[1])
                    if from_hold:
                        hold[1] += from_hold
                        hold[3] = True
                rows.append((gate, seq, cti, acct, amount, from_hold, t, now))
                a = accts[acct]
                a[0] -= amount
                a[2] += amount
                total = totals[cti] = totals[cti] + amount
                out.append((acct, amount, from_hold, amount - from_hold if hold is not None else 0, cred["cap"], total,
                            a[0] < -a[1]))
            self.db.load("charges", ("gate", "seq", "cti", "account", "amount", "from_hold", "t", "settled"), rows,
                         ("int8", "int8", "bytea", "text", "int8", "int8", "int8", "int8"))  # binary COPY
            # the holds and balances moved, written once each (same transaction)
            self.db.executemany("UPDATE holds SET used = ? WHERE cti = ?",
                                [(h[1], c) for c, h in holds.items() if h[3]])
            self.db.executemany("UPDATE accounts SET balance = balance - ? WHERE id = ?",
                                [(a[2], acct) for acct, a in accts.items() if a[2]])
        return out

    def _charged(self, keys) -> set:
        """The (gate, seq) of `keys` that have a charge already: per gate, one range query over
        the keys' seqs (settlement's are normally fresh ones, above every charge: no rows)."""
        span = {}
        for gate, seq in keys:
            lo, hi = span.get(gate, (seq, seq))
            span[gate] = (min(lo, seq), max(hi, seq))
        keys = set(keys)
        out = set()
        for gate, (lo, hi) in span.items():
            out.update(k for k in ((gate, r[0]) for r in self.db.execute(
                "SELECT seq FROM charges WHERE gate = ? AND seq >= ? AND seq <= ?", (gate, lo, hi))) if k in keys)
        return out

    def set_journey_charges(self, account_id, since, charges, now=None, regime=None) -> list:
        """set_journey_charges_many for one account (below)."""
        return self.set_journey_charges_many([(account_id, since, charges)], now, regime)[0]

    def set_journey_charges_many(self, work, now=None, regime=None) -> list:
        """Make the net charges of pricing regime `regime` (a fare table version; None: the flat
        fare) of the account from `since` (Unix seconds, by the charge's tap time) exactly
        `charges`: [(gate, seq, cti, t, amount[, reason])], keyed by the journey's first tap
        (gate, seq), for each (account_id, since, charges) of `work`.

        Settled is final (docs/fares.md): a charge row is never updated or deleted. A new key is
        charged as charge_trip does (against the credential's hold first); a key whose net amount
        (charge + its corrections) differs gets a correction line (charge_corrections) with the
        difference and `reason` (a refund goes back to the hold first); a key of this regime no
        longer among them (a journey re-rated away) gets a correction refunding its net amount. A
        key charged by another regime is left as it is (delta 0, "frozen": True).
        One transaction; idempotent (the same call twice changes nothing the second time). Returns,
        per account, one dict per charge: account, amount, delta, from_hold, over_cap, cap,
        charged_total, overdrawn (the account ended below its credit limit and this charge added to
        it); then one dict ("vanished": True) per refunded vanished key. The balance changed by
        minus the sum of the deltas."""
        now = _now(now)
        if len({a for a, _s, _c in work}) < len(work):  # an account twice: each sees the one before
            with self.db:
                return [self.set_journey_charges_many([w], now, regime)[0] for w in work]
        with self.db:
            st = self._journey_state(work)
            out = [self._set_journey_charges(a, since, charges, now, regime, st) for a, since, charges in work]
            self._journey_flush(st, out)
            return out

    def net_charges(self, account_id=None) -> dict:
        """{(gate, seq): (charge, net)}: each settled charge's amount as charged and its net amount
        after its corrections (minor units)."""
        w, args = (" WHERE c.account = ?", (account_id,)) if account_id is not None else ("", ())
        return {(r[0], r[1]): (int(r[2]), int(r[2]) + int(r[3])) for r in self.db.execute(
            "SELECT c.gate, c.seq, c.amount, COALESCE((SELECT SUM(k.amount) FROM charge_corrections k WHERE "
            "k.gate = c.gate AND k.seq = c.seq), 0) FROM charges c" + w, args)}

    def charged_total(self, cti) -> int:
        """What credential `cti` has been charged in all (charges and their corrections, minor units)."""
        return int(self.db.execute("SELECT (SELECT COALESCE(SUM(amount), 0) FROM charges WHERE cti = ?) + "
                                   "(SELECT COALESCE(SUM(amount), 0) FROM charge_corrections WHERE cti = ?)",
                                   (cti, cti)).fetchone()[0])

    def _correct(self, key, cti, account_id, delta, from_hold, reason, now):
        # a correction line (inside the caller's transaction); n counts the charge's corrections
        n = int(self.db.execute("SELECT COALESCE(MAX(n), 0) FROM charge_corrections WHERE gate = ? AND seq = ?",
                                key).fetchone()[0]) + 1
        self.db.execute("INSERT INTO charge_corrections (gate, seq, n, cti, account, amount, from_hold, reason, t) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", (key[0], key[1], n, cti, account_id, delta, from_hold,
                                                               reason, now))

    def _journey_state(self, work):
        """What set_journey_charges_many reads, once for the whole call (a few IN queries, not
        several per charge: round trips on PostgreSQL): each account's charges from its `since`
        with their corrections' sums, the credentials, holds and charged totals involved."""
        since = {a: s for a, s, _c in work}
        old = {a: {} for a in since}
        lo = min(since.values()) if since else 0
        for r in self.db.rows_in(
                "SELECT c.account, c.t, c.gate, c.seq, c.cti, c.amount, c.from_hold, c.regime, "
                "COALESCE((SELECT SUM(k.amount) FROM charge_corrections k WHERE k.gate = c.gate AND k.seq = c.seq), 0), "
                "COALESCE((SELECT SUM(k.from_hold) FROM charge_corrections k WHERE k.gate = c.gate AND "
                "k.seq = c.seq), 0) FROM charges c WHERE c.t >= %d AND c.account" % int(lo), list(since)):
            if r[1] >= since[r[0]]:
                old[r[0]][(r[2], r[3])] = {"cti": bytes(r[4]), "amount": int(r[5]), "from_hold": int(r[6]),
                                           "regime": r[7], "corrected": int(r[8]), "corrected_hold": int(r[9])}
        ctis = {bytes(c[2]) for _a, _s, charges in work for c in charges}
        ctis.update(o["cti"] for keys in old.values() for o in keys.values())
        creds = self.credentials_many(ctis)
        holds = {bytes(r[0]): {"amount": int(r[1]), "used": int(r[2]), "state": r[3]} for r in self.db.rows_in(
            "SELECT cti, amount, used, state FROM holds WHERE cti", ctis)}
        capped = [c for c in ctis if creds.get(c) and creds[c]["cap"] is not None]
        totals = dict.fromkeys(capped, 0)  # charged_total of each capped credential, kept by the deltas
        for q in ("SELECT cti, SUM(amount) FROM charges WHERE cti", "SELECT cti, SUM(amount) FROM charge_corrections "
                  "WHERE cti"):
            for r in self.db.rows_in(q, capped, " GROUP BY cti"):
                totals[bytes(r[0])] += int(r[1])
        return {"old": old, "creds": creds, "holds": holds, "totals": totals, "used": {}, "balance": {}, "charges": []}

    def _journey_flush(self, st, out):
        """Write what _set_journey_charges kept in `st`: the new charges (one COPY on PostgreSQL),
        the holds' and balances' moves (one executemany each); then flag the charges that took
        an account below its credit limit (one query)."""
        if st["charges"]:
            self.db.load("charges", ("gate", "seq", "cti", "account", "amount", "from_hold", "t", "settled", "regime"),
                         st["charges"], ("int8", "int8", "bytea", "text", "int8", "int8", "int8", "int8", "int8"))
        self.db.executemany("UPDATE holds SET used = used + ? WHERE cti = ?",
                            [(d, c) for c, d in st["used"].items() if d])
        self.db.executemany("UPDATE accounts SET balance = balance - ? WHERE id = ?",
                            [(d, a) for a, d in st["balance"].items() if d])
        charged = {res[0]["account"] for res in out if res}
        for r in self.db.rows_in("SELECT id, balance, credit FROM accounts WHERE id", charged):
            if r[1] < -r[2]:  # below the credit limit: each charge that added to it
                for res in out:
                    if res and res[0]["account"] == r[0]:
                        for c in res:
                            c["overdrawn"] = c["delta"] > 0

    def _set_journey_charges(self, account_id, since, charges, now, regime, st):
        out = []
        # runs inside set_journey_charges_many's transaction, on its state `st` (_journey_state):
        # new charges, hold and balance moves are kept there and written by _journey_flush; a
        # journey's key is its first tap, and its charge's t that tap's time (>= since): every
        # key already charged is among st["old"][account_id]
        old = st["old"][account_id]
        want = set()
        totals = st["totals"]  # cti: its charged total (charged_total), kept by the deltas written

        def move(cti, delta, from_hold):
            """Apply delta to the balance, and to the hold; returns the part moved on the hold."""
            hold = st["holds"].get(cti)
            take = 0
            if hold is not None and hold["state"] == "held":
                if delta > 0:
                    take = min(delta, hold["amount"] - hold["used"])
                else:
                    take = -min(-delta, from_hold)
                if take:
                    hold["used"] += take
                    st["used"][cti] = st["used"].get(cti, 0) + take
            st["balance"][account_id] = st["balance"].get(account_id, 0) + delta
            return take

        for c in charges:
            gate, seq, cti, t, amount = c[:5]
            reason = c[5] if len(c) > 5 else "re-rated"
            cti = bytes(cti)
            key = (gate, seq)
            want.add(key)
            o = old.get(key)
            frozen = False
            if o is None:
                fh = move(cti, amount, 0)
                st["charges"].append((gate, seq, cti, account_id, amount, fh, t, now, regime))
                delta = amount
            elif o["regime"] != regime and o["amount"] + o["corrected"] == 0:
                # refunded in full under another regime (its journey re-rated away), priced again
                # now: the row goes over to this regime, the charge is a correction (history kept)
                self.db.execute("UPDATE charges SET regime = ? WHERE gate = ? AND seq = ?", (regime, gate, seq))
                fh = o["from_hold"] + o["corrected_hold"]
                delta = amount
                if delta:
                    take = move(o["cti"], delta, fh)
                    self._correct(key, o["cti"], account_id, delta, take, reason, now)
                    fh += take
            elif o["regime"] != regime:  # settled by another pricing regime: final
                frozen, delta, amount = True, 0, o["amount"] + o["corrected"]
                fh = o["from_hold"] + o["corrected_hold"]
            else:
                net = o["amount"] + o["corrected"]
                delta = amount - net
                fh = o["from_hold"] + o["corrected_hold"]
                if delta:
                    take = move(o["cti"], delta, fh)
                    self._correct(key, o["cti"], account_id, delta, take, reason, now)
                    fh += take
            paid_by = cti if o is None else o["cti"]  # the credential the delta was written for
            if paid_by in totals:
                totals[paid_by] += delta
            cred = st["creds"].get(cti)
            cap = cred["cap"] if cred else None
            total = totals[cti] if cap is not None else None  # only a capped credential needs its total
            out.append({"account": account_id, "amount": amount, "delta": delta, "from_hold": fh,
                        "over_cap": amount - fh if cap is not None else 0, "cap": cap,
                        "charged_total": total, "overdrawn": False, "frozen": frozen})
        for key, o in old.items():
            net = o["amount"] + o["corrected"]
            if key not in want and o["regime"] == regime and net:
                take = move(o["cti"], -net, o["from_hold"] + o["corrected_hold"])
                if o["cti"] in totals:
                    totals[o["cti"]] -= net
                self._correct(key, o["cti"], account_id, -net, take, "re-rated: journey no longer there, "
                              "refunded", now)
                out.append({"account": account_id, "amount": 0, "delta": -net, "from_hold": 0, "over_cap": 0,
                            "cap": None, "charged_total": None, "overdrawn": False, "vanished": True})
        return out

    def release_expired_holds(self, now=None, expired_by=None) -> list:
        """Release the unused part of every hold whose credential has expired by `expired_by`
        (default `now`), posted at `now` (Unix seconds). Returns the released holds."""
        now = _now(now)
        by = now if expired_by is None else min(now, expired_by)
        with self.db:
            rows = [dict(r) for r in self.db.execute("SELECT * FROM holds WHERE state = 'held' AND exp <= ?", (by,))]
            self.db.execute("UPDATE holds SET state = 'released', released = ? WHERE state = 'held' AND exp <= ?",
                            (now, by))
        for r in rows:
            r["cti"] = bytes(r["cti"])
            r["released_amount"] = r["amount"] - r["used"]
        return rows

    # ------------------------------------------------------------------ root key (signs trust lists, time)
    def root_key(self):
        """The back-office root key (created on first use): the gates hold its public key and accept
        trust lists and time only when signed by it."""
        path = self.keys_dir / "root.pem"
        if not path.exists():
            keys.save_private_pem(path, keys.generate())
        return keys.load_private_pem(path)

    def root_pub(self) -> bytes:
        return keys.pub_bytes(self.root_key())

    def root_sign(self, payload: bytes) -> bytes:
        """COSE_Sign1 (tagged, ES256, kid = root kid) over `payload` with the root key."""
        k = self.root_key()
        return formats.sign1(k, {formats.H_ALG: formats.ALG_ES256, formats.H_KID: keys.kid_of(keys.pub_bytes(k))},
                              payload, tagged=True)

    def batch_key(self):
        """The key gates encrypt their batch summaries to (created on first use)."""
        path = self.keys_dir / "batch.pem"
        if not path.exists():
            keys.save_private_pem(path, keys.generate())
        return keys.load_private_pem(path)

    # ------------------------------------------------------------------ operators (sync link)
    def issue_operator_credential(self, name, operator_pub65, *, valid_seconds=86400, now=None,
                                  signer="root") -> bytes:
        """An operator credential: a CWT like a rider credential, but with the role claim
        (-65538: "operator") and no access claim, certifying the operator's key (cnf, uncompressed).
        A gate accepts a sync session only from the holder of such a key.

        Signed by the root key (signer="root", the default): gates check it against root.pub, so
        it works at a gate that missed an issuer-key rotation or whose trust store is damaged,
        and that gate can be given the new trust list remotely. signer="issuer" signs with the
        oldest active issuer key instead (what gates before root-signed operators accept)."""
        now = _now(now)
        if not isinstance(name, str) or not name:
            raise BackOfficeError("operator name must be a non-empty string")
        if isinstance(valid_seconds, bool) or not isinstance(valid_seconds, int) or valid_seconds <= 0:
            raise BackOfficeError("valid_seconds must be a positive integer")
        pub65 = keys.pub_bytes(operator_pub65)
        if self.db.execute("SELECT 1 FROM operator_revoked WHERE name = ?", (name,)).fetchone():
            raise BackOfficeError("operator %r is revoked; no credential issued" % name)
        if signer == "root":
            skey = self.root_key()
            kid, iss, nbf, exp = keys.kid_of(keys.pub_bytes(skey)), self._get_config("issuer_name", DEFAULT_ISSUER), \
                now - OPERATOR_SKEW, now + valid_seconds
        else:
            # the OLDEST issuer key still active: during a rotation every gate still trusts it
            active = [k for k in self.issuer_keys() if k["nbf"] <= now < k["exp"]]
            if not active:
                self.signing_key(now)  # raises the right error
            kinfo = active[0]
            skey = keys.load_private_pem(self.data_dir / kinfo["key_file"])
            kid, iss = kinfo["kid"], kinfo["iss"]
            nbf, exp = max(kinfo["nbf"], now - OPERATOR_SKEW), min(now + valid_seconds, kinfo["exp"])
        import cbor2
        cti = self._new_cti()
        claims = {formats.C_ISS: iss, formats.C_SUB: name, formats.C_EXP: exp, formats.C_NBF: max(0, nbf),
                  formats.C_CTI: cti, formats.C_CNF: {1: formats.cnf_key(pub65, compressed=False)},
                  ROLE_CLAIM: ROLE_OPERATOR}
        with self.db:  # every operator credential is recorded, so that revoking its holder can deny it
            self.db.execute("INSERT INTO operator_credentials (cti, name, exp, issued) VALUES (?, ?, ?, ?)",
                            (cti, name, exp, now))
        return formats.sign1(skey, {formats.H_ALG: formats.ALG_ES256, formats.H_KID: kid},
                              cbor2.dumps(claims), tagged=False)

    def operator_identity(self, name="operator", valid_seconds=3600, now=None):
        """(private key, credential) for operator `name`: the key is kept under keys/, the credential fresh."""
        path = self.keys_dir / ("operator-%s.pem" % "".join(c if c.isalnum() or c in "-_" else "_" for c in name))
        if not path.exists():
            keys.save_private_pem(path, keys.generate())
        k = keys.load_private_pem(path)
        return k, self.issue_operator_credential(name, keys.pub_bytes(k), valid_seconds=valid_seconds, now=now)


    def revoke_operator(self, name, now=None) -> list:
        """Revoke operator `name`: no new credential is issued to it, and every credential it holds
        that has not expired goes onto the deny list (gates refuse a sync session from a credential
        on their deny list, in every scope). Returns the denied credential ids. Idempotent."""
        now = _now(now)
        with self.db:
            self.db.execute("INSERT INTO operator_revoked (name, revoked) VALUES (?, ?) ON CONFLICT DO NOTHING", (name, now))
        ctis = [bytes(r["cti"]) for r in self.db.execute(
            "SELECT cti FROM operator_credentials WHERE name = ? AND exp > ?", (name, now))]
        for c in ctis:
            self.deny(c)
        return ctis

    def register_gate(self, gate_id, pub65, board, *, replace=False, now=None) -> dict:
        """Register gate `gate_id` with its device key (65-byte SEC1, generated on the gate). Idempotent
        for the same key; a different key for a known gate (a re-flashed gate) needs replace=True."""
        if isinstance(gate_id, bool) or not isinstance(gate_id, int) or gate_id < 0:
            raise BackOfficeError("gate id must be a non-negative integer, got %r" % (gate_id,))
        if not isinstance(board, str) or not board:
            raise BackOfficeError("board must be a non-empty string")
        try:
            pub65 = keys.pub_bytes(keys.pub_from_bytes(bytes(pub65)))
        except (TypeError, ValueError) as e:
            raise BackOfficeError("gate %d: bad device key: %s" % (gate_id, e)) from None
        old = self.db.execute("SELECT * FROM gates WHERE gate_id = ?", (gate_id,)).fetchone()
        if old is not None and bytes(old["pub"]) != pub65 and not replace:
            raise BackOfficeError("gate %d is already registered with another device key (%s...); "
                                  "re-provisioning a gate needs --replace" % (gate_id, bytes(old["pub"]).hex()[:16]))
        other = self.db.execute("SELECT gate_id FROM gates WHERE pub = ? AND gate_id != ?", (pub65, gate_id)).fetchone()
        if other is not None:
            raise BackOfficeError("that device key already belongs to gate %d" % other["gate_id"])
        with self.db:
            self.db.upsert("gates", ("gate_id",), {"gate_id": gate_id, "pub": pub65, "board": board,
                                                   "registered": _now(now)})
        return self.registered_gate(gate_id)

    def registered_gate(self, gate_id) -> dict:
        r = self.db.execute("SELECT * FROM gates WHERE gate_id = ?", (gate_id,)).fetchone()
        if r is None:
            raise BackOfficeError("unknown gate %r" % (gate_id,))
        return {"gate_id": r["gate_id"], "pub": bytes(r["pub"]), "board": r["board"], "registered": r["registered"]}

    def gates(self) -> list:
        return [{"gate_id": r["gate_id"], "pub": bytes(r["pub"]), "board": r["board"], "registered": r["registered"]}
                for r in self.db.execute("SELECT * FROM gates ORDER BY gate_id")]

    # ---------------------------------------------------------------------------- top-ups, statement, undeny
    def top_up(self, account_id, amount, by="back office", reason="top-up", now=None) -> dict:
        """Add `amount` (minor units, > 0) to the account's balance; who and why go into the audit trail."""
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0 or amount > MAX_AMOUNT:
            raise BackOfficeError("a top-up must be an integer from 1 to %d (minor units), got %r" % (MAX_AMOUNT, amount))
        reason = _reason(reason)
        if self.get_account(account_id)["balance"] + amount > MAX_AMOUNT:
            raise BackOfficeError("account %r: a balance above %d is refused" % (account_id, MAX_AMOUNT))
        with self.db:
            self.db.execute("UPDATE accounts SET balance = balance + ? WHERE id = ?", (amount, account_id))
            self._audit(account_id, "top-up", amount, reason, by, _now(now))
        return self.get_account(account_id)

    def statement(self, account_id) -> list:
        """The account's movements in the order they were posted: dicts {t, tap, kind, amount,
        balance, hold, detail}. t: when the line was posted (Unix seconds: a charge's or
        correction's settlement, a top-up's, a hold's creation), so the statement only grows at its
        end, as the rider saw it (a journey priced late comes last, not above older lines); tap:
        the time of the charged journey's first tap (trip and correction lines; None otherwise).
        kind: "opening", "top-up", "adjustment", "credit" (a new credit limit), "trip" (a settled
        charge, gate and seq, as charged: never changed later), "correction" (a re-rating of a
        settled charge by the difference, with its reason: docs/fares.md "Settled is final"), "hold" (a credential's cap reserved), "release" (a hold's unused rest
        freed). amount: the change of the balance (signed, minor units; 0 for credit and holds);
        balance: the running balance after it, so the last one is the account's balance; hold: the
        amount a hold reserves (+) or frees (-)."""
        self.get_account(account_id)
        out, taps = [], {}
        for r in self.db.execute("SELECT * FROM account_audit WHERE account = ? ORDER BY t, id", (account_id,)):
            d = r["reason"] + ("" if r["by"] in ("", "back office") else " (by %s)" % r["by"])
            if r["credit"] is not None:
                d += "; credit limit %d" % r["credit"]
            out.append({"t": r["t"], "tap": None, "kind": r["kind"], "amount": r["amount"], "hold": 0, "detail": d,
                        "order": (0, r["id"])})
        for r in self.db.execute("SELECT * FROM charges WHERE account = ?", (account_id,)):
            taps[(r["gate"], r["seq"])] = r["t"]
            out.append({"t": r["settled"], "tap": r["t"], "kind": "trip", "amount": -r["amount"], "hold": 0,
                        "order": (2, r["gate"], r["seq"]),
                        "detail": "gate %d seq %d, credential %s%s" % (
                            r["gate"], r["seq"], bytes(r["cti"]).hex(),
                            " (%d from its hold)" % r["from_hold"] if r["from_hold"] else "")})
        for r in self.db.execute("SELECT * FROM charge_corrections WHERE account = ?", (account_id,)):
            out.append({"t": r["t"], "tap": taps.get((r["gate"], r["seq"])), "kind": "correction",
                        "amount": -r["amount"], "hold": 0,
                        "order": (2, r["gate"], r["seq"], r["n"]),
                        "detail": "gate %d seq %d, credential %s: %s%s" % (
                            r["gate"], r["seq"], bytes(r["cti"]).hex(), r["reason"],
                            " (%d on its hold)" % r["from_hold"] if r["from_hold"] else "")})
        for r in self.db.execute("SELECT * FROM holds WHERE account = ?", (account_id,)):
            cti = bytes(r["cti"]).hex()
            out.append({"t": r["created"], "tap": None, "kind": "hold", "amount": 0, "hold": r["amount"], "order": (1, cti),
                        "detail": "cap %d held for credential %s" % (r["amount"], cti)})
            if r["state"] == "released":
                out.append({"t": r["released"], "tap": None, "kind": "release", "amount": 0, "hold": -(r["amount"] - r["used"]),
                            "order": (3, cti), "detail": "credential %s expired: %d of its hold used, %d freed"
                            % (cti, r["used"], r["amount"] - r["used"])})
        out.sort(key=lambda m: (m["t"], m.pop("order")))
        bal = 0
        for m in out:
            bal += m["amount"]
            m["balance"] = bal
        return out

    def undeny(self, cti, reason="undeny", by="back office") -> bool:
        """Take a credential id off the deny list (a fraud case closed in the rider's favour).
        True if it was on the list. The gates get the shorter list at their next sync."""
        return self.undeny_many([_cti_bytes(cti)], reason, by) == 1

    def deny_entries(self) -> list:
        """The deny list with when and why each id was added: [{"cti": bytes, "added": t, "reason": str
        or None}], by cti."""
        return [{"cti": bytes(r["cti"]), "added": r["added"], "reason": r["reason"]}
                for r in self.db.execute("SELECT cti, added, reason FROM deny ORDER BY cti")]


ROLE_CLAIM = -65538
OPERATOR_SKEW = 600  # an operator credential is valid from 10 minutes back: gate clocks drift
ROLE_OPERATOR = "operator"


# ---------------------------------------------------------------------------- gates (provisioning)
# `offgate provision` registers a gate's device public key, generated on the gate, under its gate id.


