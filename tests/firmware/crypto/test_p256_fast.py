"""The comb (fixed-point table) fast path: generated tables are current and correct, the fast
path agrees with the generic path on the real MicroPython unix port (Wycheproof keys and random
keys), and a table that is not exactly the key's own is refused (docs/performance.md)."""
import ast
import hashlib
import importlib.util
import random

from cryptography.hazmat.primitives.asymmetric import ec
import ecdsa as pyecdsa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import own_oracle
from mpbridge import FIRMWARE
from offgate_host.device import tables
from vectors import _pub65, _sign, wycheproof_cases

N = tables.N
ATTACH = "test_p256_comb.probe_attach"
VERIFY = "test_p256_comb.probe_verify"


def _load_fw(name):
    spec = importlib.util.spec_from_file_location(name, FIRMWARE / "offgate" / "crypto" / (name + ".py"))
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m



mp = own_oracle()

def test_gtable_module_is_current():
    assert (FIRMWARE / "offgate" / "crypto" / "_gen_p256_gtable.py").read_text() == tables.gtable_module_source()
    assert b"".join(_load_fw("_gen_p256_gtable").TABLE) == tables.g_table()


def test_g_pin_in_keytables_matches():
    src = (FIRMWARE / "offgate" / "crypto" / "keytables.py").read_text()
    line = [ln for ln in src.splitlines() if ln.startswith("_G_SHA256 = ")]
    assert len(line) == 1
    assert ast.literal_eval(line[0].partition("=")[2].strip()) == hashlib.sha256(tables.g_table()).digest()


def test_comb_rows_against_python_ecdsa():
    rnd = random.Random(1)
    G = pyecdsa.NIST256p.generator
    for d in (1, 2, N - 1, rnd.randrange(1, N)):
        Q = d * G
        rows = tables.comb_points(Q.x(), Q.y())
        assert len(rows) == 255
        for idx in (1, 2, 3, 128, 255, rnd.randrange(1, 256)):
            k = sum(1 << (32 * b) for b in range(8) if idx >> b & 1)
            R = (k * d % N) * G
            assert rows[idx - 1] == (R.x(), R.y()), (d, idx)


def test_issuer_tables_file_layout():
    Q = 5 * pyecdsa.NIST256p.generator
    pub = b"\x04" + Q.x().to_bytes(32, "big") + Q.y().to_bytes(32, "big")
    data = tables.issuer_tables_bytes([pub, pub, tables.G_PUB])
    assert data[:8] == b"OGKT\x01\x08\x20\x02"
    assert len(data) == 8 + 2 * tables.RECORD_BYTES
    body = data[8 + 97:8 + tables.RECORD_BYTES]
    assert data[8:8 + 65] == pub and data[8 + 65:8 + 97] == tables.table_digest(pub, body)
    assert body == tables.comb_bytes(Q.x(), Q.y())


def test_wycheproof_fast_path_matches_generic(mp, tmp_path):
    cases = wycheproof_cases()
    pubs = []
    for c in cases:
        if c[1] not in pubs:
            pubs.append(c[1])
    path = tmp_path / "wp_tables.bin"
    path.write_bytes(tables.issuer_tables_bytes(pubs))
    current = None
    ran = 0
    for tc, pub, msg, sig, result, comment in cases:
        if pub != current:  # one key at a time: a 128k heap
            attached, refused = mp.call(ATTACH, str(path), pub, 1)
            assert refused == 0 and attached >= 1  # a G record in the file attaches as G's table too
            current = pub
        ran += 1
        generic, fast, attached = mp.call(VERIFY, pub, msg, sig)
        assert attached is True
        assert fast == generic == (result == "valid"), (tc, comment)
    assert ran == 262
    mp.call(ATTACH, str(path), b"", 1)  # close it


_RND = random.Random(7)
KEYS = [ec.derive_private_key(d, ec.SECP256R1()) for d in
        [1, 2, 3, N - 1, N - 2] + [_RND.randrange(1, N) for _ in range(5)]]


@pytest.fixture(scope="module")
def random_tables(tmp_path_factory):
    path = tmp_path_factory.mktemp("tables") / "issuer_tables.bin"
    pubs = [_pub65(k) for k in KEYS]
    path.write_bytes(tables.issuer_tables_bytes(pubs))
    return path, pubs


@settings(deadline=None, max_examples=50, suppress_health_check=[HealthCheck.too_slow,
                                                                HealthCheck.function_scoped_fixture])
@given(i=st.integers(0, len(KEYS) - 1), msg=st.binary(max_size=200), tamper=st.integers(-1, 64 * 8 - 1))
def test_random_keys_fast_path_matches_generic(mp, random_tables, i, msg, tamper):
    path, pubs = random_tables
    if mp.call("test_p256_comb.probe_count") != len(pubs):
        assert mp.call(ATTACH, str(path), b"".join(pubs), 1) == [len(pubs), 0]  # (d = 1 is G)
    sig = bytearray(_sign(KEYS[i], msg))
    if tamper >= 0:
        sig[tamper // 8] ^= 1 << (tamper % 8)
    generic, fast, attached = mp.call(VERIFY, pubs[i], msg, bytes(sig))
    assert attached is True
    assert fast == generic == (tamper < 0)


def _comb_digits(k):
    return [sum(((k >> (32 * b + j)) & 1) << b for b in range(8)) for j in range(32)]


def test_crafted_table_is_refused(mp, tmp_path):
    """A table whose row 1 is the issuer key Q but whose other rows are the attacker key A's:
    digest recomputed, so only full validation can tell. A signature by A whose u2 never picks
    row 1 would verify through such a table; attach() must refuse it (and, as a check that the
    attack is real, a digest-only attach would have accepted it and let the forgery through)."""
    issuer = KEYS[6]
    attacker = KEYS[7]
    q = _pub65(issuer)
    a = _pub65(attacker)
    rows = bytearray(tables.key_table(a))
    rows[0:64] = q[1:]
    path = tmp_path / "crafted.bin"
    path.write_bytes(b"OGKT\x01\x08\x20\x01" + q + tables.table_digest(q, rows) + rows)
    msg = b"forged credential"
    for _ in range(50):  # ~88% of signatures never use row 1 of the key table
        sig = _sign(attacker, msg)
        r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
        if 1 not in _comb_digits(r * pow(s, -1, N) % N):
            break
    else:
        pytest.fail("no suitable signature")
    assert mp.call(ATTACH, str(path), q, 1) == [0, 1]  # refused: verification uses the generic path
    assert mp.call(VERIFY, q, msg, sig) == [False, False, False]
    assert mp.call(ATTACH, str(path), q, 0) == [1, 0]  # digest + row 1 only: fooled
    assert mp.call(VERIFY, q, msg, sig) == [False, True, True]
    mp.call(ATTACH, str(path), b"", 1)  # close it
