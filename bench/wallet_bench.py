"""The web wallet's cost per code, in Debian's chromium (Playwright), against the host library in
the same run. Prints JSON.

    python bench/wallet_bench.py [--codes 50]

Browser: `offgate serve` on 127.0.0.1, a wallet enrolled by invite; each code = IndexedDB counter
transaction + cborg encoding + WebCrypto ES256 signature + base45 (`makeCode`), then the QR
symbol as SVG (uqr, level M); timed in the page with performance.now(). Host: formats.make_auth_code
(cwt/pyca) + qr.make (segno) for the same credential. Medians over --codes codes.
Receipts: decrypting a COSE_Encrypt (ECDH-ES + HKDF-256, A256GCM, docs/receipts.md) of a 1 kB
signed receipt in the page (WebCrypto, `decryptReceipt`, the non-extractable ECDH key) against
receipts.decrypt_with (cwt/pyca) on the host; medians over --codes receipts.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "support"))

from offgate_host.wire import formats, keys, qr  # noqa: E402
from offgate_host.ledger import receipts
from offgate_host.backoffice.backoffice import BackOffice  # noqa: E402
from offgate_host.web import store  # noqa: E402
from offgate_host.web.app import create_app, invite_url  # noqa: E402

CHROMIUM = os.environ.get("OFFGATE_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"]

PAGE_LOOP = """async n => {
  const {encode, renderSVG} = await import('/vendor/uqr/index.mjs')
  const code = [], render = []
  for (let i = 0; i < n; i++) {
    let t0 = performance.now()
    const c = await window.offgateWallet.makeCode()
    let t1 = performance.now()
    renderSVG(c.text, {ecc: 'M', border: 4})
    render.push(performance.now() - t1); code.push(t1 - t0)
  }
  return {code, render}
}"""
DECRYPT_LOOP = """async encs => {
  const un = h => new Uint8Array(h.match(/../g).map(x => parseInt(x, 16)))
  const out = []
  for (const e of encs) {
    const b = un(e); const t0 = performance.now()
    await window.offgateWallet.decryptReceipt(b)
    out.push(performance.now() - t0)
  }
  return out
}"""
PLAIN = os.urandom(1024)  # about a signed receipt's size


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--codes", type=int, default=50)
    n = ap.parse_args().codes
    if not Path(CHROMIUM).exists():
        print(json.dumps({"skipped": "no chromium at %s" % CHROMIUM}))
        return 0
    import uvicorn
    from mpbridge import free_port
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as d:
        with BackOffice(d) as bo:
            bo.init_issuer("bench", valid_from=int(time.time()) - 3600)
            bo.create_account("a", balance=10 ** 6)
            token = store.create_invite(bo, "a", zones=[1, 2])["token"]
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(create_app(d), host="127.0.0.1", port=port, log_level="warning"))
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.05)
        base = "http://127.0.0.1:%d" % port
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            page = b.new_page()
            page.goto(invite_url(base, token))
            page.wait_for_selector("body[data-ready='1']")
            page.evaluate(PAGE_LOOP, 3)  # warm-up: module loads, JIT
            t = page.evaluate(PAGE_LOOP, n)
            cred = bytes.fromhex(page.evaluate("window.offgateWallet.state().then(s => s.cred.credential)"))
            with BackOffice(d) as bo:
                enc_pub = receipts.enc_key_of(bo, bytes.fromhex(page.evaluate("window.offgateWallet.state().then(s => s.pub)")))
            encs = [receipts.encrypt_to(enc_pub, PLAIN).hex() for _ in range(n + 3)]
            page_dec = page.evaluate(DECRYPT_LOOP, encs)[3:]
            b.close()
        server.should_exit = True
    rider = keys.generate()
    host_code, host_qr = [], []
    now = int(time.time())
    for i in range(n + 3):
        t0 = time.perf_counter()
        c = formats.make_auth_code(rider, cred, iat=now, ctr=i + 1)
        t1 = time.perf_counter()
        qr.make(formats.qr_text(c))
        t2 = time.perf_counter()
        if i >= 3:
            host_code.append((t1 - t0) * 1000)
            host_qr.append((t2 - t1) * 1000)
    hk = keys.generate()
    host_dec = []
    for i in range(n + 3):
        e = receipts.encrypt_to(keys.pub_bytes(hk), PLAIN)
        t0 = time.perf_counter()
        assert receipts.decrypt_with(hk, e) == PLAIN
        if i >= 3:
            host_dec.append((time.perf_counter() - t0) * 1000)
    out = {
        "browser_receipt_decrypt_median_ms": round(statistics.median(page_dec), 3),
        "host_receipt_decrypt_median_ms": round(statistics.median(host_dec), 3),
        "codes": n,
        "browser_code_median_ms": round(statistics.median(t["code"]), 3),
        "browser_qr_svg_median_ms": round(statistics.median(t["render"]), 3),
        "host_code_median_ms": round(statistics.median(host_code), 3),
        "host_qr_median_ms": round(statistics.median(host_qr), 3),
        "credential_bytes": len(cred),
        "chromium": CHROMIUM,
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
