"""`offgate serve`: the back office's web server (FastAPI + Jinja2).

Two clients:
* the rider wallet (`/wallet/`, a PWA): enrolment by single-use link, codes made in the browser
  with a non-extractable WebCrypto key; its API (`/api/wallet/*`) is authenticated by signatures
  of the wallet key, not by sessions;
* the staff dashboard (every other page): login, sessions (HttpOnly cookie, SameSite=Strict),
  CSRF token on every state-changing request, roles viewer < operator < admin. Without a session
  only the login page answers. The JSON API behind the pages is under `/api/`, documented from its
  OpenAPI schema at `/api/docs` (rendered here: no CDN).
"""
import csv
import hashlib
import hmac
import io
import json
import secrets
import time
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel

from ..wire import formats, keys
from ..ledger import receipts
from ..backoffice.backoffice import BackOffice, BackOfficeError, IssueRefused, UnknownAccount
from ..ledger.ledger import Ledger
from . import charts, data, store

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
VENDOR = HERE / "node_modules"
VENDOR_FILES = {"cborg": "cborg", "uqr": "uqr/dist"}  # URL prefix -> directory under node_modules
SESSION_COOKIE = "og_session"
LOGIN_CSRF_COOKIE = "og_login_csrf"
WALLET_SKEW_S = 300      # a wallet's signed request may be this far from server time
ENROL_MSG = b"offgate-enrol-v1"
RENEW_MSG = b"offgate-renew-v1"


def _now():
    return int(time.time())


def _iso(t):
    if t is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(int(t))) + "Z"


def invite_url(base_url, token):
    """The enrolment link: the token travels in the fragment, so it never reaches server logs."""
    return "%s/wallet/#invite=%s" % (base_url.rstrip("/"), token)


def verify_p1363(pub65: bytes, sig: bytes, msg: bytes) -> bool:
    """ECDSA P-256/SHA-256 over msg with an r||s (IEEE P1363, WebCrypto's form) signature."""
    if len(sig) != 64:
        return False
    try:
        pub = keys.pub_from_bytes(pub65)
        pub.verify(encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")),
                   msg, ec.ECDSA(hashes.SHA256()))
        return True
    except (InvalidSignature, ValueError):
        return False


class EnrolRequest(BaseModel):
    invite: str
    pub: str   # 65-byte uncompressed SEC1 point, hex
    sig: str   # r||s hex over "offgate-enrol-v1" | SHA-256(invite) | pub [| enc_pub]
    enc_pub: str | None = None  # the wallet's second P-256 key (ECDH only), receipts are encrypted to it


class RenewRequest(BaseModel):
    pub: str
    t: int     # wallet clock, Unix seconds; must rise from request to request
    sig: str   # r||s hex over "offgate-renew-v1" | t (8 bytes BE) | pub


class ReceiptRequest(BaseModel):
    request: str  # hex: the COSE_Sign1 receipt request signed by the wallet key (docs/receipts.md)


class InviteRequest(BaseModel):
    zones: list[int]
    product: int = 1
    valid_hours: float = 24
    cap: int | None = None
    replace: bool = False
    ttl_hours: float = 24


class TopUpRequest(BaseModel):
    amount: int


class NoteRequest(BaseModel):
    text: str


def create_app(data_dir, db_url=None, base_url=None) -> FastAPI:
    """The ASGI app over the back office in `data_dir` (ledger: `db_url`, default its SQLite file).
    `base_url` is used in enrolment links (default: the request's own origin)."""
    data_dir = Path(data_dir)
    app = FastAPI(title="offgate back office", version="1", docs_url=None, redoc_url=None, openapi_url=None)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["iso"] = _iso
    templates.env.filters["money"] = lambda v: "-" if v is None else "%.2f" % (v / 100)

    BackOffice(data_dir).close()  # a back office that cannot be opened fails here, not at the first request

    def open_bo():
        return BackOffice(data_dir)

    def open_ledger(bo):
        return Ledger.for_backoffice(bo, db_url)

    # ------------------------------------------------------------------ auth helpers
    def staff(request: Request, bo, role="viewer", api=False):
        s = store.session(bo, request.cookies.get(SESSION_COOKIE))
        if s is None:
            if api:
                raise HTTPException(401, "login required")
            raise _Redirect("/login")
        if not store.role_at_least(s["role"], role):
            raise HTTPException(403, "%s role required" % role)
        return s

    def check_csrf(s, token):
        if not token or not hmac.compare_digest(str(token), s["csrf"]):
            raise HTTPException(403, "CSRF token missing or wrong")

    class _Redirect(Exception):
        def __init__(self, to):
            self.to = to

    @app.exception_handler(_Redirect)
    async def _redir(request, exc):
        return RedirectResponse(exc.to, status_code=303)

    @app.exception_handler(BackOfficeError)
    async def _bo_error(request, exc):
        code = 404 if isinstance(exc, UnknownAccount) else 409 if isinstance(exc, IssueRefused) else 400
        return JSONResponse({"detail": str(exc)}, status_code=code)

    @app.exception_handler(ValueError)
    async def _value_error(request, exc):  # a malformed form field (amount, zones): the request's fault
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.middleware("http")
    async def _headers(request, call_next):
        r = await call_next(request)
        # same-origin everything; inline styles and SVG only (no inline script anywhere)
        r.headers.setdefault("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; "
                             "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
        r.headers.setdefault("X-Content-Type-Options", "nosniff")
        r.headers.setdefault("Referrer-Policy", "no-referrer")
        return r

    def page(request, name, s, **ctx):
        return templates.TemplateResponse(request, name, dict(ctx, staff=s, now=_now()))

    def base(request):
        return base_url or str(request.base_url).rstrip("/")

    # ------------------------------------------------------------------ login / logout
    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_form(request: Request, error: str = ""):
        token = secrets.token_urlsafe(24)
        r = templates.TemplateResponse(request, "login.html", {"csrf": token, "error": error, "staff": None})
        r.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", max_age=600)
        return r

    @app.post("/login", include_in_schema=False)
    async def login(request: Request):
        form = await request.form()
        if not form.get("csrf") or not hmac.compare_digest(str(form.get("csrf")),
                                                           request.cookies.get(LOGIN_CSRF_COOKIE, "")):
            raise HTTPException(403, "CSRF token missing or wrong")
        with open_bo() as bo:
            row = store.check_password(bo, str(form.get("name", "")), str(form.get("password", "")))
            if row is None:
                return RedirectResponse("/login?error=1", status_code=303)
            sid, _ = store.new_session(bo, row["name"])
        r = RedirectResponse("/", status_code=303)
        r.set_cookie(SESSION_COOKIE, sid, httponly=True, samesite="strict", max_age=store.SESSION_SECONDS,
                     secure=request.url.scheme == "https")
        r.delete_cookie(LOGIN_CSRF_COOKIE)
        return r

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request):
        form = await request.form()
        with open_bo() as bo:
            s = staff(request, bo)
            check_csrf(s, form.get("csrf"))
            store.end_session(bo, request.cookies.get(SESSION_COOKIE))
        r = RedirectResponse("/login", status_code=303)
        r.delete_cookie(SESSION_COOKIE)
        return r

    # ------------------------------------------------------------------ pages
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def overview(request: Request):
        with open_bo() as bo:
            s = staff(request, bo)
            with open_ledger(bo) as led:
                rows = data.passages_by_hour(led)
                gs = data.gates(bo, led)
        return page(request, "overview.html", s, chart=charts.hourly_bars(rows, "passages", "station"),
                    rows=rows, total=sum(r["passages"] for r in rows), gates=gs,
                    alerts=sum(len(g["alerts"]) for g in gs))

    @app.get("/gates", response_class=HTMLResponse, include_in_schema=False)
    def gates_page(request: Request):
        with open_bo() as bo:
            s = staff(request, bo)
            with open_ledger(bo) as led:
                gs = data.gates(bo, led)
        return page(request, "gates.html", s, gates=gs)

    @app.get("/denials", response_class=HTMLResponse, include_in_schema=False)
    def denials_page(request: Request):
        with open_bo() as bo:
            s = staff(request, bo)
            with open_ledger(bo) as led:
                rows = data.denials(led)
        by_reason = {}
        for r in rows:
            by_reason[r["reason_name"]] = by_reason.get(r["reason_name"], 0) + r["n"]
        return page(request, "denials.html", s, rows=rows, by_reason=sorted(by_reason.items(), key=lambda kv: -kv[1]),
                    chart=charts.hourly_bars(rows, "n", "reason_name"))

    @app.get("/fraud", response_class=HTMLResponse, include_in_schema=False)
    def fraud_page(request: Request):
        with open_bo() as bo:
            s = staff(request, bo)
            with open_ledger(bo) as led:
                cases = data.fraud(bo, led)
        return page(request, "fraud.html", s, cases=cases)

    @app.get("/accounts", response_class=HTMLResponse, include_in_schema=False)
    def accounts_page(request: Request):
        with open_bo() as bo:
            s = staff(request, bo)
            return page(request, "accounts.html", s, accounts=data.accounts(bo))

    def account_view(request, bo, s, account_id, token=None):
        inv = None
        if token:
            import segno
            url = invite_url(base(request), token)
            inv = {"url": url, "svg": segno.make(url, error="m").svg_inline(scale=4)}
        return page(request, "account.html", s, a=data.account(bo, account_id), invite=inv)

    @app.get("/accounts/{account_id}", response_class=HTMLResponse, include_in_schema=False)
    def account_page(request: Request, account_id: str):
        with open_bo() as bo:
            return account_view(request, bo, staff(request, bo), account_id)

    @app.get("/denylist", response_class=HTMLResponse, include_in_schema=False)
    def denylist_page(request: Request):
        with open_bo() as bo:
            s = staff(request, bo)
            with open_ledger(bo) as led:
                d = data.denylist(bo, led)
        return page(request, "denylist.html", s, d=d)

    @app.get("/api/docs", response_class=HTMLResponse, include_in_schema=False)
    def api_docs(request: Request):
        with open_bo() as bo:
            s = staff(request, bo)
        spec = app.openapi()
        ops = [(m.upper(), p, o.get("summary", ""), o.get("description", "")) for p, item in spec["paths"].items()
               for m, o in item.items()]
        return page(request, "apidocs.html", s, ops=ops)

    @app.get("/api/openapi.json", include_in_schema=False)
    def openapi_json(request: Request):
        with open_bo() as bo:
            staff(request, bo, api=True)
        return app.openapi()

    # ------------------------------------------------------------------ form actions (operator)
    async def form_action(request, role="operator"):
        form = await request.form()
        bo = open_bo()
        try:
            s = staff(request, bo, role)
            check_csrf(s, form.get("csrf"))
        except Exception:
            bo.close()
            raise
        return bo, s, form

    @app.post("/accounts/{account_id}/invite", include_in_schema=False)
    async def invite_form(request: Request, account_id: str):
        bo, s, form = await form_action(request)
        with bo:
            zones = [int(z) for z in str(form.get("zones", "")).replace(" ", "").split(",") if z]
            inv = store.create_invite(bo, account_id, zones=zones, product=int(form.get("product") or 1),
                                      replace=bool(form.get("replace")), by=s["name"])
            # shown in this response only: the token never goes into a URL the server (or a proxy) logs
            return account_view(request, bo, s, account_id, inv["token"])

    @app.post("/accounts/{account_id}/topup", include_in_schema=False)
    async def topup_form(request: Request, account_id: str):
        bo, s, form = await form_action(request)
        with bo:
            bo.top_up(account_id, int(form.get("amount") or 0), by=s["name"])
        return RedirectResponse("/accounts/%s" % account_id, status_code=303)

    @app.post("/fraud/{fraud_id}/{action}", include_in_schema=False)
    async def fraud_form(request: Request, fraud_id: int, action: str):
        bo, s, form = await form_action(request)
        with bo:
            _fraud_action(bo, s, fraud_id, action, form.get("text"))
        return RedirectResponse("/fraud", status_code=303)

    def _fraud_action(bo, s, fraud_id, action, text=None):
        with open_ledger(bo) as led:
            case = data.fraud_case(bo, led, fraud_id)
        if case is None:
            raise HTTPException(404, "no fraud case %d" % fraud_id)
        if action == "deny":
            bo.deny(case["cti"])
            store.add_note(bo, fraud_id, s["name"], "denied")
        elif action == "undeny":
            bo.undeny(case["cti"])
            store.add_note(bo, fraud_id, s["name"], "taken off the deny list")
        elif action == "note":
            store.add_note(bo, fraud_id, s["name"], text)
        else:
            raise HTTPException(404, "unknown action %r" % action)

    @app.get("/staff", response_class=HTMLResponse, include_in_schema=False)
    def staff_page(request: Request):
        with open_bo() as bo:
            s = staff(request, bo, "admin")
            return page(request, "staff.html", s, people=store.list_staff(bo))

    @app.post("/staff", include_in_schema=False)
    async def staff_form(request: Request):
        bo, s, form = await form_action(request, "admin")
        with bo:
            store.add_staff(bo, str(form.get("name", "")), str(form.get("password", "")), str(form.get("role", "")))
        return RedirectResponse("/staff", status_code=303)

    @app.post("/staff/{name}/disable", include_in_schema=False)
    async def staff_disable(request: Request, name: str):
        bo, s, form = await form_action(request, "admin")
        with bo:
            if name == s["name"]:
                raise HTTPException(400, "you cannot disable your own account")
            store.disable_staff(bo, name)
        return RedirectResponse("/staff", status_code=303)

    # ------------------------------------------------------------------ CSV export
    @app.get("/export/{table}.csv", include_in_schema=False)
    def export(request: Request, table: str):
        with open_bo() as bo:
            staff(request, bo)
            with open_ledger(bo) as led:
                rows = {
                    "passages": lambda: data.passages_by_hour(led),
                    "gates": lambda: data.gates(bo, led),
                    "denials": lambda: data.denials(led),
                    "fraud": lambda: data.fraud(bo, led),
                    "accounts": lambda: data.accounts(bo),
                    "denylist": lambda: data.denylist(bo, led)["entries"],
                }.get(table, lambda: None)()
        if rows is None:
            raise HTTPException(404, "no table %r" % table)
        buf = io.StringIO()
        if rows:
            w = csv.DictWriter(buf, fieldnames=list(rows[0]))
            w.writeheader()
            for r in rows:
                w.writerow({k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in r.items()})
        return Response(buf.getvalue(), media_type="text/csv",
                        headers={"Content-Disposition": 'attachment; filename="offgate-%s.csv"' % table})

    # ------------------------------------------------------------------ JSON API (staff)
    @app.get("/api/overview", summary="Passages per hour by station (last 24 h)")
    def api_overview(request: Request):
        with open_bo() as bo:
            staff(request, bo, api=True)
            with open_ledger(bo) as led:
                return {"passages": data.passages_by_hour(led)}

    @app.get("/api/gates", summary="The fleet: health and alerts from the ledger")
    def api_gates(request: Request):
        with open_bo() as bo:
            staff(request, bo, api=True)
            with open_ledger(bo) as led:
                return {"gates": data.gates(bo, led)}

    @app.get("/api/denials", summary="Denials by reason and hour (last 24 h)")
    def api_denials(request: Request):
        with open_bo() as bo:
            staff(request, bo, api=True)
            with open_ledger(bo) as led:
                return {"denials": data.denials(led)}

    @app.get("/api/fraud", summary="Fraud cases with their notes")
    def api_fraud(request: Request):
        with open_bo() as bo:
            staff(request, bo, api=True)
            with open_ledger(bo) as led:
                return {"fraud": data.fraud(bo, led)}

    @app.post("/api/fraud/{fraud_id}/{action}", summary="Act on a fraud case: deny, undeny or note (operator)")
    def api_fraud_action(request: Request, fraud_id: int, action: str, body: NoteRequest | None = None):
        with open_bo() as bo:
            s = staff(request, bo, "operator", api=True)
            check_csrf(s, request.headers.get("x-csrf-token"))
            _fraud_action(bo, s, fraud_id, action, body.text if body else None)
        return {"ok": True}

    @app.get("/api/accounts", summary="Accounts: balance, credit, holds, available (minor units)")
    def api_accounts(request: Request):
        with open_bo() as bo:
            staff(request, bo, api=True)
            return {"accounts": data.accounts(bo)}

    @app.get("/api/accounts/{account_id}", summary="One account: holds, statement, credentials, wallets")
    def api_account(request: Request, account_id: str):
        with open_bo() as bo:
            staff(request, bo, api=True)
            return data.account(bo, account_id)

    @app.post("/api/accounts/{account_id}/topup", summary="Top up an account (operator)")
    def api_topup(request: Request, account_id: str, body: TopUpRequest):
        with open_bo() as bo:
            s = staff(request, bo, "operator", api=True)
            check_csrf(s, request.headers.get("x-csrf-token"))
            a = bo.top_up(account_id, body.amount, by=s["name"])
            return {"id": a["id"], "balance": a["balance"]}

    @app.post("/api/accounts/{account_id}/invite", summary="Create a single-use wallet enrolment link (operator)")
    def api_invite(request: Request, account_id: str, body: InviteRequest):
        with open_bo() as bo:
            s = staff(request, bo, "operator", api=True)
            check_csrf(s, request.headers.get("x-csrf-token"))
            inv = store.create_invite(bo, account_id, zones=body.zones, product=body.product,
                                      valid_seconds=int(body.valid_hours * 3600), cap=body.cap, replace=body.replace,
                                      ttl=int(body.ttl_hours * 3600), by=s["name"])
        inv["url"] = invite_url(base(request), inv["token"])
        return inv

    @app.get("/api/denylist", summary="The deny list: entries, size, and what each gate reported")
    def api_denylist(request: Request):
        with open_bo() as bo:
            staff(request, bo, api=True)
            with open_ledger(bo) as led:
                d = data.denylist(bo, led)
        return d

    @app.get("/api/session", summary="Who is logged in, their role and the CSRF token for API writes")
    def api_session(request: Request):
        with open_bo() as bo:
            s = staff(request, bo, api=True)
        return s

    # ------------------------------------------------------------------ rider wallet
    def wallet_receipts(bo, pub65):
        """The receipts this wallet key asked for: [{"id", "created", "bundle"}] (hex; each bundle
        proves inclusion under the newest signed tree head). Only the rider can decrypt them."""
        with open_ledger(bo) as led:
            return [{"id": r["id"].hex(), "created": r["created"], "bundle": r["bundle"].hex()}
                    for r in receipts.wallet_bundles(led, pub65)]

    def wallet_reply(bo, pub65, cred):
        w = store.wallet(bo, pub65)
        info = formats.parse_credential(cred)
        return {"credential": cred.hex(), "cti": info["cti"].hex(), "zones": info["zones"], "product": info["product"],
                "nbf": info["nbf"], "exp": info["exp"], "cap": info.get("cap"), "account": w["account"],
                "balance": bo.get_account(w["account"])["balance"], "available": bo.available(w["account"]),
                "contact": _now(), "receipts": wallet_receipts(bo, pub65)}

    def issue_for(bo, w, pub65):
        zones = json.loads(w["zones"]) if isinstance(w["zones"], str) else w["zones"]
        return bo.issue_credential(w["account"], pub65, zones=zones, product=w["product"],
                                   valid_seconds=w["valid_seconds"], cap=w["cap"])

    def _hexbytes(v, n, what):
        try:
            b = bytes.fromhex(v)
        except (TypeError, ValueError):
            raise HTTPException(400, "%s must be hex" % what)
        if len(b) != n:
            raise HTTPException(400, "%s must be %d bytes" % (what, n))
        return b

    @app.post("/api/wallet/enrol", summary="Enrol a wallet key with a single-use invite; returns its credential")
    def wallet_enrol(body: EnrolRequest):
        pub = _hexbytes(body.pub, 65, "pub")
        sig = _hexbytes(body.sig, 64, "sig")
        enc_pub = _hexbytes(body.enc_pub, 65, "enc_pub") if body.enc_pub is not None else b""
        msg = ENROL_MSG + hashlib.sha256(body.invite.encode()).digest() + pub + enc_pub
        if not verify_p1363(pub, sig, msg):
            raise HTTPException(403, "proof of possession failed")
        if enc_pub:
            try:
                keys.pub_from_bytes(enc_pub)
            except ValueError:
                raise HTTPException(400, "enc_pub is not a P-256 point")
            if enc_pub == pub:
                raise HTTPException(400, "the encryption key must not be the signing key")
        with open_bo() as bo:
            if store.wallet(bo, pub) is not None:
                raise HTTPException(409, "this key is already enrolled")
            try:
                inv = store.consume_invite(bo, body.invite, pub)
            except store.WebError as e:
                raise HTTPException(403, str(e))
            w = dict(inv)
            try:
                cred = issue_for(bo, w, pub)
            except BackOfficeError:
                store.release_invite(bo, body.invite)
                raise
            store.add_wallet(bo, pub, inv)
            if enc_pub:
                receipts.register_enc_key(bo, pub, enc_pub)  # receipts are encrypted to this key
            if inv["replace_old"]:
                store.revoke_wallets(bo, inv["account"], keep_pub=pub)
            return wallet_reply(bo, pub, cred)

    @app.post("/api/wallet/renew", summary="A fresh credential for an enrolled wallet (request signed by its key)")
    def wallet_renew(body: RenewRequest):
        pub = _hexbytes(body.pub, 65, "pub")
        sig = _hexbytes(body.sig, 64, "sig")
        if abs(body.t - _now()) > WALLET_SKEW_S or body.t < 0:
            raise HTTPException(403, "request time too far from the server's")
        if not verify_p1363(pub, sig, RENEW_MSG + body.t.to_bytes(8, "big") + pub):
            raise HTTPException(403, "signature does not verify")
        with open_bo() as bo:
            w = store.wallet(bo, pub)
            if w is None:
                raise HTTPException(403, "unknown wallet key")
            if w["revoked"]:
                raise HTTPException(403, "this wallet was revoked; enrol again with a new link")
            try:
                store.touch_wallet(bo, pub, body.t)
            except store.WebError as e:
                raise HTTPException(403, str(e))
            return wallet_reply(bo, pub, issue_for(bo, w, pub))

    @app.post("/api/wallet/receipts", summary="A receipt for one trip or a period (request signed by the wallet key)")
    def wallet_receipt(body: ReceiptRequest):
        """The request is checked and answered by receipts.issue (credential issued here, signed by
        the key it certifies, fresh, not replayed); the reply carries the new bundle's id and all the
        receipts of that wallet key. A refused request: 400 with the reason."""
        try:
            req = bytes.fromhex(body.request)
        except ValueError:
            raise HTTPException(400, "request must be hex")
        try:  # which wallet asks (read only: receipts.issue checks the request)
            cti = formats.decode_map(formats.split_sign1(req, "receipt request")[3], "receipt request").get(
                receipts.R_CTI)
        except ValueError as e:
            raise HTTPException(400, str(e))
        with open_bo() as bo:
            cred = bo.credential(cti) if isinstance(cti, bytes) and len(cti) == 8 else None
            w = store.wallet(bo, cred["rider_pub"]) if cred else None
            if w is not None and w["revoked"]:  # a lost phone gets no receipts either
                raise HTTPException(403, "this wallet was revoked; enrol again with a new link")
            with open_ledger(bo) as led:
                bundle = receipts.issue(bo, led, req)
            return {"id": receipts.parse_bundle(bundle)["id"].hex(), "receipts": wallet_receipts(bo, cred["rider_pub"])}

    @app.get("/api/wallet/receipt-keys", summary="The public keys that verify receipts and the receipt log's tree heads")
    def wallet_receipt_keys():
        with open_bo() as bo:
            with open_ledger(bo) as led:
                return receipts.public_keys(bo, led)

    @app.get("/wallet/", response_class=HTMLResponse, include_in_schema=False)
    def wallet_page():
        return FileResponse(STATIC / "wallet.html", headers={"Cache-Control": "no-cache"})

    def service_worker():
        files = ["/wallet/", "/wallet/wallet.js", "/wallet/wallet.css", "/wallet/manifest.webmanifest",
                 "/wallet/icon.svg"]
        for pkg, root in sorted(VENDOR_FILES.items()):
            d = VENDOR / root
            files += ["/vendor/%s/%s" % (pkg, f.relative_to(d).as_posix()) for f in sorted(d.rglob("*"))
                      if f.suffix in (".js", ".mjs") and "test" not in f.relative_to(d).parts
                      and "bench" not in f.relative_to(d).parts and f.parent.name != "types"
                      and not f.name.startswith("example")]
        digest = hashlib.sha256()
        for name in ("wallet.html", "wallet.js", "wallet.css", "sw.js"):
            digest.update((STATIC / name).read_bytes())
        digest.update(json.dumps(files).encode())
        body = (STATIC / "sw.js").read_text().replace("__VERSION__", digest.hexdigest()[:16]) \
            .replace("__PRECACHE__", json.dumps(files))
        return Response(body, media_type="text/javascript", headers={"Cache-Control": "no-cache"})

    @app.get("/wallet/{name}", include_in_schema=False)
    def wallet_static(name: str):
        if name == "sw.js":
            return service_worker()
        types = {"wallet.js": "text/javascript", "sw.js": "text/javascript",
                 "manifest.webmanifest": "application/manifest+json", "wallet.css": "text/css",
                 "icon.svg": "image/svg+xml"}
        if name not in types:
            raise HTTPException(404)
        return FileResponse(STATIC / name, media_type=types[name], headers={"Cache-Control": "no-cache"})

    @app.get("/vendor/{pkg}/{path:path}", include_in_schema=False)
    def vendor(pkg: str, path: str):
        root = VENDOR_FILES.get(pkg)
        if root is None:
            raise HTTPException(404)
        base_dir = (VENDOR / root).resolve()
        f = (base_dir / path).resolve()
        if base_dir not in f.parents or f.suffix not in (".js", ".mjs") or not f.is_file():
            raise HTTPException(404)
        return FileResponse(f, media_type="text/javascript")

    return app
