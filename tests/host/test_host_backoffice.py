import struct
import cbor2
import pytest

from hostutil import T0, credential_claims
from offgate_host.wire import formats, keys
from offgate_host.backoffice.backoffice import BackOffice, BackOfficeError, IssueRefused, UnknownAccount


@pytest.fixture
def bo(tmp_path):
    b = BackOffice(tmp_path / "data")
    b.init_issuer(valid_from=T0 - 1000)
    yield b
    b.close()


def rider_pub():
    return keys.pub_bytes(keys.generate())


def test_init_creates_db_and_0600_key(tmp_path):
    b = BackOffice(tmp_path / "d")
    kid = b.init_issuer("op-x", valid_from=T0, valid_days=10)
    assert (tmp_path / "d" / "offgate.db").exists()
    ks = b.issuer_keys()
    assert len(ks) == 1 and ks[0]["kid"] == kid and ks[0]["iss"] == "op-x"
    assert ks[0]["nbf"] == T0 and ks[0]["exp"] == T0 + 10 * 86400
    assert keys.kid_of(ks[0]["pub"]) == kid
    pem = tmp_path / "d" / ks[0]["key_file"]
    assert pem.parent == tmp_path / "d" / "keys"
    assert (pem.stat().st_mode & 0o777) == 0o600
    assert keys.pub_bytes(keys.load_private_pem(pem)) == ks[0]["pub"]
    assert b.init_issuer() == kid and len(b.issuer_keys()) == 1  # idempotent
    # state survives reopening
    b.close()
    assert BackOffice(tmp_path / "d").issuer_keys() == ks


def test_refused_below_minimum(bo):
    bo.create_account("acct-0001", balance=349, credit=100)  # credit counts like balance: 449 < 500
    with pytest.raises(IssueRefused) as ei:
        bo.issue_credential("acct-0001", rider_pub(), zones=[1], now=T0)
    msg = str(ei.value)
    assert "acct-0001" in msg and "449" in msg and "349" in msg and "100" in msg and "500" in msg
    assert bo.credentials() == []


def test_allowed_via_balance_and_via_credit(bo):
    bo.create_account("rich", balance=500)
    bo.create_account("trusted", credit=800)
    for acct in ("rich", "trusted"):
        rp = rider_pub()
        cred = bo.issue_credential(acct, rp, zones=[1, 2], now=T0)
        c = formats.parse_credential(cred, [k["pub"] for k in bo.issuer_keys()])
        # compact (protocol.md §2): no iss, sub, nbf or iat; the account is found by cti
        assert "sub" not in c and "iss" not in c and c["rider_pub65"] == rp
        assert c["verified"] and c["nbf"] is None and c["exp"] == T0 + 86400
        assert "iat" not in c
        # every credential carries a cap (its hold): the default (1000), never more than the
        # account covers; kept in the back office, not in the CWT unless asked for (QR size)
        cap = {"rich": 500, "trusted": 800}[acct]
        assert c["product"] == 1 and c["zones"] == [1, 2] and "gates" not in c and "cap" not in c
        assert c["cnf_compressed"]
        # on the wire: untagged COSE_Sign1, access rights in the one -1 map
        assert cred[0] == 0x84
        claims = credential_claims(cred)
        assert list(claims) == [4, 7, 8, -1]
        assert claims[-1] == {1: [1, 2], 3: 1}
        rec = bo.credentials(acct)
        assert len(rec) == 1 and rec[0]["cti"] == c["cti"] and rec[0]["kid"] == c["kid"]
        assert (rec[0]["nbf"], rec[0]["exp"], rec[0]["cap"]) == (T0, T0 + 86400, cap)
        assert bo.holds(acct)[0]["amount"] == cap and bo.coverable(acct) == {"rich": 0, "trusted": 0}[acct]
        assert rec[0]["iat"] == T0  # the ledger still records when it was issued


def test_min_balance_config(bo):
    assert bo.min_balance() == 500
    bo.create_account("a", balance=1000)
    bo.set_min_balance(100)
    assert bo.min_balance() == 100
    cred = bo.issue_credential("a", rider_pub(), zones=[3], now=T0, cap=700, gates=[4], product=2)
    rec = bo.credentials("a")[0]
    assert rec["cap"] == 700 and rec["gates"] == [4] and rec["product"] == 2 and rec["zones"] == [3]
    claims = credential_claims(cred)
    assert 6 not in claims and claims[-1] == {1: [3], 2: [4], 3: 2, 4: 700}
    assert list(claims[-1]) == [1, 2, 3, 4]
    c = formats.parse_credential(cred, bo.issuer_keys()[0]["pub"])
    assert (c["zones"], c["gates"], c["product"], c["cap"]) == ([3], [4], 2, 700) and "iat" not in c
    bo.set_min_balance(301)  # 1000 - the 700 held
    with pytest.raises(IssueRefused):
        bo.issue_credential("a", rider_pub(), zones=[3], now=T0)


def test_accounts(bo):
    bo.create_account("b", balance=5)
    bo.create_account("a", credit=7)
    assert [a["id"] for a in bo.list_accounts()] == ["a", "b"]
    assert bo.get_account("a")["credit"] == 7
    with pytest.raises(BackOfficeError):
        bo.create_account("a")
    with pytest.raises(UnknownAccount):
        bo.get_account("zzz")
    with pytest.raises(UnknownAccount):
        bo.issue_credential("zzz", rider_pub(), zones=[1], now=T0)
    with pytest.raises(BackOfficeError):
        bo.create_account("neg", balance=-1)
    assert bo.update_account("b", balance=900)["balance"] == 900


def test_rotation_new_key_signs(bo):
    bo.create_account("a", balance=5000)
    old = bo.issuer_keys()[0]["kid"]
    c_old = bo.issue_credential("a", rider_pub(), zones=[1], now=T0)
    new = bo.rotate_issuer(valid_from=T0 + 10, lead_days=0)
    ks = bo.issuer_keys()
    assert len(ks) == 2 and {k["kid"] for k in ks} == {old, new} and old != new
    # before the new key's nbf the old one still signs; afterwards the new one
    assert formats.parse_credential(bo.issue_credential("a", rider_pub(), zones=[1], now=T0 + 5))["kid"] == old
    c_new = bo.issue_credential("a", rider_pub(), zones=[1], now=T0 + 20)
    assert formats.parse_credential(c_new)["kid"] == new
    trust = [k["pub"] for k in formats.parse_trust_store(bo.trust_bytes())]
    assert len(trust) == 2
    formats.parse_credential(c_old, trust)
    formats.parse_credential(c_new, trust)
    new_pub = [k["pub"] for k in ks if k["kid"] == new][0]
    formats.parse_credential(c_new, new_pub)
    with pytest.raises(ValueError):
        formats.parse_credential(c_old, new_pub)


def test_rotation_same_second_newest_wins(tmp_path):
    b = BackOffice(tmp_path)
    b.init_issuer(valid_from=T0)
    new = b.rotate_issuer(valid_from=T0, lead_days=0)
    b.create_account("a", balance=1000)
    assert formats.parse_credential(b.issue_credential("a", rider_pub(), zones=[1], now=T0 + 1))["kid"] == new


def test_credential_exp_clipped_to_key(tmp_path):
    b = BackOffice(tmp_path)
    b.init_issuer(valid_from=T0, valid_days=1)
    b.create_account("a", balance=5000)
    c = formats.parse_credential(b.issue_credential("a", rider_pub(), zones=[1], now=T0 + 3600,
                                                    valid_seconds=2 * 86400))
    assert c["exp"] == T0 + 86400
    with pytest.raises(BackOfficeError, match="no issuer key is valid"):
        b.issue_credential("a", rider_pub(), zones=[1], now=T0 + 86400)


def test_issue_input_errors(bo):
    bo.create_account("a", balance=1000)
    for kw in ({"zones": []}, {"zones": [1], "valid_seconds": 0}, {"zones": [1], "gates": []},
               {"zones": [1], "cap": -1}, {"zones": [1], "product": -1}, {"zones": [-1]}):
        with pytest.raises(BackOfficeError):
            bo.issue_credential("a", rider_pub(), now=T0, **kw)
    assert bo.credentials("a") == []  # nothing recorded for a refused or invalid issue


def test_no_issuer(tmp_path):
    b = BackOffice(tmp_path)
    b.create_account("a", balance=1000)
    with pytest.raises(BackOfficeError, match="issuer init"):
        b.issue_credential("a", rider_pub(), zones=[1])
    with pytest.raises(BackOfficeError):
        b.trust_bytes()
    with pytest.raises(BackOfficeError):
        b.rotate_issuer()


def test_deny_and_exports(bo, tmp_path):
    bo.deny(bytes([9] * 8))
    bo.deny("0101010101010101")
    bo.deny(bytes([1] * 8))  # duplicate
    assert bo.deny_list() == [bytes([1] * 8), bytes([9] * 8)]
    with pytest.raises(BackOfficeError):
        bo.deny("abcd")
    with pytest.raises(BackOfficeError):
        bo.deny("not hex at all!!")
    (tmp_path / "out").mkdir()
    out = bo.export_deny(tmp_path / "out" / "deny.bin")
    assert out.read_bytes() == bo.deny_bytes()  # the same signed list until the list changes
    info = formats.deny_list_info(out.read_bytes(), bo.root_pub())
    assert info["ids"] == [bytes([1] * 5), bytes([9] * 5)] and info["id_bytes"] == 5 and info["signed"] and info["serial"] == 1
    assert out.read_bytes()[:24] == b"OGDL\x02\0\x05\0" + struct.pack(">IIII", 2, 1, info["issued"], 0)
    bo.deny(bytes([5] * 8))
    assert formats.deny_list_info(bo.deny_bytes(), bo.root_pub())["serial"] == 2
    t = bo.export_trust(tmp_path / "out" / "trust.cbor")
    m = cbor2.loads(t.read_bytes())
    assert m["v"] == 1 and m["keys"][0]["pub"] == bo.issuer_keys()[0]["pub"]
