import cbor2
import pytest
from click.testing import CliRunner

from hostutil import T0, credential_claims
from offgate_host.wire import formats, keys
from offgate_host.backoffice.backoffice import BackOffice
from offgate_host.cli import main
from offgate_host.wallet import Wallet


@pytest.fixture
def env(tmp_path):
    runner = CliRunner()
    data = str(tmp_path / "data")

    def run(*args, ok=True):
        r = runner.invoke(main, list(args) + ["--data", data])
        if ok:
            assert r.exit_code == 0, r.output
        return r
    return run, tmp_path


def test_cli_full_flow(env):
    run, tmp = env
    assert "issuer key created" in run("init").output
    assert "already present" in run("issuer", "init").output
    run("account", "create", "acct-0001", "--balance", "1500")
    run("account", "create", "poor", "--balance", "10", "--credit", "20")
    assert "acct-0001" in run("account", "list").output
    wallet = str(tmp / "w.json")
    assert "created" in run("wallet", "new", wallet).output
    r = run("credential", "issue", "acct-0001", "--wallet", wallet, "--zones", "1,2", "--product", "1",
            "--valid-hours", "2", "--cap", "900", "--gates", "3,4")
    cred = Wallet.load(wallet).credential
    c = formats.parse_credential(cred)
    assert c["cti"].hex() in r.output
    assert c["zones"] == [1, 2] and c["gates"] == [3, 4] and c["cap"] == 900 and c["nbf"] is None
    rec = [r for r in BackOffice(tmp / "data").credentials("acct-0001") if r["cti"] == c["cti"]][0]
    assert rec["exp"] - rec["nbf"] == 7200
    assert c["product"] == 1 and "iat" not in c and cred[0] == 0x84  # untagged, no iat
    assert credential_claims(cred)[-1] == {1: [1, 2], 2: [3, 4], 3: 1, 4: 900}

    r = run("wallet", "code", wallet, "--iat", "1800000000", "--png", str(tmp / "q.png"),
            "--svg", str(tmp / "q.svg"), "--terminal")
    text = r.stdout.strip().splitlines()[0]
    assert text.startswith("OG1:")
    a = formats.parse_auth_code(formats.code_from_qr_text(text))
    assert (a["iat"], a["ctr"]) == (1800000000, 1)
    assert (tmp / "q.png").exists() and (tmp / "q.svg").exists()
    text2 = run("wallet", "code", wallet).stdout.strip()
    assert formats.parse_auth_code(formats.code_from_qr_text(text2))["ctr"] == 2

    run("trust", "export", str(tmp / "trust.cbor"))
    m = cbor2.loads((tmp / "trust.cbor").read_bytes())
    assert m["v"] == 1 and m["keys"][0]["kid"] == c["kid"]

    run("deny", "add", c["cti"].hex())
    run("deny", "add", "ffffffffffffffff")
    run("deny", "export", str(tmp / "deny.bin"))
    assert formats.parse_deny_list((tmp / "deny.bin").read_bytes()) == sorted([c["cti"][:5], b"\xff" * 5])  # 5-byte prefixes
    assert c["cti"].hex() in run("deny", "list").output

    run("issuer", "rotate")
    assert run("issuer", "list").output.count("offgate-demo") == 2
    run("config", "min-balance", "5")
    assert "min balance: 5" in run("config", "min-balance").output
    run("credential", "issue", "poor", "--wallet", wallet, "--zones", "1")
    assert "poor" in run("credential", "list").output


def _wallet_with_credential(run, tmp, with_iat):
    """A wallet holding a credential for acct-0001: back-office issued (no iat), or signed with the
    back office's current issuer key but carrying claim 6 (iat) and the optional iss, sub, nbf."""
    run("init")
    run("account", "create", "acct-0001", "--balance", "1500")
    wallet = str(tmp / "w.json")
    run("wallet", "new", wallet)
    run("credential", "issue", "acct-0001", "--wallet", wallet, "--zones", "1,2", "--cap", "900",
        "--gates", "3,4")
    w = Wallet.load(wallet)
    if with_iat:
        bo = BackOffice(tmp / "data")
        kinfo, ikey = bo.signing_key()
        old = formats.parse_credential(w.credential)
        w.set_credential(formats.make_credential(ikey, kinfo["kid"], iss=kinfo["iss"], sub="acct-0001",
                                                 cti=old["cti"], nbf=old["exp"] - 86400, exp=old["exp"],
                                                 iat=old["exp"] - 86400, rider_pub65=w.pub65, zones=[1, 2],
                                                 gates=[3, 4], cap=900, product=1))
        bo.close()
    run("trust", "export", str(tmp / "trust.cbor"))
    text = run("wallet", "code", wallet, "--iat", str(T0)).stdout.strip()
    return formats.parse_credential(Wallet.load(wallet).credential), text


def _check_inspect(run, tmp, c, text):
    r = run("inspect", text)
    full = ("acct-0001", "offgate-demo") if "sub" in c else ("the kid names the issuer", "finds it by cti")
    for s in full + (c["cti"].hex(), c["kid"].hex(), "valid", "1, 2", "3, 4", "900", "bytes", "compressed"):
        assert s in r.output, (s, r.output)
    assert "INVALID" not in r.output
    issued = [ln for ln in r.output.splitlines() if "iat (issued)" in ln]
    assert len(issued) == 1
    if "iat" in c:
        assert str(c["iat"]) in issued[0]
    else:  # optional claim absent: shown as "-", not a crash
        assert "-" in issued[0] and not any(ch.isdigit() for ch in issued[0])
    code_iat = [ln for ln in r.output.splitlines() if "iat" in ln and "issued" not in ln]
    assert len(code_iat) == 1 and str(T0) in code_iat[0]
    r = run("inspect", text, "--trust", str(tmp / "trust.cbor"))
    assert "valid (" in r.output and "INVALID" not in r.output
    # an unrelated trust store: the issuer signature is reported invalid (exit 1)
    other = keys.generate()
    (tmp / "other.cbor").write_bytes(formats.trust_store_bytes(
        [{"kid": keys.kid_of(keys.pub_bytes(other)), "iss": "x", "pub": keys.pub_bytes(other), "nbf": 0,
          "exp": 2 ** 40}]))
    r = run("inspect", text, "--trust", str(tmp / "other.cbor"), ok=False)
    assert r.exit_code == 1 and "INVALID" in r.output


def test_cli_inspect_credential_with_iat(env):
    run, tmp = env
    c, text = _wallet_with_credential(run, tmp, with_iat=True)
    assert "iat" in c
    _check_inspect(run, tmp, c, text)


def test_cli_inspect_back_office_credential(env):
    """Back-office credentials carry no iat: inspect must still show everything."""
    run, tmp = env
    c, text = _wallet_with_credential(run, tmp, with_iat=False)
    assert "iat" not in c
    _check_inspect(run, tmp, c, text)


def test_cli_user_errors_are_one_line(env):
    run, tmp = env
    run("init")
    run("account", "create", "poor", "--balance", "10", "--credit", "20")
    wallet = str(tmp / "w.json")
    run("wallet", "new", wallet)
    cases = [
        (("credential", "issue", "poor", "--wallet", wallet, "--zones", "1"), "below the minimum 500"),
        (("credential", "issue", "nobody", "--wallet", wallet, "--zones", "1"), "unknown account"),
        (("credential", "issue", "poor", "--wallet", str(tmp / "none.json"), "--zones", "1"), "not found"),
        (("wallet", "code", wallet), "no credential"),
        (("wallet", "code", str(tmp / "none.json")), "not found"),
        (("wallet", "new", wallet), "already exists"),
        (("deny", "add", "xyz"), "hex"),
        (("inspect", "OG1:%%%"), "base45"),
        (("inspect", "hello"), "OG1:"),
        (("account", "create", "poor"), "already exists"),
    ]
    for args, needle in cases:
        r = run(*args, ok=False)
        assert r.exit_code == 1, (args, r.output)
        assert isinstance(r.exception, SystemExit), (args, r.exception)
        assert needle in r.output and "Traceback" not in r.output, (args, r.output)
        assert r.output.startswith("offgate: ") and len(r.output.strip().splitlines()) == 1, r.output
    r = run("credential", "issue", "poor", "--wallet", wallet, "--zones", "a,b", ok=False)
    assert r.exit_code == 2 and "--zones" in r.output


def test_cli_env_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("OFFGATE_DATA", str(tmp_path / "envdata"))
    r = CliRunner().invoke(main, ["init", "--name", "op"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "envdata" / "offgate.db").exists()
