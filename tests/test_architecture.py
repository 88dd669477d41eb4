"""The architecture, checked from the source (issue #9): data flows one way.

Gate: scan -> decode -> verify -> policy -> log -> relay. Host: log -> sync -> ledger -> report.

1. The import graph of firmware/ and host_tools/ (every `import`/`from ... import` anywhere in a
   module, inside functions too, relative imports resolved) has no cycle.
2. Every firmware import points along an allowed direction between layers (ALLOWED below).
3. Generated modules (`_gen_*`) are leaves.
4. No "detached method" patterns in the firmware: no module constructs another module's object and
   then sets its attributes (pass them to the constructor), assigns attributes of the gate from
   outside offgate/gate.py, calls another object's `_private` method, or imports another module's
   `_private` names.
5. The host's packages import only along HOST_ALLOWED (wire formats < device, sync client, back
   office < ledger < web, demo < cli), and no host module bolts methods onto a class after its
   body (`Class.name = f`) or calls or sets another object's `_private` members.
6. No test module imports another test module (shared helpers live in tests/support/).

Known offenders that other issues are removing are listed below as named, temporary exceptions,
each with the reason; delete an entry when its cycle or pattern is gone (the test then fails if it
comes back). Pure static analysis: no imports, well under a second.
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TREES = (ROOT / "firmware", ROOT / "host_tools")

# ---------------------------------------------------------------- layers of the gate firmware
GROUND = {"offgate", "offgate._cpython", "offgate.reasons", "offgate.clock", "offgate.checksum", "offgate.config",
          "offgate.boardcfg", "offgate.statedir", "offgate.timekeep", "offgate.scanner", "offgate.pollread"}
TOP = {"offgate.gate", "offgate.gateboot", "offgate.gatestatus", "offgate.gateport"}  # gateport: the gate as sync sees it (sync part)
FACADE = {"offgate.ecdsa", "offgate.cose"}  # the documented entry points: thin re-exports


def layer(mod):
    """The layer of a firmware module, or None for a module outside the firmware."""
    if mod in GROUND:
        return "ground"
    if mod in TOP:
        return "gate"
    if mod in FACADE:
        return "facade"
    for sub in ("crypto", "codec", "policy", "log", "sync"):
        if mod == "offgate." + sub or mod.startswith("offgate.%s." % sub):
            return sub
    if mod.split(".")[0] in ("esp32gate", "sim", "main", "sim_main"):
        return "adapter"
    if mod == "offgate" or mod.startswith("offgate."):
        raise AssertionError("%s has no layer: add it to test_architecture.py (and docs/architecture.md)" % mod)
    return None


# What each layer may import (itself included). Read it as the data flow: ground floor (names,
# time, checksums, state files) < crypto < codec (COSE verifies with crypto) < policy; the log
# only needs the ground floor; sync and the gate sit on policy and log, side by side (neither
# imports the other: sync reaches the gate through what its constructor is given); the adapters
# (ESP32, simulator) wire everything.
ALLOWED = {
    "ground": {"ground"},
    "crypto": {"ground", "crypto"},
    "codec": {"ground", "crypto", "codec"},
    "policy": {"ground", "crypto", "codec", "policy"},
    "log": {"ground", "log"},
    "sync": {"ground", "crypto", "codec", "policy", "log", "sync"},
    "gate": {"ground", "crypto", "codec", "policy", "log", "gate"},
    "facade": {"crypto", "codec"},
    "adapter": {"ground", "crypto", "codec", "policy", "log", "sync", "gate", "adapter"},
}
# the host may read the firmware's ground floor (reason names, board and config checks)
HOST_MAY_IMPORT = {"ground"}

# Temporary exceptions: cycles (as the sorted member list of the strongly connected component).
CYCLE_EXCEPTIONS = set()  # none left: the sync part of issue #9 removed the last ones


def _modules():
    out = {}
    for base in TREES:
        for p in base.rglob("*.py"):
            if "node_modules" in p.parts or any(x.endswith(".egg-info") for x in p.parts):
                continue
            parts = list(p.relative_to(base).with_suffix("").parts)
            is_pkg = parts[-1] == "__init__"
            if is_pkg:
                parts = parts[:-1]
            out[".".join(parts)] = (p, is_pkg)
    return out


MODULES = _modules()


def _known(name):
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(mod):
    path, is_pkg = MODULES[mod]
    tree = ast.parse(path.read_text(), str(path))
    pkg = mod if is_pkg else mod.rpartition(".")[0]
    found = set()
    for n in ast.walk(tree):  # function-level imports count too
        if isinstance(n, ast.Import):
            for a in n.names:
                found.add((_known(a.name), n.lineno))
        elif isinstance(n, ast.ImportFrom):
            if n.level:
                base = pkg
                for _ in range(n.level - 1):
                    base = base.rpartition(".")[0]
                src = base + ("." + n.module if n.module else "")
            else:
                src = n.module
            for a in n.names:
                sub = src + "." + a.name
                found.add((sub if sub in MODULES else _known(src), n.lineno))
    return {(m, ln) for m, ln in found if m and m != mod}


GRAPH = {m: _imports(m) for m in MODULES}


def _sccs(graph):
    """Tarjan's strongly connected components (iterative)."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter[0]
                    counter[0] += 1
                    stack.append(nxt)
                    on.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                elif nxt in on:
                    low[v] = min(low[v], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                out.append(tuple(sorted(comp)))
    return out


def test_the_graph_sees_the_tree():
    assert "offgate.crypto.ecdsa" in MODULES and "offgate_host.cli" in MODULES
    assert ("offgate.crypto.p256", ) != ()
    # function-level imports are seen (ecdsa loads the big-integer path on first use)
    assert "offgate.crypto.p256ref" in {m for m, _ in GRAPH["offgate.crypto.ecdsa"]}


def test_no_import_cycles():
    graph = {m: {t for t, _ in e} for m, e in GRAPH.items()}
    cycles = [c for c in _sccs(graph) if len(c) > 1]
    unexpected = [c for c in cycles if c not in CYCLE_EXCEPTIONS]
    assert not unexpected, "import cycles: %s" % unexpected
    gone = [c for c in CYCLE_EXCEPTIONS if c not in cycles]
    assert not gone, "cycle exception(s) no longer needed, remove them from CYCLE_EXCEPTIONS: %s" % gone


def test_firmware_imports_point_down():
    bad = []
    for mod, edges in sorted(GRAPH.items()):
        src = layer(mod)
        for dst, line in sorted(edges):
            to = layer(dst)
            if src is None:  # host code
                if to is not None and to not in HOST_MAY_IMPORT:
                    bad.append("%s:%d imports %s (%s)" % (mod, line, dst, to))
            elif to is None:
                bad.append("%s:%d (firmware) imports host code %s" % (mod, line, dst))
            elif to not in ALLOWED[src]:
                bad.append("%s:%d (%s) imports %s (%s)" % (mod, line, src, dst, to))
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


def test_nothing_in_the_firmware_imports_the_facade():
    users = ["%s:%d" % (m, ln) for m, e in GRAPH.items() for d, ln in e if d in FACADE and layer(m) not in ("facade",)]
    assert not users, "firmware code imports the public re-export modules: %s" % users


def test_generated_modules_are_leaves():
    gen = [m for m in MODULES if m.rpartition(".")[2].startswith("_gen_")]
    assert {"offgate.crypto._gen_p256field", "offgate.crypto._gen_p256_gtable"} <= set(gen)
    for m in gen:
        assert not GRAPH[m], "%s imports %s" % (m, GRAPH[m])
        assert "GENERATED" in MODULES[m][0].read_text()[:400], m


# ---------------------------------------------------------------- detached methods
# Value records: their fields are their interface (a decoder fills them in).
RECORD_CLASSES = {"Credential", "Decision", "PublicKey"}
# Exceptions (module, pattern text): batch writes CBOR heads in place with the codec's helper
# (tests/firmware/sync/test_sync_layers.py PRIVATE_OK).
DETACHED_EXCEPTIONS = {
    ("offgate.sync.batch", "calls cbor._head"),
    ("offgate.sync.session", "calls cbor._head"),  # a batch response's CBOR heads, written in place (Session._seal1)
}


def _detached(mod):
    path, _ = MODULES[mod]
    tree = ast.parse(path.read_text(), str(path))
    own_classes = {n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef)}
    found = []
    for n in ast.walk(tree):
        if isinstance(n, ast.ImportFrom) and n.module and n.module.split(".")[0] in ("offgate", "esp32gate", "sim"):
            for a in n.names:
                if a.name.startswith("_") and not a.name.startswith(("__", "_gen_", "_cpython")):
                    found.append((n.lineno, "private import %s from %s" % (a.name, n.module)))
        # calls of another object's _private method (self.x._m() included; own classes' are fine)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute):
            f = n.func
            if f.attr.startswith("_") and not f.attr.startswith("__"):
                recv = f.value
                if not (isinstance(recv, ast.Name) and (recv.id in ("self", "cls") or recv.id in own_classes)):
                    found.append((n.lineno, "calls %s.%s" % (ast.unparse(recv), f.attr)))
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Module)):
            body = n.body
            made = {}  # local name -> class it was constructed from (another module's class)
            for st in ast.walk(ast.Module(body=body, type_ignores=[])):
                if isinstance(st, ast.Assign) and isinstance(st.value, ast.Call):
                    fn = st.value.func
                    cls = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else None
                    if cls and cls[:1].isupper() and cls not in own_classes and cls not in RECORD_CLASSES:
                        for t in st.targets:
                            if isinstance(t, ast.Name):
                                made[t.id] = cls
                targets = st.targets if isinstance(st, ast.Assign) else [st.target] if isinstance(st, ast.AugAssign) else []
                for t in targets:
                    for x in ast.walk(t):
                        if not (isinstance(x, ast.Attribute) and isinstance(x.ctx, ast.Store)):
                            continue
                        v = x.value
                        if isinstance(v, ast.Name) and v.id in made:
                            found.append((st.lineno, "sets %s.%s of a %s it made" % (v.id, x.attr, made[v.id])))
                        gate = (isinstance(v, ast.Name) and v.id == "gate") or (isinstance(v, ast.Attribute) and v.attr == "gate")
                        if gate and mod != "offgate.gate":
                            found.append((st.lineno, "sets %s.%s" % (ast.unparse(v), x.attr)))
    return sorted(set(found))


@pytest.mark.parametrize("tree", ["offgate", "esp32gate", "sim"])
def test_no_detached_methods_in_the_firmware(tree):
    bad, used = [], set()
    for mod in sorted(MODULES):
        if mod.split(".")[0] != tree:
            continue
        for line, what in _detached(mod):
            if (mod, what) in DETACHED_EXCEPTIONS:
                used.add((mod, what))
                continue
            bad.append("%s:%d %s" % (mod, line, what))
    assert not bad, "detached-method patterns:\n" + "\n".join(bad)
    if tree == "offgate":
        gone = DETACHED_EXCEPTIONS - used
        assert not gone, "exception(s) no longer needed, remove them from DETACHED_EXCEPTIONS: %s" % sorted(gone)


# ---------------------------------------------------------------- host packages
# unit -> module-name prefixes (the longest matching prefix wins)
HOST_UNITS = {
    "ground": ["offgate_host", "offgate_host.errors", "offgate_host.atomicfile", "offgate_host.db",
               "offgate_host.migrations"],
    "wire": ["offgate_host.wire"],              # formats, keys, QR, Merkle log, the host's gate rules
    "device": ["offgate_host.device"],          # firmware paths, manifests, simulator, boards, deploy, tables, gate files
    "sync": ["offgate_host.sync"],              # the sync client: frames, transports, client, batch opening
    "fares": ["offgate_host.fares"],            # GTFS fares v2
    "backoffice": ["offgate_host.backoffice"],  # issuer, accounts, deny list, backups
    "ledger": ["offgate_host.ledger"],          # pull (a whole sync), ingest, settle, report, statistics, receipts
    "wallet": ["offgate_host.wallet"],          # the rider's phone (simulator)
    "web": ["offgate_host.web"],
    "demo": ["offgate_host.demo"],
    "cli": ["offgate_host.cli"],
}
# unit -> the units it may import besides itself: log -> sync -> ledger -> report, commands on top
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
# Temporary exceptions (module, pattern text), each to be removed by making the member public
HOST_DETACHED_EXCEPTIONS = set()


def host_unit(mod):
    best, unit = -1, None
    for u, prefixes in HOST_UNITS.items():
        for p in prefixes:
            if (mod == p or mod.startswith(p + ".")) and len(p) > best:
                best, unit = len(p), u
    return unit


def test_host_imports_point_down():
    bad = []
    for mod, edges in sorted(GRAPH.items()):
        if not mod.startswith("offgate_host"):
            continue
        src = host_unit(mod)
        if src is None:
            bad.append("%s belongs to no unit: add it to HOST_UNITS (and docs/architecture.md)" % mod)
            continue
        for dst, line in sorted(edges):
            to = host_unit(dst) if dst.startswith("offgate_host") else None
            if to is not None and to != src and to not in HOST_ALLOWED[src]:
                bad.append("%s:%d (%s) imports %s (%s)" % (mod, line, src, dst, to))
    assert not bad, "host imports against the layer order:\n" + "\n".join(bad)


def _host_detached(mod):
    path, _ = MODULES[mod]
    tree = ast.parse(path.read_text(), str(path))
    imported = {(a.asname or a.name).split(".")[0] for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                for a in n.names}
    own_classes = {n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef)}
    # a module may use the private methods of its own classes (a factory beside the class)
    own_methods = {f.name for c in ast.walk(tree) if isinstance(c, ast.ClassDef) for f in c.body
                   if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))}
    found = []
    for n in tree.body:  # Class.name = ... after the class: a method bolted on
        if isinstance(n, ast.Assign):
            for t in n.targets:
                if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id in own_classes:
                    found.append((n.lineno, "bolts %s.%s onto the class" % (t.value.id, t.attr)))
    for n in ast.walk(tree):
        targets = []
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute):
            targets.append((n.func, "calls"))
        elif isinstance(n, (ast.Assign, ast.AugAssign)):
            targets += [(t, "sets") for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
                        if isinstance(t, ast.Attribute)]
        for a, what in targets:
            if a.attr.startswith("_") and not a.attr.startswith("__") and isinstance(a.value, ast.Name) \
                    and a.value.id not in ("self", "cls") and a.value.id not in imported \
                    and a.value.id not in own_classes and a.attr not in own_methods:
                found.append((n.lineno, "%s %s.%s" % (what, a.value.id, a.attr)))
    return sorted(set(found))


def test_no_detached_methods_on_the_host():
    bad, used = [], set()
    for mod in sorted(m for m in MODULES if m.startswith("offgate_host")):
        for line, what in _host_detached(mod):
            if (mod, what) in HOST_DETACHED_EXCEPTIONS:
                used.add((mod, what))
                continue
            bad.append("%s:%d %s" % (mod, line, what))
    assert not bad, "detached-method patterns:\n" + "\n".join(bad)
    gone = HOST_DETACHED_EXCEPTIONS - used
    assert not gone, "exception(s) no longer needed, remove them from HOST_DETACHED_EXCEPTIONS: %s" % sorted(gone)


def test_host_lint_sees_the_patterns(tmp_path, monkeypatch):
    p = tmp_path / "m.py"
    p.write_text("class Office:\n    pass\n\n\ndef f(self):\n    pass\n\n\nOffice.f = f\n\n\n"
                 "def g(o):\n    o._x = 1\n    o._y()\n")
    monkeypatch.setitem(MODULES, "m", (p, False))
    assert [w.split()[0] for _, w in _host_detached("m")] == ["bolts", "sets", "calls"]


# ---------------------------------------------------------------- tests
def test_test_modules_import_no_test_module():
    bad = []
    for p in sorted((ROOT / "tests").rglob("test_*.py")):
        if "node_modules" in p.parts:
            continue
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
