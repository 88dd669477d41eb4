"""The architecture, checked from the source (docs/architecture.md "Layer rules").

Data flows one way: scan -> decode -> verify -> policy -> log -> relay on the gate, log -> sync ->
ledger -> report on the host. Each tree is cut into units (a subpackage, or a few ground-floor
modules), and every unit may import only the units listed for it below. The import graph is read
from the source with `ast`: imports inside functions count, so do `importlib.import_module("...")`
and `__import__("...")` with a literal name; a module-level `__getattr__` that imports (forwarding
names out of sight of this graph) is refused. The graph must have no cycle at all, inside a unit
included.

Also checked here: no module bolts methods onto a class after its body (`Class.name = f`), no
module calls another object's `_private` method or sets its `_private` attribute (self and cls
excepted), and no test module imports another test module (shared helpers live in tests/support/).
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
HOST = ROOT / "host_tools"
TESTS = ROOT / "tests"

# ---------------------------------------------------------------------------------------- firmware
# unit -> module-name prefixes (the longest matching prefix wins)
FW_UNITS = {
    "ground": ["offgate", "offgate._cpython", "offgate.reasons", "offgate.clock", "offgate.checksum",
               "offgate.config", "offgate.boardcfg", "offgate.statedir", "offgate.timekeep", "offgate.scanner",
               "offgate.pollread"],
    "crypto": ["offgate.crypto"],
    "codec": ["offgate.codec"],
    "policy": ["offgate.policy"],
    "log": ["offgate.log"],
    "sync": ["offgate.sync"],
    "gate": ["offgate.gate", "offgate.gateboot", "offgate.ecdsa", "offgate.cose"],
    "adapters": ["esp32gate", "sim", "main", "sim_main"],
}
# unit -> the units it may import (besides itself): the allowed directions
FW_ALLOWED = {
    "ground": set(),
    "crypto": {"ground"},
    "codec": {"crypto", "ground"},
    "policy": {"codec", "crypto", "ground"},
    "log": {"ground"},
    "sync": {"log", "policy", "codec", "crypto", "ground"},
    "gate": {"log", "policy", "codec", "crypto", "ground"},
    "adapters": {"gate", "sync", "log", "policy", "codec", "crypto", "ground"},
}

# -------------------------------------------------------------------------------------------- host
HOST_UNITS = {
    "ground": ["offgate_host", "offgate_host.errors", "offgate_host.atomicfile", "offgate_host.db",
               "offgate_host.migrations"],
    "wire": ["offgate_host.wire"],              # formats, keys, QR, Merkle log, the host's gate rules
    "device": ["offgate_host.device"],          # firmware paths, simulator, boards, deploy, tables, gate files
    "sync": ["offgate_host.sync"],              # the sync client: frames, transports, client, batch opening
    "fares": ["offgate_host.fares"],            # GTFS fares v2
    "backoffice": ["offgate_host.backoffice"],  # issuer, accounts, deny list, backups
    "ledger": ["offgate_host.ledger"],          # pull (a whole sync), ingest, settle, report, statistics, receipts
    "wallet": ["offgate_host.wallet"],          # the rider's phone (simulator)
    "web": ["offgate_host.web"],
    "demo": ["offgate_host.demo"],
    "cli": ["offgate_host.cli"],
}
HOST_ALLOWED = {
    "ground": set(),
    "wire": {"ground"},
    "device": {"wire", "ground"},
    "sync": {"wire", "ground"},
    "fares": {"ground"},
    "backoffice": {"wire", "ground"},
    "ledger": {"sync", "device", "fares", "wire", "ground"},
    "wallet": {"wire", "ground"},
    "web": {"ledger", "backoffice", "fares", "wallet", "wire", "ground"},
    "demo": {"device", "backoffice", "wallet", "wire", "ground"},
    "cli": {"demo", "web", "wallet", "ledger", "backoffice", "fares", "sync", "device", "wire", "ground"},
}

# Known exceptions still to remove, as (checked thing, module): each is named in the failure if it
# is fixed (then delete it here), so this list can only shrink.
TEMPORARY = {
    ("cycle", "offgate.sync.session"),   # session <-> handshake/ops/admin (the sync rework, #12)
    ("cycle", "esp32gate.app"),          # app <-> synclink through the task hook list (#12)
    ("private", "offgate.sync.handshake"),    # sets gate._sync_hs (#12: a gate port object instead)
    ("bolted", "offgate_host.backoffice.backoffice"),  # BackOffice methods defined after the class
    ("private", "offgate_host.fares.settle"),         # calls Ledger._anomaly/_flag/_overdraft
}


def modules(base: Path, roots):
    """{dotted name: path} of every .py under base/<root> (packages: their __init__)."""
    out = {}
    for r in roots:
        top = base / r
        files = [top] if top.suffix == ".py" else sorted(top.rglob("*.py"))
        for p in files:
            parts = list(p.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = p
    return out


def imports_of(name, path, known):
    """The project modules `name` imports anywhere in its source."""
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    found = set()

    def add(mod, names=()):
        if mod in known:
            found.add(mod)
        for n in names:
            if mod + "." + n in known:
                found.add(mod + "." + n)
        if mod not in known:  # `import a.b.c`: the deepest known module
            parts = mod.split(".")
            while parts and ".".join(parts) not in known:
                parts.pop()
            if parts:
                found.add(".".join(parts))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                add(a.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module
            add(mod, [a.name for a in node.names])
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            f = node.func
            fname = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None
            if fname in ("import_module", "__import__"):
                add(node.args[0].value)
    found.discard(name)
    return found


def graph(base, roots):
    mods = modules(base, roots)
    return mods, {m: imports_of(m, p, mods) for m, p in mods.items()}


def cycles(g):
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(g.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    import sys
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 10000))
    try:
        for v in sorted(g):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(old)
    return out


def unit_of(mod, units):
    best, unit = -1, None
    for u, prefixes in units.items():
        for p in prefixes:
            if (mod == p or mod.startswith(p + ".")) and len(p) > best:
                best, unit = len(p), u
    return unit


FW_ROOTS = ["offgate", "esp32gate", "sim", "main.py", "sim_main.py"]
HOST_ROOTS = ["offgate_host"]


def _check_tree(base, roots, units, allowed):
    mods, g = graph(base, roots)
    problems = []
    for m in sorted(mods):
        u = unit_of(m, units)
        if u is None:
            problems.append("%s belongs to no unit: add it to the unit table in tests/test_architecture.py" % m)
            continue
        for dep in sorted(g[m]):
            du = unit_of(dep, units)
            if du is not None and du != u and du not in allowed[u]:
                problems.append("%s (%s) imports %s (%s): not an allowed direction" % (m, u, dep, du))
    return mods, g, problems


@pytest.mark.parametrize("tree", ["firmware", "host"])
def test_imports_point_down_the_layers(tree):
    if tree == "firmware":
        _, _, problems = _check_tree(FIRMWARE, FW_ROOTS, FW_UNITS, FW_ALLOWED)
    else:
        _, _, problems = _check_tree(HOST, HOST_ROOTS, HOST_UNITS, HOST_ALLOWED)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("tree", ["firmware", "host"])
def test_no_import_cycles(tree):
    _, g = graph(FIRMWARE, FW_ROOTS) if tree == "firmware" else graph(HOST, HOST_ROOTS)
    found = cycles(g)
    bad = [c for c in found if not any(("cycle", m) in TEMPORARY for m in c)]
    assert not bad, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in bad)
    stale = {m for k, m in TEMPORARY if k == "cycle" and m in g and not any(m in c for c in found)}
    assert not stale, "fixed, remove from TEMPORARY: %s" % sorted(stale)


def _all_modules():
    mods = modules(FIRMWARE, FW_ROOTS)
    mods.update(modules(HOST, HOST_ROOTS))
    return mods


def test_no_module_getattr_forwarding():
    """A module-level __getattr__ may compute its own lazy names (p256ref's odd multiples of G),
    never import another module to forward names to it."""
    bad = [m for m, p in _all_modules().items()
           if any(isinstance(n, ast.FunctionDef) and n.name == "__getattr__"
                  and any(isinstance(x, (ast.Import, ast.ImportFrom)) for x in ast.walk(n))
                  for n in ast.parse(p.read_text()).body)]
    assert not bad, "module-level __getattr__ forwarding names to another module: %s" % bad


def _imported_names(tree):
    names = set()
    for n in ast.walk(tree):
        if isinstance(n, (ast.Import, ast.ImportFrom)):
            for a in n.names:
                names.add((a.asname or a.name).split(".")[0])
    return names


def _classes(tree):
    return {n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef)}


def _lint(mod, path):
    """(kind, message) for the obvious patterns of reaching into another class."""
    tree = ast.parse(path.read_text())
    modules_here = _imported_names(tree)
    # a module may use the private methods of its own classes (a factory function beside the class)
    own_methods = {f.name for c in ast.walk(tree) if isinstance(c, ast.ClassDef) for f in c.body
                   if isinstance(f, ast.FunctionDef)}
    out = []
    for n in tree.body:  # Class.attr = ... at module level: a method bolted on after the class
        if isinstance(n, ast.Assign):
            for t in n.targets:
                if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id[:1].isupper() \
                        and not t.value.id.isupper() and t.value.id not in modules_here:
                    out.append(("bolted", "%s:%d %s.%s assigned after the class" % (path, n.lineno, t.value.id, t.attr)))
    for n in ast.walk(tree):
        targets = []
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute):
            targets.append((n.func, "calls"))
        elif isinstance(n, (ast.Assign, ast.AugAssign)):
            for t in (n.targets if isinstance(n, ast.Assign) else [n.target]):
                if isinstance(t, ast.Attribute):
                    targets.append((t, "sets"))
        for a, what in targets:
            if a.attr.startswith("_") and not a.attr.startswith("__") and isinstance(a.value, ast.Name) \
                    and a.value.id not in ("self", "cls") and a.value.id not in modules_here \
                    and a.value.id not in _classes(tree) and a.attr not in own_methods:
                out.append(("private", "%s:%d %s %s.%s" % (path, n.lineno, what, a.value.id, a.attr)))
    return out


def test_no_reaching_into_other_classes():
    problems, stale = [], []
    for mod, path in sorted(_all_modules().items()):
        found = _lint(mod, path)
        for kind, msg in found:
            if (kind, mod) not in TEMPORARY:
                problems.append(msg)
        for kind in ("bolted", "private"):
            if (kind, mod) in TEMPORARY and not any(k == kind for k, _ in found):
                stale.append((kind, mod))
    assert not problems, "\n".join(problems)
    assert not stale, "fixed, remove from TEMPORARY: %s" % stale


def test_lint_sees_the_patterns(tmp_path):
    p = tmp_path / "m.py"
    p.write_text("class Office:\n    pass\n\n\ndef f(self):\n    pass\n\n\nOffice.f = f\n\n\ndef g(o):\n    o._x = 1\n    o._y()\n")
    kinds = sorted(k for k, _ in _lint("m", p))
    assert kinds == ["bolted", "private", "private"]


def test_cycle_finder_sees_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_test_modules_import_no_test_module():
    bad = []
    for p in sorted(TESTS.rglob("test_*.py")):
        for n in ast.walk(ast.parse(p.read_text())):
            names = []
            if isinstance(n, ast.Import):
                names = [a.name for a in n.names]
            elif isinstance(n, ast.ImportFrom) and n.module:
                names = [n.module]
            for name in names:
                if name.split(".")[-1].startswith("test_") or name.startswith("tests."):
                    bad.append("%s:%d imports %s" % (p.relative_to(ROOT), n.lineno, name))
    assert not bad, "test modules importing test modules (move the shared part to tests/support/):\n" + "\n".join(bad)
