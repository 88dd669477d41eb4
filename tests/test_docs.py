"""The documents tell the truth about the code: reason table, README commands."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _firmware_reasons():
    import sys
    if str(ROOT / "firmware") not in sys.path:
        sys.path.insert(0, str(ROOT / "firmware"))
    import offgate  # noqa: F401  (installs the `micropython` stand-in reasons.py imports under CPython)
    ns = {}
    src = (ROOT / "firmware" / "offgate" / "reasons.py").read_text()
    exec(compile(src, "reasons.py", "exec"), ns)
    return ns["NAMES"]


def test_reason_table_matches_firmware():
    doc = (ROOT / "docs" / "protocol.md").read_text()
    rows = dict((int(c), n) for c, n in re.findall(r"^\| (\d+) \| ([A-Z0-9_]+) \| (?:OPEN|DENY) \|", doc, re.M))
    assert rows == _firmware_reasons()


def test_reason_codes_distinct():
    names = _firmware_reasons()
    assert len(set(names.values())) == len(names)


def test_readme_has_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
