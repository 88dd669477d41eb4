"""offgate command line: back office, wallet simulator and QR inspection.

`main` (the `offgate` entry point, pyproject.toml) is the click group in cli/base.py; each module
here adds one command group to it when imported:

  issuer.py    init, issuer ..., trust export          accounts.py  account, config, credential, wallet
  db.py        db current|upgrade
  deny.py      deny ...                                inspect.py   inspect
  gate.py      demo, gate ...                          board.py     board ..., deploy, provision
  ledger.py    sync, settle, report, ledger ...        fares.py     fares ...
  web.py       account invite, staff ..., serve        keys.py      keys ..., backup, restore, operator ...
  gates.py     gates ...                               stats.py     stats ..., station ...
  receipts.py  receipt ..., wallet receipt ...

The shared option types, helpers and the error policy (OffgateGroup) are in base.py.
"""
from . import accounts, board, db, deny, fares, gate, gates, inspect, issuer, keys, ledger, receipts, stats, web  # noqa: F401
from .base import data_option, db_option, main, _open_ledger, user_errors

stats.register(main, data_option, db_option, user_errors, _open_ledger)
receipts.register(main, accounts.wallet, data_option, db_option, user_errors, _open_ledger)

__all__ = ["main"]
