"""The committed firmware manifests, read on the host: firmware/manifests/<name>.py.

They are MicroPython manifest files (the format of micropython-lib and of `FROZEN_MANIFEST`):
`metadata(description=..., version=...)`, `package(name, base_path=...)`, `module(file,
base_path=...)`, `include(path)`. The host executes them with its own definitions of those calls
to learn what a build contains: `make mpy` / `offgate board build` (deploy.build), the simulator's
and the tests' .mpy build (simgate.compile_firmware) and ROMFS images. The same files can be
included by a MicroPython freeze manifest unchanged (deploy.manifest_text does).
"""
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import OffgateError

NAMES = ("esp32", "unix")


class ManifestError(OffgateError):
    """A manifest file is missing or uses something the host does not read."""


@dataclass
class Manifest:
    name: str
    version: str = None
    description: str = ""
    packages: list = field(default_factory=list)   # package directories, relative to firmware/
    modules: list = field(default_factory=list)    # single files, relative to firmware/


def path_of(name, fw):
    return Path(fw) / "manifests" / (name + ".py")


def load(name, fw):
    """The manifest `name` (NAMES) of the firmware directory `fw` -> Manifest. Raises ManifestError."""
    fw = Path(fw).resolve()
    m = Manifest(name)
    _exec(path_of(name, fw), fw, m)
    return m


def _rel(path, base_path, name, fw):
    target = (path.parent / base_path / name).resolve()
    try:
        return str(target.relative_to(fw))
    except ValueError:
        raise ManifestError("%s: %s is outside the firmware directory %s" % (path, target, fw)) from None


def _exec(path, fw, m):
    if not path.is_file():
        raise ManifestError("firmware manifest %s not found" % path)

    def metadata(description=None, version=None, license=None, author=None):
        if version is not None:
            m.version = version
        if description is not None:
            m.description = description

    def package(name, files=None, base_path=".", opt=None):
        if files is not None:
            raise ManifestError("%s: package(files=...) is not used by offgate" % path)
        m.packages.append(_rel(path, base_path, name, fw))

    def module(name, base_path=".", opt=None):
        m.modules.append(_rel(path, base_path, name, fw))

    def include(p):
        _exec((path.parent / p).resolve(), fw, m)

    def require(name, **kw):
        raise ManifestError("%s: require(%r): offgate's firmware needs no micropython-lib package" % (path, name))

    env = {"metadata": metadata, "package": package, "module": module, "include": include, "require": require}
    exec(compile(path.read_text(), str(path), "exec"), env)


def sources(m, fw):
    """The .py files of manifest `m`, relative to `fw`, sorted (packages recursively)."""
    fw = Path(fw)
    out = set(m.modules)
    for pkg in m.packages:
        out.update(str(p.relative_to(fw)) for p in (fw / pkg).rglob("*.py"))
    return sorted(out)
