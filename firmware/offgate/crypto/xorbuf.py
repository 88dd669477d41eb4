"""XOR of byte buffers in viper, for offgate.crypto.aesccm's CTR keystream: written in place, so a
chunk costs no big integers (three ~256-byte blocks each, which a sync session's fragmented heap
may not have; docs/performance.md "Sync on the gate"). 32-bit safe: byte loads and stores only.
CPython and ports without viper use aesccm's big-integer XOR (the same bytes)."""
import micropython


@micropython.viper
def xor_into(dst: ptr8, a: ptr8, b: ptr8, n: int):
    """dst[i] = a[i] ^ b[i] for 0 <= i < n (dst may be a)."""
    i = 0
    while i < n:
        dst[i] = a[i] ^ b[i]
        i += 1
