# Firmware unit tests for the verified-credential cache (offgate.credcache): LRU by count, and
# trim(), which gives heap back between scans; run on MicroPython (128k heap) and CPython.
import gc
import sys

from offgate.credcache import CredCache


def test_lru_by_count():
    c = CredCache(2)
    c.put(b"a", 1)
    c.put(b"b", 2)
    assert c.get(b"a") == 1  # a is now the most recent
    c.put(b"c", 3)
    assert c.get(b"b") is None and c.get(b"a") == 1 and c.get(b"c") == 3
    assert len(c) == 2


def test_trim_frees_oldest_until_enough_heap():
    if not hasattr(gc, "mem_free") or sys.platform == "webassembly":
        return  # CPython has no heap figure; the wasm port's growable heap does not shrink mem_free
    c = CredCache(64)
    for i in range(20):
        c.put(bytes([i]), bytearray(1024))
    gc.collect()
    assert c.trim(gc.mem_free()) == 0  # already enough: nothing dropped
    c.get(bytes([0]))  # 0 becomes the most recent: 1 is now the oldest
    n = c.trim(gc.mem_free() + 2048)
    assert 1 <= n and len(c) == 20 - n and c.trimmed == n
    assert c.get(bytes([1])) is None and c.get(bytes([0])) is not None  # least recent went first
    left = len(c)
    assert c.trim(1 << 30) == left and len(c) == 0  # an impossible target empties it
