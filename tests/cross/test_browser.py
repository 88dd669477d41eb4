"""The rider wallet and the staff dashboard in a real browser (Debian's chromium driven by Playwright),
pages served by `offgate serve` from 127.0.0.1 (WebCrypto needs a secure context).

End to end: staff log in and create an invite -> the wallet page enrols and shows a QR -> a
screenshot of it is decoded by zxing-cpp -> the text goes to the simulated gate (the real firmware)
-> OPEN -> sync -> settlement -> the dashboard shows the passage, the gate's health and the charge.
Also: the key is not extractable; a browser-made code is what the host library would build, byte
for byte, and the firmware verifies it; the wallet survives a reload and a browser restart.

One browser (a persistent profile, like a phone's) for the module. Skipped, with the reason, when
chromium or Playwright is missing; .ci/run installs both, so CI runs them.
"""
import os
import threading
import time
from pathlib import Path

import pytest

from mpbridge import free_port

CHROMIUM = os.environ.get("OFFGATE_CHROMIUM", "/usr/bin/chromium")
if os.environ.get("OFFGATE_REQUIRE_BROWSER") and not Path(CHROMIUM).exists():
    raise RuntimeError("OFFGATE_REQUIRE_BROWSER is set (CI) but %s is missing" % CHROMIUM)  # never a silent skip in CI
if not Path(CHROMIUM).exists():
    pytest.skip("browser tests need Debian's chromium at %s (apt-get install chromium; .ci/run installs it)"
                % CHROMIUM, allow_module_level=True)
playwright_api = pytest.importorskip("playwright.sync_api", reason="browser tests need the playwright package")
zxingcpp = pytest.importorskip("zxingcpp", reason="browser tests need zxing-cpp")
Image = pytest.importorskip("PIL.Image", reason="browser tests need pillow")
uvicorn = pytest.importorskip("uvicorn")

from offgate_host.wire import formats  # noqa: E402
from offgate_host.backoffice.backoffice import BackOffice  # noqa: E402
from offgate_host.ledger.ledger import Ledger  # noqa: E402
from offgate_host.device.provision import provision_gate_dir# noqa: E402
from offgate_host.ledger.pull import sync_gate
from offgate_host.web import store  # noqa: E402
from offgate_host.web.app import VENDOR, create_app  # noqa: E402

if not VENDOR.is_dir():
    pytest.skip("the wallet's JavaScript libraries are missing: run `make web`", allow_module_level=True)

from conftest import own_oracle  # noqa: E402
from backlog import SyncSimGate  # noqa: E402  (a simulated gate with its sync link)

from offgate_host.device.simgate import write_gate_dir  # noqa: E402

NOW = int(time.time())
PW = "correct horse battery"
FARE = 250
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage",
        "--disable-extensions", "--no-first-run", "--disable-component-update"]
GATE_ID = 7
mp = own_oracle()  # the gate decision loads verifier and tables: not into the session-wide oracle


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """`offgate serve` on 127.0.0.1 over a fresh back office: accounts, an operator, the fare."""
    d = tmp_path_factory.mktemp("bo")
    with BackOffice(d) as bo:
        bo.init_issuer("browser", valid_from=NOW - 86400)
        bo.create_account("acct-a", balance=5000)
        store.add_staff(bo, "olga", PW, "operator")
        led = Ledger.for_backoffice(bo)
        led.set_fare(1, FARE)
        led.close()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(d), host="127.0.0.1", port=port, log_level="warning"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    assert server.started, "offgate serve did not start"
    yield {"dir": d, "url": "http://127.0.0.1:%d" % port}
    server.should_exit = True
    t.join(10)


class Browser:
    """One chromium with a persistent profile (the phone's storage survives restarts)."""

    def __init__(self, profile):
        self.profile = profile
        self.pw = playwright_api.sync_playwright().start()
        self.ctx = None
        self.launch()

    def launch(self):
        self.ctx = self.pw.chromium.launch_persistent_context(str(self.profile), executable_path=CHROMIUM,
                                                              headless=True, args=ARGS)
        self.ctx.set_default_timeout(20000)

    def restart(self):
        self.ctx.close()
        self.launch()

    def close(self):
        self.ctx.close()
        self.pw.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    b = Browser(tmp_path_factory.mktemp("profile"))
    yield b
    b.close()


def wallet_page(browser, url):
    page = browser.ctx.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']")
    assert not errors, errors
    return page


def staff_login(browser, site):
    page = browser.ctx.new_page()
    page.goto(site["url"] + "/")
    assert page.url.endswith("/login")  # nothing but the login page without a session
    page.fill("#name", "olga")
    page.fill("#password", PW)
    page.click("#login")
    page.wait_for_url(site["url"] + "/")
    return page


def decode_screenshot(page, path):
    page.locator("#qr svg").screenshot(path=str(path))
    found = zxingcpp.read_barcodes(Image.open(path).convert("L"), formats=zxingcpp.BarcodeFormat.QRCode)
    # one code on the page; the reader may report the same symbol twice (seen once in CI): one text
    texts = {f.text for f in found}
    assert len(texts) == 1, "zxing-cpp found %d QR codes with %d texts" % (len(found), len(texts))
    return texts.pop()


@pytest.fixture(scope="module")
def enrolled(browser, site):
    """Staff create an invite on the dashboard; the wallet page opens the link and enrols."""
    staff = staff_login(browser, site)
    staff.goto(site["url"] + "/accounts/acct-a")
    staff.fill("input[name=zones]", "1,2")
    staff.click("#make-invite")
    link = staff.get_attribute("#invite-url", "href")
    assert "/wallet/#invite=" in link
    page = wallet_page(browser, link)
    assert page.inner_text("#status") == "Enrolled."
    assert page.inner_text("#zones") == "1, 2" and page.inner_text("#account") == "acct-a"
    assert page.inner_text("#balance").startswith("50.00")
    # the link was single use: opening it again (another phone) fails
    again = wallet_page(browser, link.replace("127.0.0.1", "localhost"))
    assert "already been used" in again.inner_text("#status")
    again.close()
    return {"staff": staff, "page": page, "dir": site["dir"]}


def test_end_to_end_invite_enrol_scan_gate_sync_dashboard(site, enrolled, tmp_path):
    page, staff = enrolled["page"], enrolled["staff"]
    page.click("#show")
    page.wait_for_selector("#qr svg")
    assert page.get_attribute("#qr", "data-version") == "11"  # QR version 11 at level M
    text = decode_screenshot(page, tmp_path / "qr.png")
    assert text == page.get_attribute("#qr", "data-text") and text.startswith("OG1:")
    page.click("#hide")

    with BackOffice(site["dir"]) as bo:
        cfg = write_gate_dir(tmp_path / "gate", gate_id=GATE_ID, zone=1, trust=bo.trust_bytes(), deny=bo.deny_bytes())
        provision_gate_dir(cfg.parent, bo, gate_id=GATE_ID)
        gate = SyncSimGate(cfg, free_port()).start()
        try:
            r = gate.scan(text)
            assert (r["decision"], r["reason"]) == ("OPEN", "OK"), r
            assert gate.scan(text)["reason"] == "REPLAY"
            led = Ledger.for_backoffice(bo)
            try:
                s = sync_gate(gate.transport(), bo, led)
                assert s["gate_id"] == GATE_ID and s["new"] == 2
                assert led.settle(bo)["trips"] == 1
            finally:
                led.close()
        finally:
            gate.stop()

    staff.goto(site["url"] + "/")
    assert staff.inner_text("#total-passages") == "1"
    assert "gate %d" % GATE_ID in staff.inner_text("#passages")
    staff.goto(site["url"] + "/gates")
    row = staff.inner_text("tr[data-gate='%d']" % GATE_ID)
    assert "healthy" in row and "Z" in row  # synced just now (ISO time), no alerts
    staff.goto(site["url"] + "/accounts/acct-a")
    assert staff.get_attribute("#balance", "data-minor") == str(5000 - FARE)
    assert "trip" in staff.inner_text("#statement") and "gate %d" % GATE_ID in staff.inner_text("#statement")
    staff.goto(site["url"] + "/denials")
    assert "REPLAY" in staff.inner_text("#by-reason")


def test_key_is_not_extractable(enrolled):
    page = enrolled["page"]
    out = page.evaluate("""async () => {
        const s = await window.offgateWallet.state()
        let exported = null
        for (const fmt of ['pkcs8', 'jwk']) {
            try { await crypto.subtle.exportKey(fmt, s.keys.privateKey); exported = fmt } catch (e) {}
        }
        return {extractable: s.keys.privateKey.extractable, type: s.keys.privateKey.type,
                usages: s.keys.privateKey.usages, curve: s.keys.privateKey.algorithm.namedCurve, exported}
    }""")
    assert out == {"extractable": False, "type": "private", "usages": ["sign"], "curve": "P-256", "exported": None}
    # the second key, for receipts (ECDH): not extractable either, and registered at enrolment
    enc = page.evaluate("""async () => {
        const s = await window.offgateWallet.state()
        const k = await new Promise(r => {
            const o = indexedDB.open('offgate-wallet')
            o.onsuccess = () => { const g = o.result.transaction('kv').objectStore('kv').get('encKeys'); g.onsuccess = () => r(g.result) }
        })
        const pub = new Uint8Array(await crypto.subtle.exportKey('raw', k.publicKey))
        return {extractable: k.privateKey.extractable, alg: k.privateKey.algorithm.name, usages: k.privateKey.usages,
                pub: Array.from(pub, x => x.toString(16).padStart(2, '0')).join(''), wallet: s.pub}
    }""")
    assert (enc["extractable"], enc["alg"], enc["usages"]) == (False, "ECDH", ["deriveBits"])
    from offgate_host.ledger.receipts import enc_key_of
    with BackOffice(enrolled["dir"]) as bo:
        assert enc_key_of(bo, bytes.fromhex(enc["wallet"])) == bytes.fromhex(enc["pub"])


def test_browser_code_verifies_on_firmware_byte_for_byte(site, enrolled, mp, tmp_path):
    page = enrolled["page"]
    c = page.evaluate("window.offgateWallet.makeCode(%d)" % ((NOW + 5) * 1000))
    code = bytes.fromhex(c["code"])
    assert c["text"] == formats.qr_text(code)
    a = formats.parse_auth_code(code)
    assert a["verified"] and (a["iat"], a["ctr"]) == (NOW + 5, c["ctr"])
    # the host library builds the same bytes around the browser's signature
    import cbor2
    prot, unprot, payload, sig = cbor2.loads(code)
    assert payload == cbor2.dumps({1: a["cred"], 2: NOW + 5, 3: c["ctr"]})
    assert code == cbor2.dumps([bytes.fromhex("a10126"), {}, payload, sig])
    # the firmware (MicroPython) verifies both signatures and decides OPEN
    with BackOffice(site["dir"]) as bo:
        trust, deny, ipub = bo.trust_bytes(), bo.deny_bytes(), bo.issuer_keys()[0]["pub"]
    assert mp.call("offgate.cose.sign1_verify", code, a["credential"]["rider_pub65"]) == payload
    assert mp.call("offgate.cose.sign1_verify", a["cred"], ipub) is not None
    mp.call("gate_probe.setup", str(tmp_path), trust, deny, 9, 1, 60, 30, 16)
    assert mp.call("gate_probe.decide", c["text"].encode(), NOW + 10) == "OK"


def test_wallet_survives_reload_and_browser_restart(site, browser, enrolled):
    page = enrolled["page"]
    before = page.evaluate("window.offgateWallet.state().then(s => ({pub: s.pub, ctr: s.ctr, cti: s.cred.cti}))")
    page.reload()
    page.wait_for_selector("body[data-ready='1']")
    assert page.evaluate("window.offgateWallet.state().then(s => s.pub)") == before["pub"]
    enrolled["staff"].close()
    browser.restart()  # the phone's browser closed and opened again: the same profile
    page = wallet_page(browser, site["url"] + "/wallet/")
    assert page.inner_text("#status") == "Ready."
    after = page.evaluate("window.offgateWallet.state().then(s => ({pub: s.pub, ctr: s.ctr, cti: s.cred.cti}))")
    assert after == before
    c = page.evaluate("window.offgateWallet.makeCode()")
    assert c["ctr"] == before["ctr"] + 1  # the counter never goes back
    assert formats.parse_auth_code(bytes.fromhex(c["code"]))["verified"]
    # renewal signed by the wallet key: a new credential for the same key
    r = page.evaluate("window.offgateWallet.renew()")
    assert r["cti"] != before["cti"] and r["account"] == "acct-a"


def test_wallet_works_offline_and_refreshes_the_shown_code(site, browser):
    page = wallet_page(browser, site["url"] + "/wallet/")
    assert page.evaluate("navigator.serviceWorker.ready.then(r => !!r.active)")
    browser.ctx.set_offline(True)
    try:
        page.reload()  # served by the service worker's cache
        page.wait_for_selector("body[data-ready='1']")
        # really offline: the network is unreachable (the service worker leaves /api/ alone)
        assert page.evaluate("fetch('/api/session').then(() => 'reached', () => 'unreachable')") == "unreachable"
        assert page.inner_text("#status") == "Ready."
        assert page.inner_text("#zones") == "1, 2"
        page.clock.install()  # the page's timers on a fake clock: 15 s pass at once
        page.click("#show")
        page.wait_for_selector("#qr svg")
        first = int(page.get_attribute("#qr", "data-ctr"))
        # while shown, a new code (new counter) at least every 15 s; none while hidden
        page.clock.run_for(15000)
        page.wait_for_function("c => +document.getElementById('qr').dataset.ctr > c", arg=first, timeout=5000)
        page.click("#hide")
        hidden_at = page.evaluate("window.offgateWallet.state().then(s => s.ctr)")
        page.wait_for_timeout(500)
        assert page.evaluate("window.offgateWallet.state().then(s => s.ctr)") == hidden_at
    finally:
        browser.ctx.set_offline(False)


def test_browser_refusals_expired_link_unauthenticated_and_cross_account(site, browser):
    with BackOffice(site["dir"]) as bo:
        bo.create_account("acct-b", balance=5000)
        expired = store.create_invite(bo, "acct-a", zones=[1], ttl=60, now=NOW - 120)["token"]
        other = store.create_invite(bo, "acct-b", zones=[1])["token"]
    # an expired link: the page says so, and enrols nothing (another origin = another, empty wallet)
    page = wallet_page(browser, site["url"].replace("127.0.0.1", "localhost") + "/wallet/#invite=" + expired)
    assert "expired" in page.inner_text("#status")
    assert page.evaluate("window.offgateWallet.state().then(s => s.cred === undefined)")
    page.close()
    # without the staff session cookie, the staff API answers 401
    page = wallet_page(browser, site["url"] + "/wallet/")
    assert page.evaluate("fetch('/api/accounts', {credentials: 'omit'}).then(r => r.status)") == 401
    # B's wallet key (enrolled elsewhere); this wallet signs a renewal for B's key: refused
    b_pub = page.evaluate("""async inv => {
        const kp = await crypto.subtle.generateKey({name: 'ECDSA', namedCurve: 'P-256'}, false, ['sign'])
        const pub = new Uint8Array(await crypto.subtle.exportKey('raw', kp.publicKey))
        const hex = b => Array.from(b, x => x.toString(16).padStart(2, '0')).join('')
        const te = new TextEncoder()
        const h = new Uint8Array(await crypto.subtle.digest('SHA-256', te.encode(inv)))
        const msg = new Uint8Array([...te.encode('offgate-enrol-v1'), ...h, ...pub])
        const sig = new Uint8Array(await crypto.subtle.sign({name: 'ECDSA', hash: 'SHA-256'}, kp.privateKey, msg))
        const r = await fetch('/api/wallet/enrol', {method: 'POST', headers: {'content-type': 'application/json'},
                                                    body: JSON.stringify({invite: inv, pub: hex(pub), sig: hex(sig)})})
        return r.ok ? hex(pub) : null
    }""", other)
    assert b_pub
    status = page.evaluate("""async bpub => {
        const s = await window.offgateWallet.state()
        const t = Math.floor(Date.now() / 1000) + 1
        const tb = new Uint8Array(8); new DataView(tb.buffer).setBigUint64(0, BigInt(t))
        const unhex = h => new Uint8Array(h.match(/../g).map(x => parseInt(x, 16)))
        const msg = new Uint8Array([...new TextEncoder().encode('offgate-renew-v1'), ...tb, ...unhex(bpub)])
        const sig = new Uint8Array(await crypto.subtle.sign({name: 'ECDSA', hash: 'SHA-256'}, s.keys.privateKey, msg))
        const hex = b => Array.from(b, x => x.toString(16).padStart(2, '0')).join('')
        const r = await fetch('/api/wallet/renew', {method: 'POST', headers: {'content-type': 'application/json'},
                                                    body: JSON.stringify({pub: bpub, t, sig: hex(sig)})})
        return r.status
    }""", b_pub)
    assert status == 403


def test_phone_clock_off_by_minutes_still_makes_fresh_codes(site, browser):
    with BackOffice(site["dir"]) as bo:
        token = store.create_invite(bo, "acct-a", zones=[1])["token"]
    page = browser.ctx.new_page()
    page.clock.set_system_time(time.time() - 600)  # this phone's clock is 10 minutes slow
    page.goto("http://localhost:%s/wallet/#invite=%s" % (site["url"].rsplit(":", 1)[1], token))
    page.wait_for_selector("body[data-ready='1']")
    assert page.inner_text("#status") == "Enrolled."
    c = page.evaluate("window.offgateWallet.makeCode()")
    assert abs(c["iat"] - time.time()) < 30  # on the server's clock: within the gates' skew
    assert page.evaluate("window.offgateWallet.renew().then(r => r.account)") == "acct-a"  # t corrected too


def test_wallet_requests_decrypts_verifies_and_keeps_a_receipt(site, browser, tmp_path):
    """After the end-to-end trip was synced and settled: the wallet signs a receipt request, the
    back office answers with the encrypted bundle, the page decrypts it (WebCrypto ECDH -> HKDF ->
    AES-GCM), verifies the receipt and its log inclusion, shows it and keeps it for offline use;
    the bytes it decrypted verify with `offgate receipt verify` on the host (differential)."""
    import cbor2
    import hashlib
    from click.testing import CliRunner
    from offgate_host.ledger import receipts
    from offgate_host.cli import main

    with BackOffice(site["dir"]) as bo:
        trips = bo.db.execute("SELECT gate, seq, amount, t FROM charges").fetchall()
    if not trips:
        pytest.skip("needs the trip test_end_to_end_invite_enrol_scan_gate_sync_dashboard settles (run the module)")
    assert [(g, a) for g, _, a, _ in trips] == [(GATE_ID, FARE)]
    t_trip = trips[0][3]
    browser.restart()  # the phone's clock back to true time (the test before set the context's clock slow)
    page = wallet_page(browser, site["url"] + "/wallet/")
    r = page.evaluate("([f, t]) => window.offgateWallet.requestReceipt({from: f, to: t})", [t_trip - 3600, t_trip + 3600])
    body = r["body"]
    assert (body["total"], body["currency"], [t["gate"] for t in body["trips"]]) == (FARE, "PLN", [GATE_ID])
    assert body["tax"] == receipts.tax_split(FARE, 800)
    # the page shows it: date, station, amount in major units with the currency, tax
    page.wait_for_selector("#receipt-list li[data-id='%s']" % r["id"])
    summary = page.inner_text("#receipt-list li[data-id='%s'] summary" % r["id"])
    assert "2.50 PLN" in summary and "tax 0.19 PLN" in summary and "gate %d" % GATE_ID in summary, summary
    page.click("#receipt-list li[data-id='%s'] summary" % r["id"])
    assert "gate %d #" % GATE_ID in page.inner_text("#receipt-list li[data-id='%s'] table" % r["id"])

    # differential: the plaintext the browser decrypted, exported as the CLI wallet would, verifies
    # on the host against the back office (signature, inclusion, tree head, consistency, ledger)
    b = cbor2.loads(bytes.fromhex(r["bundle"]))
    plain = dict(b, signed=bytes.fromhex(r["signed"]), enc_hash=hashlib.sha256(b["receipt"]).digest())
    del plain["receipt"]
    (tmp_path / "r.cbor").write_bytes(cbor2.dumps(plain))
    res = CliRunner().invoke(main, ["receipt", "verify", str(tmp_path / "r.cbor"), "--data", str(site["dir"])])
    assert res.exit_code == 0 and "receipt %s verified" % r["id"] in res.output, res.output
    assert "ok  ledger: 1 record(s)" in res.output
    # one bit flipped in what the page decrypted: refused
    bad = bytearray(plain["signed"])
    bad[-1] ^= 1
    (tmp_path / "bad.cbor").write_bytes(cbor2.dumps(dict(plain, signed=bytes(bad))))
    res = CliRunner().invoke(main, ["receipt", "verify", str(tmp_path / "bad.cbor"), "--data", str(site["dir"])])
    assert res.exit_code == 1 and "signature" in res.output, res.output

    # the server's checks are receipts.issue's: a replayed request, a request for a trip that is not
    # this rider's, a request signed by another key are refused with the reason
    out = page.evaluate("""async ([f, t]) => {
        const w = window.offgateWallet
        const send = req => fetch('/api/wallet/receipts', {method: 'POST', headers: {'content-type': 'application/json'},
            body: JSON.stringify({request: req})}).then(async r => [r.status, (await r.json()).detail || ''])
        const req = await w.makeReceiptRequest({from: f, to: t})
        const forged = req.slice(0, -4) + (req.slice(-4) === '0000' ? '0001' : '0000')
        return [await send(req), await send(req), await send(await w.makeReceiptRequest({trip: [99, 1]})), await send(forged)]
    }""", [t_trip - 3600, t_trip + 3600])
    assert out[0][0] == 200 and out[1] == [400, "receipt request already answered (replayed)"], out
    assert out[2][0] == 400 and "no charged trip gate 99" in out[2][1], out
    assert out[3][0] == 400 and "signature verification failed" in out[3][1], out
    # a receipt the back office issued outside this page (for one trip: gate, seq) reaches the
    # wallet in its next renewal's list; kept receipts get the newer tree head, verified again
    req = page.evaluate("t => window.offgateWallet.makeReceiptRequest({trip: t})", [GATE_ID, trips[0][1]])
    with BackOffice(site["dir"]) as bo:
        led = Ledger.for_backoffice(bo)
        try:
            other = receipts.parse_bundle(receipts.issue(bo, led, bytes.fromhex(req)))["id"].hex()
            n = len(receipts.stored(led))
        finally:
            led.close()
        enc_pub = receipts.enc_key_of(bo, bytes.fromhex(page.evaluate("window.offgateWallet.state().then(s => s.pub)")))
    listed = page.evaluate("window.offgateWallet.renew().then(r => r.receipts.map(x => x.id))")
    assert other in listed and r["id"] in listed and len(listed) == n == 3
    kept = page.evaluate("window.offgateWallet.receipts()")
    assert [k["id"] for k in kept if k["id"] in (r["id"], other)] == [r["id"], other]
    assert {k["size"] for k in kept} == {3} and kept[-1]["body"]["period"] is None
    page.wait_for_selector("#receipt-list li[data-id='%s']" % other)
    # receipts encrypted before the recipient's alg moved into its protected header (cwt puts
    # {1: alg} into the KDF context either way) still decrypt in the page
    from cwt import COSE, Recipient
    from offgate_host.wire import keys
    old = Recipient.new(unprotected={1: -25, 4: keys.kid_of(enc_pub)}, recipient_key=receipts._ecdh_cose_key(enc_pub),
                        context={"alg": "A256GCM"})
    for enc in (COSE.new().encode(b"legacy layout", protected={1: 3}, recipients=[old]),
                receipts.encrypt_to(enc_pub, b"legacy layout")):
        assert page.evaluate("""h => window.offgateWallet.decryptReceipt(new Uint8Array(h.match(/../g).map(x => parseInt(x, 16))))
            .then(b => new TextDecoder().decode(b))""", enc.hex()) == "legacy layout"

    # the page's own button: a receipt for this (UTC) month, which holds the trip
    if time.gmtime(t_trip)[:2] == time.gmtime()[:2]:
        page.click("#receipt-month")
        page.wait_for_function("() => document.getElementById('status').textContent.startsWith('Receipt')")
        assert page.inner_text("#status") == "Receipt received."
        assert page.locator("#receipt-list li").count() == 4

    # kept in IndexedDB: shown offline after a reload
    browser.ctx.set_offline(True)
    try:
        page.reload()
        page.wait_for_selector("body[data-ready='1']")
        assert "2.50 PLN" in page.inner_text("#receipt-list li[data-id='%s'] summary" % r["id"])
    finally:
        browser.ctx.set_offline(False)
