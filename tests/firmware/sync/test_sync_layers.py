"""The sync subsystem's shape (issue 9, docs/architecture.md "Sync"), read from the source with
`ast`: its modules import only those below them (counting imports inside functions), the ports
reach it only through offgate.sync.serve and offgate.gateport, nothing in it reaches into the
verifier or guesses attribute names, and no sync module sets another object's attributes or uses
another object's _private ones."""
import ast
from pathlib import Path

FW = Path(__file__).resolve().parents[3] / "firmware"
SYNC = FW / "offgate" / "sync"

# each sync module may import only the sync modules listed before it
ORDER = ["proto", "frames", "rowenc", "batchrows", "batch", "handshake", "ops", "status", "admin", "session", "serve"]
# module-level helpers of other modules that a sync module may use (CBOR heads, written in place)
PRIVATE_OK = {("cbor", "_head")}


def _imports(path):
    """Every module a file imports (absolute names), at any depth (inside functions too)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(node.module + "." + a.name for a in node.names)
    return out


def _sync_imports(path):
    return {m.split(".")[2] for m in _imports(path) if m.startswith("offgate.sync.") and len(m.split(".")) == 3}


def test_every_sync_module_has_a_layer():
    on_disk = {p.stem for p in SYNC.glob("*.py")} - {"__init__"}
    assert on_disk == set(ORDER)
    assert (SYNC / "__init__.py").read_text().strip() == ""


def test_sync_modules_import_only_downwards():
    for i, name in enumerate(ORDER):
        got = _sync_imports(SYNC / (name + ".py")) - {name}
        assert got <= set(ORDER[:i]), (name, sorted(got - set(ORDER[:i])))


def test_the_gate_side_does_not_import_sync():
    """gateport (the port sync is given) and the gate's own modules never import sync: data flows
    log -> sync, not back."""
    for p in (FW / "offgate").glob("*.py"):
        assert not any(m.startswith("offgate.sync") for m in _imports(p)), p.name


def test_ports_call_the_one_serve_loop():
    """Both adapters run offgate.sync.serve; neither builds sessions itself; the ESP32 app and its
    sync link do not import each other both ways."""
    for p in (FW / "sim" / "streams.py", FW / "esp32gate" / "synclink.py"):
        imps = _imports(p)
        assert "offgate.sync.serve" in imps and "offgate.gateport" in imps, p
        assert not {m for m in imps if m.startswith("offgate.sync.session")}, p
        assert ".session()" not in p.read_text(), p
    assert not any(m.startswith("esp32gate.app") for m in _imports(FW / "esp32gate" / "synclink.py"))


def test_sync_reaches_the_gate_only_through_its_port():
    for p in SYNC.glob("*.py"):
        src = p.read_text()
        assert "verifier" not in src, p.name
        assert ".gate." not in src and ".gate," not in src, p.name
        tree = ast.parse(src)
        for node in ast.walk(tree):
            # no guessing of attribute names (batch.build also takes a Clock object for the bench:
            # its getattr is a type switch); the command table is looked up by name
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr" \
                    and p.name != "batch.py":
                assert isinstance(node.args[0], ast.Name) and node.args[0].id == "admin", (p.name, node.lineno)


def test_no_sync_module_sets_or_peeks_into_other_objects():
    """Attributes are set on `self` only (a command's state object has methods for that), and
    _private attributes are used on `self` only."""
    for p in SYNC.glob("*.py"):
        tree = ast.parse(p.read_text())
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
                targets = [node.target]
            for t in targets:
                for sub in ast.walk(t):
                    if isinstance(sub, ast.Attribute) and isinstance(sub.ctx, ast.Store):
                        assert isinstance(sub.value, ast.Name) and sub.value.id == "self", (p.name, sub.lineno)
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                base = node.value.id if isinstance(node.value, ast.Name) else None
                assert base == "self" or (base, node.attr) in PRIVATE_OK, (p.name, node.lineno, node.attr)
