"""`offgate inspect`: one QR text judged as a gate would."""
import sys
from pathlib import Path

import click

from ..errors import UsageError
from .base import ID, UNIX_T, _bo, _console, _ts, data_option, main, user_errors


def _issuer_keys_for_inspect(data_dir, trust_file):
    from ..wire import formats
    if trust_file is not None:
        try:
            return [k["pub"] for k in formats.parse_trust_store(Path(trust_file).read_bytes())], str(trust_file)
        except (ValueError, EOFError, LookupError, TypeError) as e:  # cbor2's decode errors included
            raise UsageError("%s is not a trust store (trust.cbor): %s" % (trust_file, e or type(e).__name__)) from None
    if data_dir is not None and (Path(data_dir) / "offgate.db").exists():
        return [k["pub"] for k in _bo(data_dir).issuer_keys()], str(Path(data_dir) / "offgate.db")
    return None, None


@main.command("inspect")
@data_option
@click.argument("qrtext")
@click.option("--trust", "trust_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="verify the issuer signature against this trust.cbor (default: the data dir's keys, if any)")
@click.option("--now", type=UNIX_T, default=None, help="gate time for the verdict, Unix seconds (default: now)")
@click.option("--gate-id", type=ID, default=None, help="judge as this gate (default: gate restrictions not checked)")
@click.option("--zone", type=ID, default=None, help="judge in this zone (default: zones not checked)")
@user_errors
def inspect_cmd(data_dir, qrtext, trust_file, now, gate_id, zone):
    """Decode a QR text (or '-' to read it from stdin) with the gate's rules (docs/protocol.md §5),
    say what the gate would decide, and show what is inside."""
    import time

    from rich.table import Table

    from ..wire import formats, gateview, qr
    issuer_pubs, source = _issuer_keys_for_inspect(data_dir, trust_file)  # a bad trust file fails first
    if qrtext == "-":
        qrtext = sys.stdin.readline()
    qrtext = qrtext.strip()
    now = int(time.time()) if now is None else now
    if trust_file is not None:
        try:
            gtrust = gateview.trust_keys(Path(trust_file).read_bytes())
        except ValueError as e:
            raise click.ClickException("trust store %s: the gate would refuse it: %s" % (trust_file, e)) from None
    elif data_dir is not None and (Path(data_dir) / "offgate.db").exists():
        from ..wire import keys as keys_mod
        gtrust = [(k["kid"], keys_mod.pub_from_bytes(k["pub"]), k["nbf"], k["exp"]) for k in _bo(data_dir).issuer_keys()]
    else:
        gtrust = []
    verdict, vinfo = gateview.decide(qrtext, gtrust, now, gate_id, zone)
    if verdict in gateview.STRUCTURAL:
        # the gate stops here: show nothing it did not judge (no counter, no credential)
        raise click.ClickException("the gate would decide %s%s" % (verdict, ": " + vinfo["why"] if "why" in vinfo else ""))
    code = formats.code_from_qr_text(qrtext)
    auth = formats.parse_auth_code(code, verify=True)
    c = auth["credential"]
    if issuer_pubs is None:
        issuer_status = "not checked (no trust store or back-office data)"
    else:
        try:
            formats.parse_credential(auth["cred"], issuer_pubs)
            issuer_status = "valid (%s)" % source
        except ValueError as e:
            issuer_status = "INVALID: %s" % e

    t = Table(title="authorization code", show_header=False)
    t.add_column("field", style="bold")
    t.add_column("value", overflow="fold")
    t.add_row("gate would decide", "%s (at %s%s%s)" % (verdict, _ts(now), ", gate %d" % gate_id if gate_id is not None
                                                         else "", ", zone %d" % zone if zone is not None else ""))
    t.add_row("size", "%d bytes, QR text %d chars, QR version %d-M" % (len(code), len(qrtext), qr.qr_version(qrtext)))
    t.add_row("rider signature", "valid")
    t.add_row("iat", _ts(auth["iat"]))
    t.add_row("ctr", str(auth["ctr"]))
    t.add_row("credential", "%d bytes" % len(auth["cred"]))
    t.add_row("issuer signature", issuer_status)
    t.add_row("kid", c["kid"].hex() if c["kid"] else "-")
    t.add_row("iss", c.get("iss", "- (the kid names the issuer)"))
    t.add_row("sub (account)", c.get("sub", "- (the back office finds it by cti)"))
    t.add_row("cti", c["cti"].hex())
    t.add_row("iat (issued)", _ts(c["iat"]) if "iat" in c else "-")
    t.add_row("nbf", _ts(c["nbf"]) if c["nbf"] is not None else "- (from issuance)")
    t.add_row("exp", _ts(c["exp"]))
    t.add_row("zones", ", ".join(map(str, c["zones"])))
    t.add_row("gates", ", ".join(map(str, c["gates"])) if "gates" in c else "any")
    t.add_row("product", str(c["product"]))
    t.add_row("cap", str(c["cap"]) if "cap" in c else "-")
    t.add_row("rider key", "%s (%s in credential)" % (c["rider_pub65"].hex(),
                                                       "compressed" if c["cnf_compressed"] else "uncompressed"))
    if c.get("unknown_claims"):
        t.add_row("unknown claims", repr(c["unknown_claims"]))
    _console().print(t)
    if issuer_status.startswith("INVALID"):
        raise click.ClickException("issuer signature invalid")
