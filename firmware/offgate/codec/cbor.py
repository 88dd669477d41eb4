"""Strict CBOR (RFC 8949) decoder and a small deterministic encoder for the gate.

The decoder accepts only the subset in docs/protocol.md section 5: definite lengths, no floats,
only false/true/null as simple values, tags from an allow-set, unique int/text map keys, bounded
nesting and string length, valid UTF-8, no trailing bytes. Anything else raises CBORError.

It walks a memoryview with an index (no copies of the input, no per-byte objects) and recurses
at most max_depth levels. Byte strings come back as bytes. Non-shortest heads are accepted: the
signatures cover the exact received bytes, so re-encoding never matters for security.

The encoder always writes shortest-form heads and definite lengths; plain dicts get RFC 8949
4.2.1 deterministic key order (MicroPython dicts do not keep insertion order), an OrderedDict
keeps its own order.
"""

from micropython import const  # under CPython: the stand-in in offgate/__init__.py

MAX_DEPTH = const(8)
MAX_LEN = const(1024)
# A tuple, not a frozenset: frozenset is optional in smaller MicroPython builds.
DEFAULT_TAGS = (18,)

_MT_UINT = const(0)
_MT_NINT = const(1)
_MT_BSTR = const(2)
_MT_TSTR = const(3)
_MT_ARRAY = const(4)
_MT_MAP = const(5)
_MT_TAG = const(6)
_MT_SIMPLE = const(7)


class CBORError(ValueError):
    """Malformed or disallowed CBOR."""


class Tag:
    """A decoded (or to-be-encoded) CBOR tag: .tag (number) and .value (the tagged item)."""

    def __init__(self, tag, value):
        self.tag = tag
        self.value = value

    def __eq__(self, other):
        return isinstance(other, Tag) and self.tag == other.tag and self.value == other.value

    def __ne__(self, other):
        return not self.__eq__(other)

    def __repr__(self):
        return "Tag(%d, %r)" % (self.tag, self.value)


def _utf8_ok(b):
    # MicroPython's bytes.decode accepts overlong forms, surrogates and code points above
    # U+10FFFF, so validate by hand (RFC 3629 table). Only called when a byte >= 0x80 exists.
    i = 0
    n = len(b)
    while i < n:
        c = b[i]
        if c < 0x80:
            i += 1
            continue
        if 0xC2 <= c <= 0xDF:
            k = 1
            lo, hi = 0x80, 0xBF
        elif 0xE0 <= c <= 0xEF:
            k = 2
            lo, hi = 0x80, 0xBF
            if c == 0xE0:
                lo = 0xA0  # overlong
            elif c == 0xED:
                hi = 0x9F  # UTF-16 surrogates
        elif 0xF0 <= c <= 0xF4:
            k = 3
            lo, hi = 0x80, 0xBF
            if c == 0xF0:
                lo = 0x90  # overlong
            elif c == 0xF4:
                hi = 0x8F  # above U+10FFFF
        else:
            return False
        if i + k >= n:  # continuation bytes missing
            return False
        d = b[i + 1]
        if d < lo or d > hi:
            return False
        j = i + 2
        end = i + 1 + k
        while j < end:
            d = b[j]
            if d < 0x80 or d > 0xBF:
                return False
            j += 1
        i = end
    return True


class _Decoder:
    def __init__(self, buf, tags, max_depth, max_len):
        self.buf = buf
        self.pos = 0
        self.end = len(buf)
        self.tags = tags
        self.max_depth = max_depth
        self.max_len = max_len

    def _arg(self, ai):
        # Argument of a head whose initial byte is already consumed; ai = additional info.
        if ai < 24:
            return ai
        if ai > 27:
            if ai == 31:
                raise CBORError("indefinite length not allowed")
            raise CBORError("reserved additional info %d" % ai)
        n = 1 << (ai - 24)  # 1, 2, 4 or 8 bytes
        p = self.pos
        if n > self.end - p:
            raise CBORError("truncated head")
        self.pos = p + n
        b = self.buf
        if n == 1:
            return b[p]
        if n == 2:  # the common multi-byte case: no slice object
            return (b[p] << 8) | b[p + 1]
        return int.from_bytes(b[p:p + n], "big")

    def _string(self, n):
        if n > self.max_len:
            raise CBORError("string longer than %d bytes" % self.max_len)
        p = self.pos
        if n > self.end - p:
            raise CBORError("string longer than remaining input")
        self.pos = p + n
        return bytes(self.buf[p:p + n])

    def item(self, depth):
        p = self.pos
        if p >= self.end:
            raise CBORError("truncated input")
        ib = self.buf[p]
        self.pos = p + 1
        mt = ib >> 5
        ai = ib & 31
        if mt == _MT_SIMPLE:
            # Checked before _arg so floats/simple values get a precise message.
            if ai == 20:
                return False
            if ai == 21:
                return True
            if ai == 22:
                return None
            if ai == 23:
                raise CBORError("undefined not allowed")
            if 25 <= ai <= 27:
                raise CBORError("floats not allowed")
            if ai == 31:
                raise CBORError("unexpected break")
            if ai > 27:
                raise CBORError("reserved additional info %d" % ai)
            raise CBORError("simple value not allowed")
        val = self._arg(ai)
        if mt == _MT_UINT:
            return val
        if mt == _MT_NINT:
            return -1 - val
        if mt == _MT_BSTR:
            return self._string(val)
        if mt == _MT_TSTR:
            b = self._string(val)
            for c in b:
                if c >= 0x80:
                    if not _utf8_ok(b):
                        raise CBORError("invalid UTF-8 in text string")
                    break
            return b.decode()
        # Containers and tags: bounded nesting (tags count, or 18(18(...)) could recurse forever).
        if depth >= self.max_depth:
            raise CBORError("nesting deeper than %d" % self.max_depth)
        depth += 1
        if mt == _MT_ARRAY:
            # Every item takes at least one byte: refuse a huge count before allocating.
            if val > self.end - self.pos:
                raise CBORError("array count exceeds remaining input")
            out = [None] * val
            for i in range(val):
                out[i] = self.item(depth)
            return out
        if mt == _MT_MAP:
            if val * 2 > self.end - self.pos:
                raise CBORError("map count exceeds remaining input")
            out = {}
            buf = self.buf
            for _ in range(val):
                if self.pos >= self.end:
                    raise CBORError("truncated input")
                kt = buf[self.pos] >> 5
                # Key type decided from the head, not isinstance (bool is not int on MicroPython).
                if kt != _MT_UINT and kt != _MT_NINT and kt != _MT_TSTR:
                    raise CBORError("map key must be int or text")
                k = self.item(depth)
                if k in out:
                    raise CBORError("duplicate map key")
                out[k] = self.item(depth)
            return out
        # _MT_TAG
        if val not in self.tags:
            raise CBORError("tag %d not allowed" % val)
        return Tag(val, self.item(depth))


def loads(data, tags=DEFAULT_TAGS, max_depth=MAX_DEPTH, max_len=MAX_LEN):
    """Decode exactly one CBOR item from data (bytes, bytearray or memoryview).

    tags: tag numbers allowed (default {18}); max_depth: containers/tags nesting limit;
    max_len: longest byte/text string. Raises CBORError on anything outside the strict subset.
    """
    if not isinstance(data, memoryview):
        try:
            data = memoryview(data)
        except TypeError:
            raise CBORError("input must be bytes")
    d = _Decoder(data, tags, max_depth, max_len)
    obj = d.item(0)
    if d.pos != d.end:
        raise CBORError("trailing bytes after top-level item")
    return obj


def _head(out, mt, n):
    mt <<= 5
    if n < 24:
        out.append(mt | n)
    elif n < 0x100:
        out.append(mt | 24)
        out.append(n)
    elif n < 0x10000:
        out.append(mt | 25)
        out.extend(n.to_bytes(2, "big"))
    elif n < 0x100000000:
        out.append(mt | 26)
        out.extend(n.to_bytes(4, "big"))
    elif n < 0x10000000000000000:
        out.append(mt | 27)
        out.extend(n.to_bytes(8, "big"))
    else:
        raise ValueError("integer out of CBOR range")


def _first(pair):
    return pair[0]


def _enc(out, obj, depth):
    if depth > 64:  # guard against self-referencing containers
        raise ValueError("nesting too deep to encode")
    # bool before int: True is an int on CPython (not on MicroPython).
    if obj is False:
        out.append(0xF4)
    elif obj is True:
        out.append(0xF5)
    elif obj is None:
        out.append(0xF6)
    elif isinstance(obj, int):
        if obj >= 0:
            _head(out, _MT_UINT, obj)
        else:
            _head(out, _MT_NINT, -1 - obj)
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        _head(out, _MT_BSTR, len(obj))
        out.extend(obj)
    elif isinstance(obj, str):
        b = obj.encode()
        _head(out, _MT_TSTR, len(b))
        out.extend(b)
    elif isinstance(obj, (list, tuple)):
        _head(out, _MT_ARRAY, len(obj))
        for x in obj:
            _enc(out, x, depth + 1)
    elif isinstance(obj, dict):
        _head(out, _MT_MAP, len(obj))
        if type(obj) is dict:
            # MicroPython dicts do not keep insertion order, so a plain dict is written in the
            # RFC 8949 4.2.1 deterministic order (bytewise order of the encoded keys): the same
            # bytes on every platform. An OrderedDict keeps the order given.
            items = []
            for k, v in obj.items():
                kb = bytearray()
                _enc(kb, k, depth + 1)
                items.append((bytes(kb), v))
            items.sort(key=_first)
            for kb, v in items:
                out.extend(kb)
                _enc(out, v, depth + 1)
        else:
            for k, v in obj.items():
                _enc(out, k, depth + 1)
                _enc(out, v, depth + 1)
    elif isinstance(obj, Tag):
        _head(out, _MT_TAG, obj.tag)
        _enc(out, obj.value, depth + 1)
    else:
        raise ValueError("cannot CBOR-encode %s" % type(obj).__name__)


def dumps(obj):
    """Encode obj (int, bytes/bytearray, str, list/tuple, dict, bool, None, Tag) with
    shortest-form heads and definite lengths. Plain dicts are written with keys in RFC 8949
    deterministic order (MicroPython dicts have no insertion order); OrderedDict keeps its order."""
    out = bytearray()
    _enc(out, obj, 0)
    return bytes(out)
