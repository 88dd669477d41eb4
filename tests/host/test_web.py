"""`offgate serve` without a browser (Starlette's TestClient): staff login, sessions, CSRF, roles,
the JSON API, CSV export; wallet enrolment by single-use expiring invite, signed renewal, re-enrolment
that revokes the old wallet, and refusal of unauthenticated and cross-account requests."""
import hashlib
import time

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from offgate_host.wire import formats, keys  # noqa: E402
from offgate_host.backoffice.backoffice import BackOffice  # noqa: E402
from offgate_host.web import store  # noqa: E402
from offgate_host.web.app import ENROL_MSG, RENEW_MSG, create_app  # noqa: E402

PW = "correct horse battery"


def p1363(key, msg):
    r, s = decode_dss_signature(key.sign(msg, ec.ECDSA(hashes.SHA256())))
    return (r.to_bytes(32, "big") + s.to_bytes(32, "big")).hex()


class Rider:
    """A wallet as the web page is, in Python: a P-256 key and the two signed requests."""

    def __init__(self):
        self.key = keys.generate()
        self.pub = keys.pub_bytes(self.key)
        self.t = int(time.time())

    def enrol(self, client, invite, signer=None):
        msg = ENROL_MSG + hashlib.sha256(invite.encode()).digest() + self.pub
        return client.post("/api/wallet/enrol", json={"invite": invite, "pub": self.pub.hex(),
                                                      "sig": p1363(signer or self.key, msg)})

    def renew(self, client, signer=None, pub=None, t=None):
        self.t += 1
        t = self.t if t is None else t
        pub = pub or self.pub
        return client.post("/api/wallet/renew", json={"pub": pub.hex(), "t": t,
                                                      "sig": p1363(signer or self.key, RENEW_MSG + t.to_bytes(8, "big") + pub)})


@pytest.fixture
def site(tmp_path):
    with BackOffice(tmp_path) as bo:
        bo.init_issuer("web", valid_from=int(time.time()) - 3600)
        bo.create_account("acct-a", balance=2000)
        bo.create_account("acct-b", balance=2000)
        bo.create_account("poor", balance=10)
        bo.set_default_cap(500)  # each credential holds 500: enrol, re-enrol and renew fit in 2000
        store.add_staff(bo, "olga", PW, "operator")
        store.add_staff(bo, "vic", PW, "viewer")
    app = create_app(tmp_path, base_url="http://127.0.0.1:9")
    return tmp_path, app


def client(app):
    return TestClient(app, base_url="http://127.0.0.1", follow_redirects=False)


def login(app, name):
    c = client(app)
    r = c.get("/login")
    csrf = r.text.split('name="csrf" value="')[1].split('"')[0]
    r = c.post("/login", data={"name": name, "password": PW, "csrf": csrf})
    assert r.status_code == 303 and r.headers["location"] == "/"
    return c, c.get("/api/session").json()["csrf"]


def invite(app, account="acct-a", **kw):
    c, csrf = login(app, "olga")
    body = {"zones": [1, 2]}
    body.update(kw)
    r = c.post("/api/accounts/%s/invite" % account, json=body, headers={"x-csrf-token": csrf})
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["url"] == "http://127.0.0.1:9/wallet/#invite=" + j["token"]
    return j["token"]


def test_nothing_but_login_without_a_session(site):
    _, app = site
    c = client(app)
    for path in ("/", "/gates", "/denials", "/fraud", "/accounts", "/accounts/acct-a", "/denylist", "/api/docs",
                 "/export/accounts.csv"):
        r = c.get(path)
        assert r.status_code == 303 and r.headers["location"] == "/login", path
    for path in ("/api/gates", "/api/accounts", "/api/accounts/acct-a", "/api/fraud", "/api/denylist",
                 "/api/openapi.json", "/api/session"):
        assert c.get(path).status_code == 401, path
    assert c.post("/api/accounts/acct-a/topup", json={"amount": 5}).status_code == 401
    assert c.get("/login").status_code == 200
    # the rider's wallet page is public: it holds no data until enrolled
    assert c.get("/wallet/").status_code == 200


def test_login_csrf_roles_and_logout(site):
    d, app = site
    c = client(app)
    r = c.get("/login")
    assert c.post("/login", data={"name": "olga", "password": PW, "csrf": "forged"}).status_code == 403
    csrf = r.text.split('name="csrf" value="')[1].split('"')[0]
    r = c.post("/login", data={"name": "olga", "password": "wrong password!", "csrf": csrf})
    assert r.status_code == 303 and "error" in r.headers["location"]
    c, token = login(app, "olga")
    assert c.get("/").status_code == 200 and c.get("/api/docs").status_code == 200
    assert "/api/wallet/enrol" in c.get("/api/openapi.json").json()["paths"]
    # writes need the CSRF token: header for the API, form field for the pages
    assert c.post("/api/accounts/acct-a/topup", json={"amount": 500}).status_code == 403
    assert c.post("/accounts/acct-a/topup", data={"amount": "500"}).status_code == 403
    r = c.post("/api/accounts/acct-a/topup", json={"amount": 500}, headers={"x-csrf-token": token})
    assert r.status_code == 200 and r.json()["balance"] == 2500
    assert c.post("/accounts/acct-a/topup", data={"amount": "100", "csrf": token}).status_code == 303
    a = c.get("/api/accounts/acct-a").json()
    assert a["balance"] == 2600 and [m["amount"] for m in a["statement"]] == [2000, 500, 100]
    assert c.get("/export/accounts.csv").text.splitlines()[0].startswith("id,balance")
    # a viewer reads but does not write
    v, vtoken = login(app, "vic")
    assert v.get("/api/accounts").status_code == 200
    assert v.post("/api/accounts/acct-a/topup", json={"amount": 5}, headers={"x-csrf-token": vtoken}).status_code == 403
    assert v.post("/api/accounts/acct-a/invite", json={"zones": [1]}, headers={"x-csrf-token": vtoken}).status_code == 403
    # logout ends the session server-side
    sid = c.cookies.get("og_session")
    assert c.post("/logout", data={"csrf": token}).status_code == 303
    c.cookies.set("og_session", sid)
    assert c.get("/api/session").status_code == 401


def test_enrol_renew_and_cross_account_refusals(site):
    d, app = site
    c = client(app)
    a, b = Rider(), Rider()
    tok_a, tok_b = invite(app, "acct-a"), invite(app, "acct-b")
    # proof of possession: a signature by another key than the one enrolled is refused
    assert a.enrol(c, tok_a, signer=b.key).status_code == 403
    r = a.enrol(c, tok_a)
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["account"] == "acct-a" and j["zones"] == [1, 2] and j["balance"] == 2000 and j["receipts"] == []
    cred = bytes.fromhex(j["credential"])
    with BackOffice(d) as bo:
        info = formats.parse_credential(cred, [k["pub"] for k in bo.issuer_keys()])
    assert info["verified"] and info["rider_pub65"] == a.pub
    from offgate_host.ledger.receipts import enc_key_of
    with BackOffice(d) as bo:
        assert enc_key_of(bo, a.pub) is None  # enrolled without a receipt key: none registered
    # single use: the same link again, by anyone, is refused
    assert Rider().enrol(c, tok_a).status_code == 403
    assert "already been used" in Rider().enrol(c, tok_a).json()["detail"]
    assert b.enrol(c, tok_b).json()["account"] == "acct-b"
    # renewal signed by the wallet key
    r = a.renew(c)
    assert r.status_code == 200 and r.json()["account"] == "acct-a" and r.json()["cti"] != info["cti"].hex()
    # cross-account: A cannot renew as B (B's public key, A's signature), nor replay an old request
    assert a.renew(c, pub=b.pub).status_code == 403
    assert a.renew(c, t=a.t - 1).status_code == 403
    assert a.renew(c, t=int(time.time()) + 3600).status_code == 403
    # an unknown key gets nothing
    assert Rider().renew(c).status_code == 403


def test_invite_expires_and_refused_issue_keeps_it(site):
    d, app = site
    c = client(app)
    with BackOffice(d) as bo:
        old = store.create_invite(bo, "acct-a", zones=[1], ttl=60, now=int(time.time()) - 120)["token"]
        poor = store.create_invite(bo, "poor", zones=[1])["token"]
    r = Rider().enrol(c, old)
    assert r.status_code == 403 and "expired" in r.json()["detail"]
    assert Rider().enrol(c, "no-such-token").status_code == 403
    r = Rider().enrol(c, poor)  # below the minimum balance: refused, the link stays usable
    assert r.status_code == 409 and "minimum" in r.json()["detail"]
    with BackOffice(d) as bo:
        bo.top_up("poor", 1000)
    assert Rider().enrol(c, poor).status_code == 200


def test_reenrol_after_lost_key_revokes_the_old_wallet(site):
    d, app = site
    c = client(app)
    lost, new = Rider(), Rider()
    old_cti = lost.enrol(c, invite(app)).json()["cti"]
    assert new.enrol(c, invite(app, replace=True)).status_code == 200
    r = lost.renew(c)
    assert r.status_code == 403 and "revoked" in r.json()["detail"]
    with BackOffice(d) as bo:
        assert bytes.fromhex(old_cti) in bo.deny_list()
    new_cti = new.renew(c).json()["cti"]
    # receipts (POST /api/wallet/receipts): the lost wallet gets none; receipts.issue's own checks
    # answer the rest in one line (this Python wallet registered no encryption key)
    from offgate_host.ledger import receipts
    period = (int(time.time()) - 3600, int(time.time()) + 3600)
    r = c.post("/api/wallet/receipts", json={"request": receipts.make_request(lost.key, bytes.fromhex(old_cti),
                                                                              period=period).hex()})
    assert r.status_code == 403 and "revoked" in r.json()["detail"]
    r = c.post("/api/wallet/receipts", json={"request": receipts.make_request(new.key, bytes.fromhex(new_cti),
                                                                              period=period).hex()})
    assert r.status_code == 400 and "no receipt encryption key" in r.json()["detail"]
    r = c.post("/api/wallet/receipts", json={"request": receipts.make_request(lost.key, bytes.fromhex(new_cti),
                                                                              period=period).hex()})
    assert r.status_code == 400 and "signature verification failed" in r.json()["detail"]
    for bad in ("zz", "d284", ""):
        assert c.post("/api/wallet/receipts", json={"request": bad}).status_code == 400


def test_admin_manages_staff_others_cannot(site):
    d, app = site
    with BackOffice(d) as bo:
        store.add_staff(bo, "ada", PW, "admin")
    c, token = login(app, "olga")
    assert c.get("/staff").status_code == 403  # operator: not an admin
    assert c.post("/staff", data={"name": "x", "role": "admin", "password": PW, "csrf": token}).status_code == 403
    a, atoken = login(app, "ada")
    assert a.get("/staff").status_code == 200
    assert a.post("/staff", data={"name": "newbie", "role": "viewer", "password": PW}).status_code == 403  # no CSRF
    assert a.post("/staff", data={"name": "newbie", "role": "viewer", "password": PW, "csrf": atoken}).status_code == 303
    assert login(app, "newbie")[0].get("/accounts").status_code == 200
    assert a.post("/staff/olga/disable", data={"csrf": atoken}).status_code == 303
    assert c.get("/api/session").status_code == 401  # disabling ends the sessions
    with BackOffice(d) as bo:
        assert [s["name"] for s in store.list_staff(bo) if s["disabled"]] == ["olga"]


# ---------------------------------------------------------------- dashboard data on SQLite and PostgreSQL
from ledgerhelp import issue, make_records, world  # noqa: E402,F401  (the ledger tests' two-database fixture)


def test_dashboard_data_on_both_ledgers(world):
    """The page/API/CSV rows from a ledger with passages, denials, a double use and a gate status."""
    from offgate_host.web import data
    bo, led = world
    now = int(time.time())
    cti = issue(bo, "acct-x")
    led.enroll_gate(1, b"\x04" + bytes(64))
    led.enroll_gate(2, b"\x04" + b"\x01" * 64)
    opens = make_records(3, cti=cti, t0=now - 10)
    denies = make_records(2, start_seq=4, prev=opens[-1]["chain"], decision="DENY", t0=now - 5)
    led.ingest(1, opens + denies)
    for c in led.ingest(2, make_records(1, cti=cti, t0=now - 8))["deny"]:  # same cti, ctr 1 at gate 2: double use
        bo.deny(c)  # as sync_gate does
    led.note_status(1, {"log": {"bytes_used": 900, "capacity": 1000, "backlog": 0, "not_logged": 0}, "deny_count": 0})
    led.note_time(1, 3)
    assert sum(r["passages"] for r in data.passages_by_hour(led, now)) == 4
    assert {r["station"] for r in data.passages_by_hour(led, now)} == {"gate 1", "gate 2"}
    from offgate_host.ledger import stations
    stations.set_station(led, 1, "Rynek")  # the ledger's gate places (offgate gate place)
    stations.set_station(led, 2, "Rynek")
    # records count where they were made: those ingested before the place stay "gate N"
    assert {r["station"] for r in data.passages_by_hour(led, now)} == {"gate 1", "gate 2"}
    led.ingest(1, make_records(1, cti=issue(bo, "acct-y"), start_seq=6, prev=denies[-1]["chain"], t0=now - 4))
    assert ("Rynek", 1) in [(r["station"], r["passages"]) for r in data.passages_by_hour(led, now)]
    assert [(r["reason_name"], r["n"]) for r in data.denials(led, now)] == [("BAD_BASE45 (14)", 2)]
    g1, g2 = data.gates(bo, led, now)
    assert (g1["gate"], g1["station"], g1["records"], g1["log_fill"], g1["drift_s"]) == (1, "Rynek", 6, 0.9, 3)
    assert g1["alerts"] == ["operation log 90% full"]
    assert g2["alerts"] == ["not synced for ever"]
    f = data.fraud(bo, led)
    assert [(c["kind"], c["cti"], c["account"], c["denied"]) for c in f] == [("double_use", cti.hex(), "acct-x", True)]
    dl = data.denylist(bo, led, now)
    assert dl["count"] == 1 and dl["size"] == len(bo.deny_bytes(now)) and dl["entries"][0]["account"] == "acct-x"
    assert {g["gate"]: g["current"] for g in dl["gates"]} == {1: False, 2: False}
    assert bo.undeny(cti) and data.fraud(bo, led)[0]["denied"] is False


def test_cli_invite_and_staff(tmp_path):
    from click.testing import CliRunner

    from offgate_host.cli import main
    run = lambda *a, **kw: CliRunner().invoke(main, [*a, "--data", str(tmp_path)], **kw)  # noqa: E731
    assert run("init").exit_code == 0
    assert run("account", "create", "acct-1", "--balance", "900").exit_code == 0
    r = run("account", "invite", "acct-1", "--zones", "1,3", "--base-url", "https://pay.example")
    assert r.exit_code == 0, r.output
    url = r.stdout.splitlines()[0]
    assert url.startswith("https://pay.example/wallet/#invite=")
    with BackOffice(tmp_path) as bo:
        (inv,) = store.list_invites(bo, "acct-1")
        assert (inv["zones"], inv["used"], inv["replace_old"]) == ("[1, 3]", None, 0)
    r = run("account", "invite", "nobody", "--zones", "1")
    assert r.exit_code == 1 and r.output.strip().splitlines()[-1] == "offgate: unknown account 'nobody'"
    assert run("staff", "add", "ann", "--role", "admin", "--password-stdin", input=PW + "\n").exit_code == 0
    r = run("staff", "add", "bob", "--password-stdin", input="short\n")
    assert r.exit_code == 1 and "at least 10" in r.output and "Traceback" not in r.output
    assert "ann\tadmin" in run("staff", "list").output


def test_fraud_actions_deny_undeny_note(site):
    from offgate_host.ledger.ledger import Ledger
    d, app = site
    now = int(time.time())
    with BackOffice(d) as bo:
        cti = issue(bo, "acct-a")
        led = Ledger.for_backoffice(bo)
        led.enroll_gate(1, b"\x04" + bytes(64))
        led.enroll_gate(2, b"\x04" + b"\x01" * 64)
        led.ingest(1, make_records(1, cti=cti, t0=now - 10))
        led.ingest(2, make_records(1, cti=cti, t0=now - 9))  # the same code at gate 2: double use
        led.close()
    c, token = login(app, "olga")
    (case,) = c.get("/api/fraud").json()["fraud"]
    assert (case["kind"], case["account"], case["denied"]) == ("double_use", "acct-a", False)
    url = "/api/fraud/%d/" % case["id"]
    assert c.post(url + "deny").status_code == 403  # no CSRF token
    assert c.post(url + "deny", headers={"x-csrf-token": token}).status_code == 200
    assert c.post("/fraud/%d/note" % case["id"], data={"csrf": token, "text": "rider called"}).status_code == 303
    (case,) = c.get("/api/fraud").json()["fraud"]
    assert case["denied"] and [n["text"] for n in case["notes"]] == ["denied", "rider called"]
    with BackOffice(d) as bo:
        assert cti in bo.deny_list()
    assert cti.hex() in c.get("/denylist").text and "rider called" in c.get("/fraud").text
    assert c.post(url + "undeny", headers={"x-csrf-token": token}).status_code == 200
    assert c.post(url + "explode", headers={"x-csrf-token": token}).status_code == 404
    with BackOffice(d) as bo:
        assert cti not in bo.deny_list()
    v, vtoken = login(app, "vic")
    assert v.post(url + "deny", headers={"x-csrf-token": vtoken}).status_code == 403
    assert "Undeny" not in v.get("/fraud").text and "Deny" not in v.get("/fraud").text.split("<table")[1]
    assert "double_use" in v.get("/export/fraud.csv").text


def test_hourly_bars_svg():
    from offgate_host.web import charts
    h = 1_800_000_000 // 3600 * 3600
    svg = charts.hourly_bars([{"hour": h, "s": "<gate>", "n": 3}, {"hour": h + 3 * 3600, "s": "b", "n": 1}], "n", "s")
    assert svg.startswith("<svg") and svg.endswith("</svg>") and "<gate>" not in svg and "&lt;gate&gt;" in svg
    assert svg.count("<title>") == 2 and svg.count('font-size="10"') == 4  # 4 hour labels: quiet hours shown too
    assert "no data" in charts.hourly_bars([], "n", "s")


def test_enrol_registers_the_receipt_encryption_key(site):
    from offgate_host.ledger.receipts import enc_key_of
    d, app = site
    c = client(app)
    r, enc = Rider(), keys.pub_bytes(keys.generate())
    tok = invite(app)

    def enrol(enc_pub, signed=None):
        msg = ENROL_MSG + hashlib.sha256(tok.encode()).digest() + r.pub + (enc if signed is None else signed)
        return c.post("/api/wallet/enrol", json={"invite": tok, "pub": r.pub.hex(), "enc_pub": enc_pub.hex(),
                                                 "sig": p1363(r.key, msg)})
    assert enrol(enc, signed=b"").status_code == 403  # enc_pub must be under the signature
    assert enrol(b"\x04" + bytes(64), signed=b"\x04" + bytes(64)).status_code == 400  # not a point; link kept
    assert enrol(enc).status_code == 200
    with BackOffice(d) as bo:
        assert enc_key_of(bo, r.pub) == enc
