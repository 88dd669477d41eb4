"""Out of memory is never a session's outcome (issue 12, docs/protocol.md "Heap"): a MemoryError
injected at the Nth call of each allocation point of the gate's side of a deny list push (request
decryption and decoding, the delta's check and merge, the root signature, the install, the
response's encoding and sealing) is answered {"retry": true}; the host repeats the command and the
push ends with the gate holding the new list. A fault that does not go away leaves the old list, no
temporary file, and a session that still works. The other admin commands (trust, tables, time,
status) the same way, and a request frame the deframer has no buffer for. The firmware runs here
under CPython (the gate's code, faults by a fake)."""
import os
import random

import pytest
from synchelp import FakeGate, LoopTransport  # first: puts the firmware on the path

import offgate.checksum
import offgate.codec.cbor
import offgate.codec.cose
import offgate.crypto.aesccm
import offgate.statedir
from offgate.sync import session
from offgate_host.backoffice.backoffice import BackOffice
from offgate_host.sync.client import SyncClient, signed_trust
from offgate_host.sync.frames import GateRefused

# (module, function): every place of the deny path where the gate allocates a buffer that grows
# with the request or the list
POINTS = [(offgate.crypto.aesccm, "decrypt"), (offgate.codec.cbor, "loads"), (offgate.codec.cbor, "dumps"),
          (offgate.crypto.aesccm, "encrypt"), (offgate.codec.cose, "sign1_verify"), (offgate.checksum, "crc32"),
          (offgate.statedir, "replace")]


class Fault:
    """Wraps module.name: counts calls; raises MemoryError at call `at` (and every later one if
    `stay`). at=None: only counts."""

    def __init__(self, monkeypatch, module, name):
        self.real = getattr(module, name)
        self.calls = 0
        self.at = None
        self.stay = False
        self.raised = 0
        monkeypatch.setattr(module, name, self)

    def arm(self, at, stay=False):
        self.calls, self.at, self.stay, self.raised = 0, at, stay, 0

    def __call__(self, *a, **k):
        self.calls += 1
        if self.at is not None and (self.calls == self.at or (self.stay and self.calls > self.at)):
            self.raised += 1
            raise MemoryError("injected")
        return self.real(*a, **k)


def _ids(rnd, n):
    return [rnd.getrandbits(64).to_bytes(8, "big") for _ in range(n)]


@pytest.fixture
def gate(tmp_path, monkeypatch):
    monkeypatch.setattr(SyncClient, "RETRY_S", 0)
    bo = BackOffice(tmp_path / "bo")
    bo.init_issuer("t")
    rnd = random.Random(35)
    bo.deny_many(_ids(rnd, 1500), "bulk")
    g = FakeGate(tmp_path / "g", 9, bo)
    old, base = bo.deny_bytes(), bo.deny_serial()
    bo.deny_many(_ids(rnd, 120), "more")
    bo.undeny_many(bo.deny_list()[::50], "back")
    new = bo.deny_bytes()
    return bo, g, tmp_path / "g", old, new, bo.deny_delta(base)


def _reset(g, d, old):
    (d / "deny.bin").write_bytes(old)
    g.verifier.deny.open(str(d / "deny.bin"))


def _no_tmp(d):
    return [p for p in os.listdir(d) if p.endswith(".tmp")]


def _sample(n):
    """Which calls to fault: all of few, else the first three, the last two and six between."""
    if n <= 12:
        return list(range(1, n + 1))
    return sorted({1, 2, 3, n - 1, n} | {1 + i * (n - 1) // 7 for i in range(1, 7)})


@pytest.mark.parametrize("what", ["delta", "full"])
def test_a_memory_error_anywhere_in_a_deny_push_is_retried_and_the_list_is_old_or_new(gate, monkeypatch, what):
    bo, g, d, old, new, delta = gate
    data = delta if what == "delta" else new
    faults = [Fault(monkeypatch, m, n) for m, n in POINTS]
    srv = session.SyncServer(g.port())
    tried = 0
    with SyncClient(LoopTransport(srv), *bo.operator_identity()) as c:
        c.handshake()
        for f in faults:
            _reset(g, d, old)
            f.arm(None)
            assert c.push_deny(data)["serial"] == bo.deny_serial()
            n = f.calls
            if f.real.__name__ == "crc32" or f.real.__name__ == "sign1_verify":
                assert n > 0, f.real  # the check, the merge and the signature go through these
            for at in _sample(n):
                _reset(g, d, old)
                f.arm(at)
                r = c.push_deny(data)  # the host repeats what the gate answered "retry"
                assert f.raised == 1 and r["serial"] == bo.deny_serial(), (f.real, at)
                assert (d / "deny.bin").read_bytes() == new and not _no_tmp(d), (f.real, at)
                assert g.verifier.deny.serial == bo.deny_serial()
                tried += 1
            # a fault that stays: the host gives up after its retries; the old list, no temporary
            # file once the upload is dropped, and the session goes on
            if n and f.real.__name__ not in ("dumps", "encrypt"):  # without these no answer at all
                _reset(g, d, old)
                f.arm(max(1, n // 2), stay=True)
                with pytest.raises(GateRefused, match="low on heap"):
                    c.push_deny(data)
                assert (d / "deny.bin").read_bytes() == old and g.verifier.deny.serial == bo.deny_serial() - 1
                f.arm(None)
                c.request("status")
                assert not any(p.startswith("deny.bin.new") for p in os.listdir(d)), (f.real, os.listdir(d))
            f.arm(None)
        _reset(g, d, old)
        assert c.push_deny(data)["serial"] == bo.deny_serial()  # the upload a lasting fault kept is gone
    assert not srv.refused and tried > 20
    assert not _no_tmp(d)


def test_other_admin_commands_answer_retry_and_the_host_repeats_them(gate, monkeypatch):
    bo, g, d, old, new, delta = gate
    signed, serial = signed_trust(bo)
    faults = [Fault(monkeypatch, m, n) for m, n in POINTS]
    srv = session.SyncServer(g.port())
    with SyncClient(LoopTransport(srv), *bo.operator_identity()) as c:
        c.handshake()
        for f in faults:
            for at in (1, 2, 3):
                f.arm(at)
                assert c.request("status")["deny"]["count"] == g.verifier.deny.count
                f.arm(at)
                try:
                    assert c.set_time(bo.root_sign)["drift"] is not None
                except GateRefused as e:
                    raise AssertionError((f.real, at, e))
                f.arm(None)
        tables = (d / "issuer_tables.bin").read_bytes() if (d / "issuer_tables.bin").exists() else None
        for f in faults:
            for at in (1, 2, 3, 4):
                f.arm(at)
                try:
                    c.push_trust(signed)
                except GateRefused as e:  # the gate holds this serial already: refused, not a fault
                    assert "not newer" in str(e)
                if tables:
                    f.arm(at)
                    assert c.push_tables(tables)["tables"] >= 0
                f.arm(None)
    assert not srv.refused and not _no_tmp(d)


class _BigFails:
    """bytearray for offgate.sync.frames whose `at`-th allocation of 1000 bytes or more fails."""

    def __init__(self, at):
        self.at, self.big = at, 0

    def __call__(self, *a):
        if a and isinstance(a[0], int) and a[0] >= 1000:
            self.big += 1
            if self.big == self.at:
                raise MemoryError("injected")
        return bytearray(*a)


def test_a_frame_the_deframer_has_no_buffer_for_is_reported_and_the_stream_goes_on(monkeypatch):
    from offgate.sync import frames
    big = frames.encode(frames.REQUEST, bytes(range(256)) * 5)
    small = frames.encode(frames.REQUEST, b"x" * 40)
    for step in (256, 7, len(big) + len(small)):  # the serial link's reads, odd ones, one read
        monkeypatch.setattr(frames, "bytearray", _BigFails(1), raising=False)
        d = frames.Deframer()
        stream = big + small + big
        got = []
        for i in range(0, len(stream), step):
            got += d.feed(stream[i:i + step])
        assert [(t, p if p is None else bytes(p)) for t, p in got] == \
            [(frames.REQUEST, None), (frames.REQUEST, b"x" * 40), (frames.REQUEST, bytes(range(256)) * 5)], step
        assert d.dropped == 1 and d.pending() == 0


def test_a_deny_push_goes_through_when_request_frames_find_no_buffer(gate, monkeypatch):
    from offgate.sync import frames
    bo, g, d, old, new, delta = gate
    srv = session.SyncServer(g.port())
    with SyncClient(LoopTransport(srv), *bo.operator_identity()) as c:
        c.handshake()
        for at in (1, 2, 5):
            _reset(g, d, old)
            f = _BigFails(at)
            monkeypatch.setattr(frames, "bytearray", f, raising=False)
            assert c.push_deny(new)["serial"] == bo.deny_serial()
            assert f.big >= at  # the frame was dropped (the host then sends smaller chunks)
            assert (d / "deny.bin").read_bytes() == new and not _no_tmp(d)
            monkeypatch.undo()
            monkeypatch.setattr(SyncClient, "RETRY_S", 0)
    assert not srv.refused
