"""`offgate demo`: the whole offline chain on the simulated gate running the real firmware.

Back office issues credentials → rider's wallet makes QR codes → the gate (MicroPython, ESP32-sized
heap) decides. One valid code opens; each kind of bad code is refused with its own reason. The
demo checks every outcome and exits non-zero if any differs from what is expected.
"""
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .wire import formats, qr
from .backoffice.backoffice import BackOffice, IssueRefused
from .device.simgate import SimGate, heap_for, write_gate_dir
from .wallet import Wallet

GATE_ID = 101
ZONE = 1


def _tamper(text):
    """Flip one bit in the middle of the code's bytes (a forged or corrupted code that still decodes)."""
    code = bytearray(formats.code_from_qr_text(text))
    code[len(code) // 2] ^= 0x01
    return formats.qr_text(bytes(code))


def build_scenario(work: Path, now: int, out=print):
    """Set up back office, wallets and gate files; return (gate config path, [(label, line, expected)], valid text)."""
    bo = BackOffice(work / "backoffice")
    bo.init_issuer("offgate-demo", valid_from=now - 86400)
    bo.create_account("acct-0001", balance=5000)  # four credentials, each holding the default cap (1000)
    bo.create_account("acct-0002", balance=100)

    def wallet(name, account="acct-0001", **kw):
        w = Wallet.create(work / ("%s.json" % name))
        w.set_credential(bo.issue_credential(account, w.pub65, now=now, **kw))
        return w

    # The patent's rule: no credential unless what the account can cover (balance + credit - holds)
    # reaches the minimum.
    try:
        bo.issue_credential("acct-0002", Wallet.create(work / "poor.json").pub65, zones=[ZONE], now=now)
        out("  issuing to acct-0002 was NOT refused (unexpected)")
    except IssueRefused as e:
        out("  back office refused acct-0002: %s" % e)

    rider = wallet("rider", zones=[ZONE], product=1)
    expired = wallet("expired", zones=[ZONE], valid_from=now - 3 * 86400, valid_seconds=86400)
    elsewhere = wallet("elsewhere", zones=[7])
    revoked = wallet("revoked", zones=[ZONE])
    bo.deny(formats.parse_credential(revoked.credential)["cti"])

    rogue_bo = BackOffice(work / "rogue")  # an issuer the gate does not trust
    rogue_bo.init_issuer("rogue", valid_from=now - 86400)
    rogue_bo.create_account("acct-x", balance=5000)
    rogue = Wallet.create(work / "rogue.json")
    rogue.set_credential(rogue_bo.issue_credential("acct-x", rogue.pub65, zones=[ZONE], now=now))

    cfg = write_gate_dir(work / "gate", gate_id=GATE_ID, zone=ZONE, trust=bo.trust_bytes(), deny=bo.deny_bytes(),
                         max_age_s=60, skew_s=30)
    valid = rider.qr_text(rider.next_code(now=now))
    steps = [
        ("valid code", valid, "OPEN OK"),
        ("same code again (replay)", valid, "DENY REPLAY"),
        ("expired credential", expired.qr_text(expired.next_code(now=now)), "DENY CRED_EXPIRED"),
        ("code made 10 min ago (outside skew window)", rider.qr_text(rider.next_code(now=now - 600)), "DENY CODE_STALE"),
        ("code dated 5 min ahead", rider.qr_text(rider.next_code(now=now + 300)), "DENY CODE_FUTURE"),
        ("credential for zone 7 only", elsewhere.qr_text(elsewhere.next_code(now=now)), "DENY WRONG_ZONE"),
        ("one bit flipped in a valid code", _tamper(rider.qr_text(rider.next_code(now=now))), None),
        ("revoked credential (deny list)", revoked.qr_text(revoked.next_code(now=now)), "DENY REVOKED"),
        ("issuer key not in the trust store", rogue.qr_text(rogue.next_code(now=now)), "DENY UNKNOWN_ISSUER"),
        ("garbage scan", "HELLO WORLD", "DENY BAD_PREFIX"),
        ("binary noise", b"\x00\xff\x13garbage\x80", "DENY NOT_TEXT"),
        ("the rider's next code", rider.qr_text(rider.next_code(now=now)), "OPEN OK"),
    ]
    return cfg, steps, valid


def run(heap=None, keep=None):
    """The demo in `keep` (kept), or in a temporary directory removed afterwards: it holds
    private keys, which a demo should not leave behind in /tmp."""
    if keep:
        return _run(heap, keep)
    import shutil
    try:
        return _run(heap, None)
    finally:
        for d in _made:
            shutil.rmtree(d, ignore_errors=True)


_made = []


def _run(heap=None, keep=None):
    console = Console()
    now = int(time.time())
    work = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="offgate-demo-"))
    if not keep:
        _made.append(work)
    heap = heap or heap_for()
    console.rule("[bold]offgate demo: offline gate, real firmware on MicroPython (-X heapsize=%s)" % heap)
    console.print("Back office and rider wallets in %s%s" % (work, "" if keep else " (removed at the end; --keep DIR keeps them)"))
    cfg, steps, valid = build_scenario(work, now, out=console.print)

    table = Table(title="Gate %d, zone %d" % (GATE_ID, ZONE))
    for col in ("#", "scan", "decision", "reason", "ms"):
        table.add_column(col)
    failures = []
    with SimGate(cfg, heap=heap) as gate:
        console.print("Gate booted: %d trusted key(s), %d revoked id(s)" %
                      (gate.boot["trust_keys"], gate.boot["deny_count"]))
        for i, (label, line, expected) in enumerate(steps, 1):
            r = gate.scan(line)
            got = "%s %s" % (r["decision"], r["reason"])
            if expected is None:  # tampering: any signature or structure refusal will do, never OPEN
                ok = r["decision"] == "DENY"
            else:
                ok = got == expected
            if not ok:
                failures.append("%s: expected %s, got %s" % (label, expected or "a DENY", got))
            style = "green" if r["decision"] == "OPEN" else "red"
            table.add_row(str(i), label, "[%s]%s[/]" % (style, r["decision"]), r["reason"], "%.1f" % r["ms"])
    console.print(table)

    # Counters survive a reboot: the same valid code is still a replay after a restart.
    with SimGate(cfg, heap=heap) as gate:
        r = gate.scan(valid)
        console.print("After a reboot, the first code again: %s %s" % (r["decision"], r["reason"]))
        if r["reason"] != "REPLAY":
            failures.append("replay after reboot: got %s" % r["reason"])

    console.print("\nQR of the valid code (%d characters, QR version %d at level M):" % (len(valid), qr.qr_version(valid)))
    console.print(qr.render_terminal(valid), highlight=False)
    if failures:
        console.print("[bold red]demo FAILED:[/]")
        for f in failures:
            console.print("  " + f)
        return 1
    console.print("[bold green]demo passed: every decision as expected.[/]")
    return 0
