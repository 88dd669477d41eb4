"""The web server's own state in the back office's database (`offgate.db`): staff accounts,
staff sessions, enrolment invites, rider wallets (web-wallet keys) and fraud-case notes.

Self-contained tables (created on first use), like the back office's gate registry: nothing here
changes the back office's or the ledger's tables. Secrets are stored only as SHA-256 digests
(invite tokens, session ids); passwords as argon2id hashes (argon2-cffi).
"""
import hashlib
import json
import secrets
import time

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ..backoffice.backoffice import BackOfficeError

ROLES = ("viewer", "operator", "admin")  # each role can do what the ones before it can
SESSION_SECONDS = 8 * 3600               # one shift
INVITE_SECONDS = 24 * 3600               # default lifetime of an enrolment link

class WebError(BackOfficeError):
    """A user-facing problem with staff, sessions, invites or wallets."""


def _now(now=None):
    return int(time.time() if now is None else now)


def _h(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


_ph = PasswordHasher()


# ------------------------------------------------------------------ staff
def add_staff(bo, name, password, role, now=None):
    """Create or replace staff account `name` (role viewer/operator/admin; password >= 10 chars)."""
    if not isinstance(name, str) or not name.strip() or len(name) > 64:
        raise WebError("staff name must be 1-64 characters")
    if role not in ROLES:
        raise WebError("role must be one of %s" % ", ".join(ROLES))
    if not isinstance(password, str) or len(password) < 10:
        raise WebError("password must be at least 10 characters")
    with bo.db:
        bo.db.upsert("web_staff", ("name",), {"name": name, "pw_hash": _ph.hash(password), "role": role,
                                              "created": _now(now), "disabled": 0})
        bo.db.execute("DELETE FROM web_sessions WHERE name = ?", (name,))  # a new password ends old sessions
    return {"name": name, "role": role}


def list_staff(bo):
    return [{"name": r["name"], "role": r["role"], "created": r["created"], "disabled": bool(r["disabled"])}
            for r in bo.db.execute("SELECT * FROM web_staff ORDER BY name")]


def disable_staff(bo, name):
    """Disable a staff account and end its sessions (kept for the record, not deleted)."""
    with bo.db:
        if bo.db.execute("UPDATE web_staff SET disabled = 1 WHERE name = ?", (name,)).rowcount != 1:
            raise WebError("no staff account %r" % name)
        bo.db.execute("DELETE FROM web_sessions WHERE name = ?", (name,))


def check_password(bo, name, password):
    """The staff row if name/password match (constant work whether or not the name exists), else None."""
    r = bo.db.execute("SELECT * FROM web_staff WHERE name = ? AND disabled = 0", (name or "",)).fetchone()
    h = r["pw_hash"] if r else _DUMMY_HASH
    try:
        _ph.verify(h, password or "")
    except (VerificationError, InvalidHashError):
        return None
    return dict(r) if r else None


_DUMMY_HASH = _ph.hash("not a real password, only equalises timing")


def role_at_least(role, needed):
    return ROLES.index(role) >= ROLES.index(needed)


# ------------------------------------------------------------------ sessions
def new_session(bo, name, now=None):
    """(session id, csrf token): the id goes into an HttpOnly cookie, only its digest is stored."""
    now = _now(now)
    sid, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    with bo.db:
        bo.db.execute("DELETE FROM web_sessions WHERE expires <= ?", (now,))
        bo.db.execute("INSERT INTO web_sessions (sid_hash, name, csrf, created, expires) VALUES (?, ?, ?, ?, ?)",
                      (_h(sid), name, csrf, now, now + SESSION_SECONDS))
    return sid, csrf


def session(bo, sid, now=None):
    """{"name", "role", "csrf"} for a live session id, else None."""
    if not sid:
        return None
    r = bo.db.execute("SELECT s.name, s.csrf, s.expires, t.role FROM web_sessions s JOIN web_staff t ON t.name = s.name "
                      "WHERE s.sid_hash = ? AND t.disabled = 0", (_h(sid),)).fetchone()
    if r is None or r["expires"] <= _now(now):
        return None
    return {"name": r["name"], "role": r["role"], "csrf": r["csrf"]}


def end_session(bo, sid):
    if sid:
        with bo.db:
            bo.db.execute("DELETE FROM web_sessions WHERE sid_hash = ?", (_h(sid),))


# ------------------------------------------------------------------ invites
def create_invite(bo, account, *, zones, product=1, valid_seconds=86400, cap=None, replace=False,
                  ttl=INVITE_SECONDS, by="cli", now=None):
    """A single-use enrolment token for `account` (returned once; only its digest is stored).
    The credential rules (zones, product, validity, cap) travel with it; `replace` revokes the
    account's earlier wallets when it is used (a lost or replaced phone)."""
    now = _now(now)
    bo.get_account(account)  # UnknownAccount
    zones = [int(z) for z in zones]
    if not zones or any(z < 0 for z in zones):
        raise WebError("an invite needs at least one zone (non-negative integers)")
    if not isinstance(ttl, int) or not 60 <= ttl <= 30 * 86400:
        raise WebError("an invite lives between 60 seconds and 30 days")
    token = secrets.token_urlsafe(24)
    with bo.db:
        bo.db.execute("INSERT INTO web_invites (token_hash, account, zones, product, valid_seconds, cap, replace_old, "
                      "created_by, created, expires) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      (_h(token), account, json.dumps(zones), int(product), int(valid_seconds), cap,
                       1 if replace else 0, by, now, now + ttl))
    return {"token": token, "account": account, "expires": now + ttl, "zones": zones, "product": int(product),
            "replace": bool(replace)}


def list_invites(bo, account=None):
    q = "SELECT * FROM web_invites" + (" WHERE account = ?" if account else "") + " ORDER BY created DESC"
    out = []
    for r in bo.db.execute(q, (account,) if account else ()):
        d = dict(r)
        d.pop("token_hash")
        d["used_by_pub"] = bytes(d["used_by_pub"]).hex() if d["used_by_pub"] else None
        out.append(d)
    return out


def consume_invite(bo, token, pub65, now=None):
    """Mark the invite used by `pub65` (atomically: a second use fails) and return its row."""
    now = _now(now)
    with bo.db:
        cur = bo.db.execute("UPDATE web_invites SET used = ?, used_by_pub = ? WHERE token_hash = ? AND used IS NULL "
                            "AND expires > ?", (now, pub65, _h(token or ""), now))
        if cur.rowcount != 1:
            r = bo.db.execute("SELECT used, expires FROM web_invites WHERE token_hash = ?", (_h(token or ""),)).fetchone()
            if r is None:
                raise WebError("unknown enrolment link")
            if r["used"] is not None:
                raise WebError("this enrolment link has already been used")
            raise WebError("this enrolment link has expired")
    return dict(bo.db.execute("SELECT * FROM web_invites WHERE token_hash = ?", (_h(token),)).fetchone())


def release_invite(bo, token):
    """Undo consume_invite when issuance failed (the rider may retry after a top-up)."""
    with bo.db:
        bo.db.execute("UPDATE web_invites SET used = NULL, used_by_pub = NULL WHERE token_hash = ?", (_h(token),))


# ------------------------------------------------------------------ wallets
def add_wallet(bo, pub65, invite, now=None):
    now = _now(now)
    with bo.db:
        bo.db.upsert("web_wallets", ("pub",), {
            "pub": pub65, "account": invite["account"], "zones": invite["zones"], "product": invite["product"],
            "valid_seconds": invite["valid_seconds"], "cap": invite["cap"], "enrolled": now, "last_contact": now,
            "last_t": 0, "revoked": None})


def wallet(bo, pub65):
    r = bo.db.execute("SELECT * FROM web_wallets WHERE pub = ?", (pub65,)).fetchone()
    return dict(r) if r else None


def wallets(bo, account=None):
    q = "SELECT * FROM web_wallets" + (" WHERE account = ?" if account else "") + " ORDER BY enrolled"
    out = []
    for r in bo.db.execute(q, (account,) if account else ()):
        d = dict(r)
        d["pub"] = bytes(d["pub"]).hex()
        out.append(d)
    return out


def touch_wallet(bo, pub65, t, now=None):
    """Record a signed request at wallet time t; t must rise (a replayed request is refused)."""
    with bo.db:
        cur = bo.db.execute("UPDATE web_wallets SET last_contact = ?, last_t = ? WHERE pub = ? AND last_t < ?",
                            (_now(now), t, pub65, t))
        if cur.rowcount != 1:
            raise WebError("request replayed or out of order")


def revoke_wallets(bo, account, keep_pub=None, now=None):
    """Revoke the account's wallets (except keep_pub) and deny their credentials still valid.
    Returns the credential ids put on the deny list."""
    now = _now(now)
    denied = []
    for w in wallets(bo, account):
        pub = bytes.fromhex(w["pub"])
        if pub == keep_pub or w["revoked"]:
            continue
        with bo.db:
            bo.db.execute("UPDATE web_wallets SET revoked = ? WHERE pub = ?", (now, pub))
        for c in bo.credentials(account):
            if c["rider_pub"] == pub and c["exp"] > now:
                denied.append(bo.deny(c["cti"]))
    return denied


# ------------------------------------------------------------------ fraud notes
def add_note(bo, fraud_id, staff, text, now=None):
    text = (text or "").strip()
    if not text or len(text) > 2000:
        raise WebError("a note is 1-2000 characters")
    with bo.db:
        bo.db.execute("INSERT INTO web_notes (fraud, staff, text, t) VALUES (?, ?, ?, ?)",
                      (int(fraud_id), staff, text, _now(now)))


def notes(bo, fraud_id=None):
    q = "SELECT * FROM web_notes" + (" WHERE fraud = ?" if fraud_id is not None else "") + " ORDER BY t, id"
    return [dict(r) for r in bo.db.execute(q, (int(fraud_id),) if fraud_id is not None else ())]
