"""Keys encrypted at rest with a passphrase, backup and restore (issue #13)."""
import tarfile

import pytest

from click.testing import CliRunner

from offgate_host.wire import keys
from offgate_host.backoffice.backoffice import BackOffice
from offgate_host.cli import main


def test_encrypt_keys_backup_restore(tmp_path, monkeypatch):
    monkeypatch.delenv(keys.PASSPHRASE_ENV, raising=False)
    r = CliRunner()
    d = ["--data", str(tmp_path / "bo")]
    assert r.invoke(main, ["init", *d]).exit_code == 0
    assert r.invoke(main, ["account", "create", "a", "--balance", "5000", *d]).exit_code == 0
    assert r.invoke(main, ["wallet", "new", str(tmp_path / "w.json")]).exit_code == 0
    res = r.invoke(main, ["keys", "encrypt", *d])
    assert res.exit_code == 2 and "OFFGATE_PASSPHRASE" in res.stderr  # no terminal, no env: told how
    monkeypatch.setenv(keys.PASSPHRASE_ENV, "correct horse battery")
    res = r.invoke(main, ["keys", "encrypt", *d])
    assert res.exit_code == 0 and "1 key(s) encrypted" in res.output, res.output
    assert "NOT" not in r.invoke(main, ["keys", "status", *d]).output
    pem = next((tmp_path / "bo" / "keys").glob("issuer-*.pem")).read_bytes()
    assert keys.is_encrypted_pem(pem) and b"PRIVATE KEY-----\n" in pem
    issue = ["credential", "issue", "a", "--wallet", str(tmp_path / "w.json"), "--zones", "1", *d]
    assert r.invoke(main, issue).exit_code == 0  # signs with the passphrase from the environment
    monkeypatch.delenv(keys.PASSPHRASE_ENV)
    res = r.invoke(main, issue)
    assert res.exit_code == 1 and "is encrypted: set OFFGATE_PASSPHRASE" in res.stderr, res.output
    monkeypatch.setenv(keys.PASSPHRASE_ENV, "wrong wrong wrong")
    res = r.invoke(main, issue)
    assert res.exit_code == 1 and "wrong passphrase" in res.stderr
    # backup, then restore into a new directory: the same back office, keys still encrypted
    res = r.invoke(main, ["backup", str(tmp_path / "bo.tar.gz"), *d])
    assert res.exit_code == 0 and "1 encrypted key(s)" in res.output, res.output
    assert r.invoke(main, ["backup", str(tmp_path / "bo.tar.gz"), *d]).exit_code == 1  # no overwrite
    res = r.invoke(main, ["restore", str(tmp_path / "bo.tar.gz"), *d])
    assert res.exit_code == 1 and "not empty" in res.stderr
    res = r.invoke(main, ["restore", str(tmp_path / "bo.tar.gz"), "--data", str(tmp_path / "bo2")])
    assert res.exit_code == 0, res.output
    with BackOffice(tmp_path / "bo2", create=False) as b2, BackOffice(tmp_path / "bo", create=False) as b1:
        assert b2.issuer_keys() == b1.issuer_keys() and b2.get_account("a") == b1.get_account("a")
    monkeypatch.setenv(keys.PASSPHRASE_ENV, "correct horse battery")
    assert r.invoke(main, [*issue[:-2], "--data", str(tmp_path / "bo2")]).exit_code == 0
    # a damaged backup is refused before anything is written
    with tarfile.open(tmp_path / "bo.tar.gz") as t, tarfile.open(tmp_path / "bad.tar.gz", "w:gz") as o:
        for m in t.getmembers():
            data = t.extractfile(m).read()
            if m.name == "offgate.db":
                data = data[:-1] + bytes([data[-1] ^ 1])
            m.size = len(data)
            import io
            o.addfile(m, io.BytesIO(data))
    res = r.invoke(main, ["restore", str(tmp_path / "bad.tar.gz"), "--data", str(tmp_path / "bo3")])
    assert res.exit_code == 1 and "checksum" in res.stderr and not (tmp_path / "bo3").exists()
    (tmp_path / "junk.tar.gz").write_bytes(b"junk")
    res = r.invoke(main, ["restore", str(tmp_path / "junk.tar.gz"), "--data", str(tmp_path / "bo4")])
    assert res.exit_code == 1 and "not a readable offgate backup" in res.stderr


def test_new_key_in_an_encrypted_store_is_encrypted(tmp_path, monkeypatch):
    """QA8: a key made while the passphrase comes from the prompt (env unset) joins an encrypted
    store encrypted, never in plaintext; without any passphrase nothing is written."""
    monkeypatch.delenv(keys.PASSPHRASE_ENV, raising=False)
    d = tmp_path / "keys"
    keys.save_private_pem(d / "old.pem", keys.generate(), password="correct horse battery")
    keys.set_passphrase_provider(lambda path=None: None)
    try:
        with pytest.raises(keys.KeyLocked):  # no passphrase: no plaintext key added to the store
            keys.save_private_pem(d / "new.pem", keys.generate())
        assert not (d / "new.pem").exists()
        keys.set_passphrase_provider(lambda path=None: "correct horse battery")
        keys.save_private_pem(d / "new.pem", keys.generate())
        assert keys.is_encrypted_pem((d / "new.pem").read_bytes())
        keys.set_passphrase_provider(lambda path=None: "another passphrase")
        with pytest.raises(keys.KeyLocked):  # not a second passphrase in one store
            keys.save_private_pem(d / "other.pem", keys.generate())
        assert not (d / "other.pem").exists()
        monkeypatch.setenv(keys.PASSPHRASE_ENV, "another passphrase")  # nor from the environment
        with pytest.raises(keys.KeyLocked):
            keys.save_private_pem(d / "other.pem", keys.generate())
        assert not (d / "other.pem").exists()
    finally:
        keys.set_passphrase_provider(None)


def test_a_back_office_on_postgresql_backs_up_its_keys(tmp_path, monkeypatch):
    """QA8: `offgate backup` refused a PostgreSQL back office outright, so its private keys (which
    no pg_dump holds) had no backup. Now the archive has the keys and the file naming the database,
    and both commands say the database itself goes with pg_dump / pg_restore."""
    from ledgerhelp import backoffice_on
    bo = backoffice_on("postgresql", tmp_path / "bo")
    bo.init_issuer("t")
    bo.close()
    r = CliRunner()
    res = r.invoke(main, ["backup", str(tmp_path / "bo.tar.gz"), "--data", str(tmp_path / "bo")])
    assert res.exit_code == 0 and "not in it: back it up with pg_dump" in res.output, res.output
    res = r.invoke(main, ["restore", str(tmp_path / "bo.tar.gz"), "--data", str(tmp_path / "bo2")])
    assert res.exit_code == 0 and "pg_restore" in res.output, res.output
    assert (tmp_path / "bo2" / "database.url").read_bytes() == (tmp_path / "bo" / "database.url").read_bytes()
    assert sorted(p.name for p in (tmp_path / "bo2" / "keys").iterdir()) == \
        sorted(p.name for p in (tmp_path / "bo" / "keys").iterdir())
    res = r.invoke(main, ["gates", "--data", str(tmp_path / "bo2")])  # the same back office
    assert res.exit_code == 0, res.output
