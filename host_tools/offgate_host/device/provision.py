"""Provisioning a (simulated) gate's directory for the sync link: the back office's public keys
written into it, and its device key made there (docs/protocol.md "Provisioning")."""
import struct
import zlib
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from ..wire import keys
from ..atomicfile import atomic_write
from ..errors import OffgateError
from .gatefiles import BATCH_PUB, DEVICE_KEY, ROOT_PUB  # the one table of gate files

def _device_key_file(d: int) -> bytes:
    """The gate's key file layout (firmware/offgate/crypto/devicekey.py): b"OGK1" | d (32, BE) | CRC-32."""
    b = b"OGK1" + d.to_bytes(32, "big")
    return b + struct.pack(">I", zlib.crc32(b) & 0xFFFFFFFF)


def device_pub_of_dir(path) -> bytes:
    """The public key of the device key file in a (simulated) gate's state directory."""
    raw = (Path(path) / DEVICE_KEY).read_bytes()
    if len(raw) != 40 or raw[:4] != b"OGK1" or struct.unpack(">I", raw[36:])[0] != zlib.crc32(raw[:36]) & 0xFFFFFFFF:
        raise ValueError("device key file in %s is corrupt" % path)
    return keys.pub_bytes(ec.derive_private_key(int.from_bytes(raw[4:36], "big"), ec.SECP256R1()))


def provision_gate_dir(path, bo, gate_id=None, replace=False):
    """Give a gate directory what the sync link needs from the back office: the root public key
    (root.pub, verifies trust lists and time) and the batch key (batch.pub, summaries are encrypted
    to it). Both are public.

    With `gate_id` this is provisioning of a simulated gate: its device key is made now in the
    gate's state directory (the simulator's flash; on a device `offgate provision` makes it on the
    gate) unless one is there, and registered under that gate id in the back office, which is what
    the ledger enrols the gate with at its first sync. Returns the directory."""
    p = Path(path)
    if not p.is_dir():  # a typo must not become a new directory
        raise OffgateError("%s is not a gate directory (`offgate gate init` makes one)" % p)
    (p / ROOT_PUB).write_bytes(bo.root_pub())
    (p / BATCH_PUB).write_bytes(keys.pub_bytes(bo.batch_key()))
    if gate_id is not None:
        if not (p / DEVICE_KEY).exists():
            d = ec.generate_private_key(ec.SECP256R1()).private_numbers().private_value
            atomic_write(p / DEVICE_KEY, _device_key_file(d))
        bo.register_gate(gate_id, device_pub_of_dir(p), "sim", replace=replace)
    return p
