"""Board configs on the host: the firmware's own checker (offgate.boardcfg) run under CPython.

The same module validates gate.json on the gate at boot, so `offgate board validate FILE` and the
gate agree on what is wrong, by name.
"""
import json
from pathlib import Path

from .paths import firmware_module, repo_root


def boards_dir():
    return repo_root() / "board_configs"


def board_names():
    return sorted(p.stem for p in boards_dir().glob("*.json"))


def board_path(name_or_path):
    p = Path(name_or_path)
    if p.suffix == ".json" or p.exists():
        return p
    cand = boards_dir() / (str(name_or_path) + ".json")
    if not cand.exists():
        raise ValueError("unknown board %r (known: %s)" % (str(name_or_path), ", ".join(board_names())))
    return cand


def load_raw(name_or_path):
    p = board_path(name_or_path)
    try:
        return json.loads(p.read_text())
    except FileNotFoundError:
        raise ValueError("board config %s not found" % p) from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as e:
        raise ValueError("board config %s cannot be read: %s" % (p, getattr(e, "strerror", None) or e)) from None
    except ValueError as e:
        raise ValueError("board config %s is not valid JSON: %s" % (p, e)) from None


def problems(raw):
    """Every problem, one string per setting ([] when valid)."""
    boardcfg = firmware_module("offgate.boardcfg")
    try:
        boardcfg.validate(raw)
    except boardcfg.ConfigError as e:
        msg = str(e)
        for prefix in ("bad board config: ", "bad gate config: "):
            msg = msg.replace(prefix, "")
        return [m.strip() for m in msg.split(";") if m.strip()]
    return []


def validate(raw):
    """The complete config, or ValueError listing every problem."""
    bad = problems(raw)
    if bad:
        raise ValueError("bad board config: " + "; ".join(bad))
    return firmware_module("offgate.boardcfg").validate(raw)


def load(name_or_path):
    return validate(load_raw(name_or_path))
