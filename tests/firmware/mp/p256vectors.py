# An ECDSA P-256 vector for the firmware's comb tests (test_p256_comb.py, test_p256_field.py).
from binascii import unhexlify

from offgate.crypto import p256

G_PUB = b"\x04" + p256.GX.to_bytes(32, "big") + p256.GY.to_bytes(32, "big")
# ECDSA by d = 1 (public key G), made on the host with pyca/cryptography
G_MSG = b"signed by d = 1, so the public key is G"
G_SIG = unhexlify("56b25dca22ef5c9590c74565380c4e233354f98d8ca105ff0502f922af5acc91"
                  "b6c15ba7423d9be0fa241413f4a46a32ab77fdb08377bfefab7fa25daa212697")
