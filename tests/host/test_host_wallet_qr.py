import json

import pytest
import segno

from hostutil import T0
from offgate_host.wire import formats, keys, qr
from offgate_host.backoffice.backoffice import BackOffice
from offgate_host.wallet import Wallet, WalletError


@pytest.fixture
def issued(tmp_path):
    bo = BackOffice(tmp_path / "data")
    bo.init_issuer(valid_from=T0 - 10)
    bo.create_account("acct-0001", balance=1000)
    w = Wallet.create(tmp_path / "w.json")
    w.set_credential(bo.issue_credential("acct-0001", w.pub65, zones=[1, 2], product=1, now=T0))
    return bo, w


def test_wallet_create_load(tmp_path):
    p = tmp_path / "w.json"
    w = Wallet.create(p)
    assert (p.stat().st_mode & 0o777) == 0o600
    d = json.loads(p.read_text())
    assert "PRIVATE KEY" in d["private_key_pem"] and d["credential"] is None and d["ctr"] == 0
    w2 = Wallet.load(p)
    assert w2.pub65 == w.pub65 and len(w.pub65) == 65
    with pytest.raises(WalletError):
        Wallet.create(p)
    with pytest.raises(WalletError):
        Wallet.load(tmp_path / "missing.json")
    with pytest.raises(WalletError, match="no credential"):
        w.next_code()


def test_wallet_codes_and_counter(issued):
    bo, w = issued
    c1 = w.next_code(now=T0 + 1)
    c2 = w.next_code(now=T0 + 2)
    a1, a2 = formats.parse_auth_code(c1), formats.parse_auth_code(c2)
    assert (a1["ctr"], a1["iat"]) == (1, T0 + 1) and (a2["ctr"], a2["iat"]) == (2, T0 + 2)
    assert Wallet.load(w.path).ctr == 2  # persisted on every code
    explicit = formats.parse_auth_code(w.code(T0 + 9, 77))
    assert (explicit["iat"], explicit["ctr"]) == (T0 + 9, 77)
    assert Wallet.load(w.path).ctr == 2  # explicit codes leave the counter alone
    w3 = Wallet.load(w.path)
    assert formats.parse_auth_code(w3.next_code())["ctr"] == 3
    trust = [k["pub"] for k in bo.issuer_keys()]
    assert formats.parse_auth_code(c1, issuer_pub65=trust)["credential"]["verified"]
    assert formats.code_from_qr_text(w.qr_text(c1)) == c1


def test_wallet_rejects_foreign_credential(issued, tmp_path):
    bo, w = issued
    other = Wallet.create(tmp_path / "o.json")
    with pytest.raises(WalletError, match="another key"):
        other.set_credential(w.credential)


def test_qr_renderers(issued, tmp_path):
    _, w = issued
    text = w.qr_text(w.next_code(now=T0))
    png, svg = qr.render_png(text, tmp_path / "c.png"), qr.render_svg(text, tmp_path / "c.svg")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in svg.read_bytes()
    term = qr.render_terminal(text)
    assert isinstance(term, str) and len(term.splitlines()) > 20
    sym = qr.make(text)
    assert sym.error == "M" and sym.mode == "alphanumeric"


def _typical_qr_text(ctr=1, iat=T0 + 30, **over):
    """The protocol.md §4 "typical code": the back office's compact credential (exp, cti, compressed
    cnf key, zones [1, 2], product 1; no iss, sub, nbf, iat), untagged code."""
    issuer, rider = keys.generate(), keys.generate()
    kid = keys.kid_of(keys.pub_bytes(issuer))
    kw = dict(cti=bytes(8), exp=T0 + 86400, rider_pub65=keys.pub_bytes(rider), zones=[1, 2], product=1)
    kw.update(over)
    cred = formats.make_credential(issuer, kid, **kw)
    code = formats.make_auth_code(rider, cred, iat=iat, ctr=ctr)
    return cred, code, formats.qr_text(code)


def _fits(text, version, error):
    try:
        sym = segno.make(text, error=error, version=version, mode="alphanumeric", micro=False,
                         boost_error=False)
    except segno.DataOverflowError:
        return False
    assert sym.version == version and sym.error == error.upper()
    return True


def test_qr_version_typical_code():
    cred, code, text = _typical_qr_text()
    v = qr.qr_version(text)
    print("\ntypical code: credential %d B, code %d B, QR text %d chars, QR version %d-M"
          % (len(cred), len(code), len(text), v))
    # Every field of the typical code has a fixed-size encoding (64-byte signatures, 8-byte cti,
    # 4-byte kid and times, ctr 1 in one byte), so the sizes are exact, not approximate.
    assert (len(cred), len(code), len(text)) == (150, 236, 358)
    assert len(text) == 4 + (len(code) // 2) * 3 + (len(code) % 2) * 2  # OG1: + base45
    assert v == 11 and qr.make(text).error == "M"  # issue #14: version 11 at level M
    assert _fits(text, 11, "m") and not _fits(text, 10, "m")
    assert _fits("A" * 366, 11, "m") and not _fits("A" * 367, 11, "m")  # 11-M: 366 chars = 241-byte code


@pytest.mark.parametrize("ctr, extra", [(1, 0), (23, 0), (24, 1), (255, 1), (256, 2), (65535, 2),
                                        (65536, 4), (2 ** 32 - 1, 4)])
def test_code_size_by_ctr_encoding(ctr, extra):
    """The only size variation in a code is the CBOR width of ctr (and of iat, 4 bytes until 2106)."""
    cred, code, text = _typical_qr_text(ctr=ctr)
    assert len(cred) == 150 and len(code) == 236 + extra
    assert formats.parse_auth_code(code)["ctr"] == ctr
    # every counter up to 2^32-1 keeps the code at version 11, level M
    assert qr.qr_version(text) == 11 and _fits(text, 11, "m")


def test_code_size_iat_encoding():
    for iat in (2 ** 16, T0, 2 ** 32 - 1):  # all 4-byte uints: same size
        assert len(_typical_qr_text(iat=iat)[1]) == 236
    assert len(_typical_qr_text(iat=2 ** 32)[1]) == 240  # 8-byte uint after 2106


def test_code_size_optional_claims():
    """What the optional parts cost (protocol.md §4): nbf 6 bytes (version 12), a 1-gate list 3, a cap of 900 4."""
    assert len(_typical_qr_text(nbf=T0)[1]) == 242 and qr.qr_version(_typical_qr_text(nbf=T0)[2]) == 12
    assert len(_typical_qr_text(gates=[7])[1]) == 239
    assert len(_typical_qr_text(cap=900)[1]) == 240


def test_back_office_wallet_code_is_typical_size(issued):
    """The real issue path (back office -> wallet -> QR) gives the typical sizes too."""
    bo, w = issued
    assert len(w.credential) == 150 and w.credential[0] == 0x84
    code = w.next_code(now=T0 + 30)
    text = w.qr_text(code)
    assert (len(code), len(text)) == (236, 358)
    assert qr.qr_version(text) == 11 and _fits(text, 11, "m")
    a = formats.parse_auth_code(code, issuer_pub65=[k["pub"] for k in bo.issuer_keys()])
    assert a["verified"] and a["credential"]["verified"] and "iat" not in a["credential"]
