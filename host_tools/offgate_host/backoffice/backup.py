"""Back-office backup and restore, and encrypting its keys at rest (issue #13).

A backup is a gzip'd tar: `offgate.db` (a consistent copy taken with SQLite's online backup, so a
running `offgate serve` or sync does not tear it) or, for a back office on PostgreSQL, the
`database.url` naming it (its data is backed up with pg_dump), every file under `keys/` as it is
(encrypted keys stay encrypted), and `MANIFEST.json` with the SHA-256 of each. Restore checks the manifest
before it writes anything and only into a directory without a back office.
"""
import hashlib
import io
import json
import os
import sqlite3
import tarfile
import tempfile
import time
from pathlib import Path

from ..atomicfile import replacing
from ..wire import keys
from .backoffice import DB_NAME, DB_URL_FILE, BackOfficeError, database_url, exists

FORMAT = "offgate-backup-1"


def _add_bytes(tar, name, data, mode=0o600):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = int(time.time())
    tar.addfile(info, io.BytesIO(data))


def backup(data_dir, out) -> dict:
    """Write the back office in `data_dir` to the archive `out` (its directory must exist; an
    existing file is not overwritten). Returns the manifest."""
    data_dir, out = Path(data_dir), Path(out)
    if not exists(data_dir):
        raise BackOfficeError("no back office in %s" % data_dir)
    if not out.parent.is_dir():
        raise BackOfficeError("cannot write %s: directory %s does not exist" % (out, out.parent))
    if out.exists():
        raise BackOfficeError("%s exists: give a new file name" % out)
    from ..db import parse_url, safe_url
    kind, where = parse_url(database_url(data_dir), BackOfficeError)
    files = {}
    if kind == "pg":
        # its data is on the server, which backs it up with its own tools (pg_dump); the keys,
        # which no database dump holds, and the file naming the database are copied here
        files[DB_URL_FILE] = (data_dir / DB_URL_FILE).read_bytes()
    else:
        _sqlite_snapshot(where, files)
    for p in sorted((data_dir / "keys").glob("*")) if (data_dir / "keys").is_dir() else ():
        if p.is_file() and not p.name.endswith(".tmp"):
            files["keys/" + p.name] = p.read_bytes()
    manifest = {"format": FORMAT, "created": int(time.time()),
                "database": "postgresql, not included: %s (pg_dump)" % safe_url(where) if kind == "pg" else "sqlite",
                "files": {n: hashlib.sha256(b).hexdigest() for n, b in files.items()},
                "encrypted_keys": sorted(n for n, b in files.items() if n.startswith("keys/") and keys.is_encrypted_pem(b))}
    with replacing(out, mode=0o600) as tmp_out:
        with tarfile.open(tmp_out, "w:gz") as tar:
            _add_bytes(tar, "MANIFEST.json", json.dumps(manifest, indent=1).encode(), 0o644)
            for n, b in files.items():
                _add_bytes(tar, n, b)
    return manifest


def _sqlite_snapshot(where, files):
    with tempfile.TemporaryDirectory() as tmp:
        snap = Path(tmp) / DB_NAME
        src = sqlite3.connect(str(where))  # its own offgate.db, or the SQLite file it names
        dst = sqlite3.connect(str(snap))
        try:
            src.backup(dst)  # consistent, even with writers
        finally:
            dst.close()
            src.close()
        files[DB_NAME] = snap.read_bytes()


def restore(archive, data_dir) -> dict:
    """Restore the archive into `data_dir` (a new or empty directory whose parent exists). Every
    file is checked against the manifest first; nothing is written if one does not match."""
    archive, data_dir = Path(archive), Path(data_dir)
    if exists(data_dir) or (data_dir.is_dir() and any(data_dir.iterdir())):
        raise BackOfficeError("%s is not empty: restore into a new directory" % data_dir)
    if not data_dir.parent.is_dir():
        raise BackOfficeError("cannot restore into %s: %s does not exist" % (data_dir, data_dir.parent))
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = {m.name: m for m in tar.getmembers()}
            if "MANIFEST.json" not in members:
                raise BackOfficeError("%s is not an offgate backup (no MANIFEST.json)" % archive)
            manifest = json.loads(tar.extractfile(members["MANIFEST.json"]).read())
            if manifest.get("format") != FORMAT:
                raise BackOfficeError("%s: unknown backup format %r" % (archive, manifest.get("format")))
            files = {}
            for name, digest in manifest["files"].items():
                m = members.get(name)
                if m is None or not m.isfile() or (name not in (DB_NAME, DB_URL_FILE) and not (name.startswith("keys/")
                                                                          and "/" not in name[5:] and ".." not in name)):
                    raise BackOfficeError("%s: missing or unexpected member %r" % (archive, name))
                data = tar.extractfile(m).read()
                if hashlib.sha256(data).hexdigest() != digest:
                    raise BackOfficeError("%s: %s does not match its checksum: the backup is damaged" % (archive, name))
                files[name] = data
    except (tarfile.TarError, OSError, EOFError, ValueError, KeyError) as e:
        raise BackOfficeError("%s is not a readable offgate backup: %s" % (archive, e)) from None
    data_dir.mkdir(exist_ok=True)
    (data_dir / "keys").mkdir(exist_ok=True)
    for name, data in files.items():
        p = data_dir / name
        fd = os.open(str(p), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return manifest


def encrypt_keys(data_dir, password) -> list:
    """Encrypt every unencrypted private key under data_dir/keys with `password` (rewritten
    atomically). Keys already encrypted must open with the same passphrase. Returns the names
    encrypted now."""
    if not password or len(password) < 8:
        raise BackOfficeError("a passphrase of at least 8 characters is needed")
    done = []
    for p in sorted((Path(data_dir) / "keys").glob("*.pem")):
        data = p.read_bytes()
        if keys.is_encrypted_pem(data):
            from cryptography.hazmat.primitives import serialization
            try:  # the same passphrase must open it: one passphrase for the back office
                serialization.load_pem_private_key(data, password=password.encode())
            except (ValueError, TypeError):
                raise BackOfficeError("%s is encrypted with another passphrase" % p.name) from None
            continue
        keys.save_private_pem(p, keys.load_private_pem_bytes(data, path=p), password=password)
        done.append(p.name)
    return done
