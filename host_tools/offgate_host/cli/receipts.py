"""`offgate receipt ...` (back office, verifier) and `offgate wallet receipt ...` (the rider):
signed electronic receipts on the tamper-evident log (receipts.py, docs/receipts.md). Registered
by cli/__init__.py through `register`, which hands over its shared helpers."""
import datetime
import json
from pathlib import Path

import click


def _when(text, what):
    """Unix seconds, or an ISO date/time (UTC)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        d = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter("%s must be Unix seconds or an ISO date such as 2026-11-30" % what) from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=datetime.timezone.utc)
    return int(d.timestamp())


def _iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def _money(v, cur):
    from ..ledger.receipts import money
    return money(v, cur)


def _describe(body) -> list:
    cur = body.get("currency", "")
    op = body.get("operator") or {}
    lines = ["receipt %s issued %s by %s%s" % (body["id"].hex(), _iso(body["issued"]), op.get("name"),
                                              " (tax id %s)" % op["tax_id"] if op.get("tax_id") else ""),
             "account %s, rider key %s%s" % (body.get("account"), body["rider_key"].hex(),
                                             ", period %s .. %s" % (_iso(body["period"][0]), _iso(body["period"][1]))
                                             if body.get("period") else "")]
    for t in body.get("trips", []):
        lines.append("  %s  %-14s gate %-5d seq %-6d product %-3d %12s  record %s"
                     % (_iso(t["t"]), t["station"], t["gate"], t["seq"], t["product"], _money(t["amount"], cur),
                        t["record"].hex()[:16]))
    tax = body.get("tax", {})
    lines.append("total %s (net %s, VAT %d.%02d %% %s)" % (_money(body["total"], cur), _money(tax.get("net", 0), cur),
                                                         tax.get("rate_bp", 0) // 100, tax.get("rate_bp", 0) % 100,
                                                         _money(tax.get("tax", 0), cur)))
    return lines


def register(main, wallet_group, data_option, db_option, user_errors, open_ledger):
    from ..backoffice.backoffice import BackOffice

    @main.group("receipt")
    def receipt_group():
        """Signed electronic receipts on a tamper-evident log (docs/receipts.md)."""

    @receipt_group.command("config")
    @data_option
    @db_option
    @click.option("--operator", default=None, help="operator name on receipts (default: the issuer name)")
    @click.option("--tax-id", default=None)
    @click.option("--address", default=None)
    @click.option("--currency", default=None, help="ISO 4217 code [default: PLN]")
    @click.option("--vat-bp", type=click.IntRange(0, 10000), default=None, help="VAT in basis points, fares tax-inclusive [default: 800]")
    @user_errors
    def receipt_config(data_dir, db, operator, tax_id, address, currency, vat_bp):
        """Show or set what receipts say about the operator and tax."""
        from ..ledger import receipts
        with BackOffice(data_dir, create=False) as bo, open_ledger(data_dir, db, bo) as led:
            receipts.set_settings(led, operator=operator, tax_id=tax_id, address=address, currency=currency,
                                  vat_bp=vat_bp)
            click.echo(json.dumps(receipts.settings(bo, led)))

    @receipt_group.command("keys")
    @data_option
    @db_option
    @click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None)
    @user_errors
    def receipt_keys(data_dir, db, out):
        """The public keys that verify receipts and the log's tree heads (JSON), for riders and auditors."""
        from ..ledger import receipts
        with BackOffice(data_dir, create=False) as bo, open_ledger(data_dir, db, bo) as led:
            text = json.dumps(receipts.public_keys(bo, led))
        if out:
            out.write_text(text + "\n")
            click.echo("receipt keys -> %s" % out)
        else:
            click.echo(text)

    @receipt_group.command("issue")
    @data_option
    @db_option
    @click.argument("request", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="the rider's bundle")
    @user_errors
    def receipt_issue(data_dir, db, request, out):
        """Answer a rider's signed REQUEST: build, sign, encrypt and log the receipt; write the bundle."""
        from ..ledger import receipts
        with BackOffice(data_dir, create=False) as bo, open_ledger(data_dir, db, bo) as led:
            bundle = receipts.issue(bo, led, request.read_bytes())
        out.write_bytes(bundle)
        click.echo("receipt bundle (%d bytes) -> %s" % (len(bundle), out))

    @receipt_group.command("verify")
    @data_option
    @db_option
    @click.argument("bundle", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--wallet", "wallet_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                  default=None, help="the rider's wallet (to decrypt an encrypted receipt)")
    @click.option("--keys", "keys_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
                  help="the operator's receipt keys (offgate receipt keys); without it, the back office in --data "
                       "is used, and the log's consistency and the ledger records are checked too")
    @user_errors
    def receipt_verify(data_dir, db, bundle, wallet_path, keys_file):
        """Check a receipt BUNDLE: signature, inclusion proof, signed tree head, sums (and, against the back
        office's database: consistency with the current log, the ledger records it names)."""
        from ..ledger import receipts
        from ..wallet import Wallet
        enc = Wallet.load(wallet_path).enc_key if wallet_path else None
        data = bundle.read_bytes()
        if keys_file:
            try:
                k = json.loads(keys_file.read_text())
                rpub, lpub = bytes.fromhex(k["receipt_pub"]), bytes.fromhex(k["log_pub"])
            except (ValueError, KeyError, TypeError, AttributeError):
                raise receipts.ReceiptError("%s is not a receipt keys file (offgate receipt keys)" % keys_file) from None
            res = receipts.verify_bundle(data, rpub, lpub, enc)
        else:
            if not (Path(data_dir) / "offgate.db").exists():
                raise receipts.ReceiptError("no back office at %s: give --keys FILE or --data DIR" % data_dir)
            with BackOffice(data_dir, create=False) as bo, open_ledger(data_dir, db, bo) as led:
                k = receipts.public_keys(bo, led)
                res = receipts.verify_bundle(data, bytes.fromhex(k["receipt_pub"]), bytes.fromhex(k["log_pub"]), enc, led)
        for c in res["checks"]:
            click.echo("ok  " + c)
        click.echo("receipt %s verified" % res["receipt"]["id"].hex())

    @receipt_group.command("audit")
    @data_option
    @db_option
    @user_errors
    def receipt_audit(data_dir, db):
        """Check the whole receipt store against the signed tree heads (altered, dropped, reordered entries)."""
        from ..ledger import receipts
        with BackOffice(data_dir, create=False) as bo, open_ledger(data_dir, db, bo) as led:
            a = receipts.audit(bo, led)
        if a["problems"]:
            raise click.ClickException("receipt store: %d problem(s): %s" % (len(a["problems"]), "; ".join(a["problems"])))
        click.echo("receipt store OK: %d receipts, %d log entries, %d signed tree heads"
                   % (a["receipts"], a["size"], a["tree_heads"]))

    @receipt_group.command("list")
    @data_option
    @db_option
    @click.option("--account", default=None)
    @user_errors
    def receipt_list(data_dir, db, account):
        """The receipts issued (their content is encrypted to the riders)."""
        from ..ledger import receipts
        with open_ledger(data_dir, db) as led:
            for r in receipts.stored(led, account):
                click.echo("%s  entry %-6d %-16s %s" % (r["id"].hex(), r["idx"], r["account"], _iso(r["created"])))

    # ------------------------------------------------------------------ the rider's side
    @wallet_group.group("receipt")
    def wallet_receipt():
        """Receipts: request, store, list, show."""

    @wallet_receipt.command("request")
    @data_option
    @db_option
    @click.argument("wallet_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--trip", default=None, metavar="GATE:SEQ", help="one trip")
    @click.option("--from", "t_from", default=None, help="period start (Unix seconds or ISO date, UTC)")
    @click.option("--to", "t_to", default=None, help="period end, exclusive")
    @click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
                  help="only write the signed request here (to send it); default: ask the back office in --data")
    @user_errors
    def wallet_receipt_request(data_dir, db, wallet_path, trip, t_from, t_to, out):
        """Sign a receipt request with the wallet key; ask the back office; keep the receipt."""
        from ..ledger import receipts
        from ..wallet import Wallet
        w = Wallet.load(wallet_path)
        cti = w.credential_info()["cti"]
        if trip is not None:
            try:
                g, s = (int(x) for x in trip.split(":"))
            except ValueError:
                raise click.BadParameter("--trip must be GATE:SEQ, e.g. 101:7") from None
            req = receipts.make_request(w.key, cti, trip=(g, s))
        elif t_from is not None and t_to is not None:
            req = receipts.make_request(w.key, cti, period=(_when(t_from, "--from"), _when(t_to, "--to")))
        else:
            raise click.UsageError("give --trip GATE:SEQ or --from and --to")
        if out:
            out.write_bytes(req)
            click.echo("signed receipt request (%d bytes) -> %s" % (len(req), out))
            return
        with BackOffice(data_dir, create=False) as bo, open_ledger(data_dir, db, bo) as led:
            bundle = receipts.issue(bo, led, req)
        body = receipts.read_bundle(bundle, w.enc_key)
        w.receipts.append(bundle)
        w.save()
        click.echo("receipt %s: %d trip(s), total %s -> %s" % (body["id"].hex(), len(body["trips"]),
                                                               _money(body["total"], body["currency"]), wallet_path))

    @wallet_receipt.command("add")
    @click.argument("wallet_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.argument("bundle", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @user_errors
    def wallet_receipt_add(wallet_path, bundle):
        """Keep a receipt BUNDLE received from the back office (it must decrypt with this wallet)."""
        from ..ledger import receipts
        from ..wallet import Wallet
        w = Wallet.load(wallet_path)
        data = bundle.read_bytes()
        body = receipts.read_bundle(data, w.enc_key)
        if any(receipts.parse_bundle(b)["id"] == body["id"] for b in w.receipts):
            raise receipts.ReceiptError("receipt %s is already in the wallet" % body["id"].hex())
        w.receipts.append(data)
        w.save()
        click.echo("receipt %s added" % body["id"].hex())

    @wallet_receipt.command("list")
    @click.argument("wallet_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @user_errors
    def wallet_receipt_list(wallet_path):
        """The wallet's receipts (decrypted)."""
        from ..ledger import receipts
        from ..wallet import Wallet
        w = Wallet.load(wallet_path)
        if not w.receipts:
            click.echo("no receipts")
        for b in w.receipts:
            body = receipts.read_bundle(b, w.enc_key)
            click.echo("%s  %s  %d trip(s)  %s" % (body["id"].hex(), _iso(body["issued"]), len(body["trips"]),
                                                  _money(body["total"], body["currency"])))

    @wallet_receipt.command("show")
    @click.argument("wallet_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.argument("receipt_id")
    @click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
                  help="also write the bundle (encrypted) to this file")
    @click.option("--export", type=click.Path(dir_okay=False, path_type=Path), default=None,
                  help="also write a bundle with the signed receipt in the clear (for an employer, a tax office)")
    @user_errors
    def wallet_receipt_show(wallet_path, receipt_id, out, export):
        """Show one receipt (RECEIPT_ID: hex, or a unique prefix)."""
        from ..ledger import receipts
        from ..wallet import Wallet
        w = Wallet.load(wallet_path)
        hits = [b for b in w.receipts if receipts.parse_bundle(b)["id"].hex().startswith(receipt_id.lower())]
        if len(hits) != 1:
            raise receipts.ReceiptError("%s receipt matches %r in this wallet" % ("no" if not hits else "more than one",
                                                                                 receipt_id))
        for line in _describe(receipts.read_bundle(hits[0], w.enc_key)):
            click.echo(line)
        if out:
            out.write_bytes(hits[0])
        if export:
            export.write_bytes(receipts.export_plain(hits[0], w.enc_key))
