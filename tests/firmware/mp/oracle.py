# Long-running MicroPython process that lets host-side pytest call firmware functions.
# One request per stdin line:  module.function arg arg ...
#   arg:  x<hex> bytes | i<int> int | s<hex of utf-8> str | n None
# One reply per line:  ok <json>  or  exc <ExceptionName> <message>
# bytes in a result are encoded as {"$b": "<hex>"} so results survive JSON.
import sys
import gc
import json
from binascii import hexlify, unhexlify

_mods = {}


def _arg(a):
    t = a[0]
    if t == "x":
        return unhexlify(a[1:])
    if t == "i":
        return int(a[1:])
    if t == "s":
        return unhexlify(a[1:]).decode()
    if t == "n":
        return None
    raise ValueError("bad arg")


def _plain(v):
    if isinstance(v, (bytes, bytearray, memoryview)):
        return {"$b": hexlify(bytes(v)).decode()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    return v


def _func(path):
    mod, _, name = path.rpartition(".")
    m = _mods.get(mod)
    if m is None:
        m = __import__(mod)
        for part in mod.split(".")[1:]:
            m = getattr(m, part)
        _mods[mod] = m
    return getattr(m, name)


def main():
    while True:
        line = sys.stdin.readline()
        if not line:
            break
        parts = line.split()
        if not parts:
            continue
        try:
            r = _func(parts[0])(*[_arg(a) for a in parts[1:]])
            out = "ok " + json.dumps(_plain(r))
        except Exception as e:
            out = "exc %s %s" % (type(e).__name__, str(e).replace("\n", " "))
        sys.stdout.write(out + "\n")
        sys.stdout.flush()
        gc.collect()


main()
