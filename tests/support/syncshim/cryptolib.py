"""CPython stand-in for MicroPython's built-in `cryptolib` (AES ECB and CBC, encrypt), so the
sync tests can run the gate's real batch sealing (offgate/crypto/aesccm.py) in-process under CPython."""
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

MODE_ECB = 1
MODE_CBC = 2


class aes:  # noqa: N801 (the MicroPython name)
    def __init__(self, key, mode, iv=None):
        m = modes.ECB() if mode == MODE_ECB else modes.CBC(bytes(iv))
        self._enc = Cipher(algorithms.AES(bytes(key)), m).encryptor()

    def encrypt(self, data, out=None):
        r = self._enc.update(bytes(data))
        if out is not None:
            out[:len(r)] = r
            return None
        return r
