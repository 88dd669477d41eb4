"""The ledger tests' shared world: a back office and a ledger on SQLite and, when
OFFGATE_TEST_PG_URL is set (CI sets it), on PostgreSQL in a schema of its own (the `world`
fixture); operation-log records with a valid chain (make_records); a credential with its hold
(issue)."""
import os
import time
import uuid

import pytest

from offgate_host.wire import keys
from offgate_host.backoffice.backoffice import BackOffice
from offgate_host.ledger.ledger import ZERO32, Ledger, chain_next

NOW = int(time.time())
PG_URL = os.environ.get("OFFGATE_TEST_PG_URL")


def _pg_url_with_schema():
    import psycopg
    schema = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(PG_URL, autocommit=True) as c:
        c.execute("CREATE SCHEMA %s" % schema)
    sep = "&" if "?" in PG_URL else "?"
    return PG_URL + sep + "options=-csearch_path%3D" + schema, schema


def backoffice_on(kind, path):
    """A new back office in `path` on its one database: its own SQLite file, or a fresh schema
    of the test PostgreSQL (skipped without OFFGATE_TEST_PG_URL)."""
    if kind == "sqlite":
        return BackOffice(path)
    if not PG_URL:
        pytest.skip("OFFGATE_TEST_PG_URL not set (CI sets it; see .ci/run)")
    return BackOffice(path, db=_pg_url_with_schema()[0])


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request, tmp_path):
    bo = backoffice_on(request.param, tmp_path / "bo")
    bo.init_issuer("t", valid_from=NOW - 86400)
    led = Ledger.for_backoffice(bo)
    assert led.db.kind == ("pg" if request.param == "postgresql" else "sqlite")
    yield bo, led
    led.close()
    bo.close()


def make_records(n, start_seq=1, prev=ZERO32, cti=b"\x01" * 8, ctr0=1, decision="OPEN", t0=NOW):
    out = []
    for i in range(n):
        r = {"seq": start_seq + i, "t": t0 + i, "cti": cti, "ctr": ctr0 + i, "decision": decision,
             "reason": 0 if decision == "OPEN" else 14, "missed": 0}
        r["chain"] = chain_next(prev, r)
        prev = r["chain"]
        out.append(r)
    return out


def issue(bo, account="a", balance=5000, cap=None, valid=3600, now=NOW):
    if account not in [a["id"] for a in bo.list_accounts()]:
        bo.create_account(account, balance=balance)
    from offgate_host.wire.formats import parse_credential
    cred = bo.issue_credential(account, keys.pub_bytes(keys.generate()), zones=[1], cap=cap,
                               valid_seconds=valid, now=now)
    return parse_credential(cred)["cti"]
