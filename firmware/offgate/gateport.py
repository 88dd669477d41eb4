"""The gate as the sync link sees it: a narrow port (docs/architecture.md "Sync"). offgate.sync
gets one of these in its constructor and touches the gate only through it: it never reaches into
the verifier; the state files it reads or replaces are those of offgate.statedir.

Made by the adapter that runs the link (sim/streams.py, esp32gate/synclink.py) for each run of
offgate.sync.serve and dropped with the sync modules after it; what outlives that (the handshake
rate limit, the device public key) lives in `keep`, a dict the adapter holds for the gate.
"""
from offgate import statedir
from offgate.statedir import BATCH_PUB, DENY, DENY_NEW, DEVICE_KEY, ROOT_PUB, TABLES, TRUST


class GatePort:
    """What sync may see and do of a gate (an offgate.gate.Gate or anything with its cfg, clock,
    time, oplog, verifier, status(), deny_list_installed() and tidy()).

    device_key: an offgate.devicekey key (None: loaded from DEVICE_KEY in the state directory on
    first use; a P-256 key costs heap). keep: a dict kept by the adapter across ports for this gate
    (None: a new one)."""

    def __init__(self, gate, device_key=None, keep=None):
        self._gate = gate
        self.cfg = gate.cfg
        self.gate_id = gate.cfg["gate_id"]
        self.dir = gate.cfg["state_dir"]
        self.clock = gate.clock       # offgate.clock.Clock: now() in Unix seconds, offset
        self.time = gate.time         # offgate.clock.ClockTrust (None: the clock is trusted as is)
        self.oplog = gate.oplog       # offgate.oplog.OpLog (None: this gate keeps no log)
        self._device_key = device_key
        self._loaded_key = False
        self.keep = keep if keep is not None else {}
        # handshake rate limit: [tokens, ms] (offgate.sync.handshake), across sessions and ports
        self.hs_bucket = self.keep.setdefault("hs", [])

    def tidy(self):
        """Give the sync session the heap the gate can spare: the replay table shrinks if a rush
        has passed (offgate.gate.Gate.tidy). Never raises."""
        self._gate.tidy()

    def path(self, name):
        return self.dir + "/" + name

    # -- keys ------------------------------------------------------------------------
    def device_key(self):
        if self._device_key is None:
            from offgate.crypto import devicekey
            self._device_key = devicekey.load_or_create(self.path(DEVICE_KEY), self.keep.get("dpub"))
            self._loaded_key = True
        return self._device_key

    def drop_device_key(self):
        """Forget a device key loaded from DEVICE_KEY (one given to the constructor stays): the
        next device_key() reads it again. Lets a session drop offgate.crypto.devicekey between
        the handshake and a pull (sync.session)."""
        if self._loaded_key:
            self._device_key = None
            self._loaded_key = False

    def device_pub(self):
        """The device public key, 65 bytes (a scalar multiplication, made once and kept)."""
        pub = self.keep.get("dpub")
        if pub is None:
            pub = self.keep["dpub"] = self.device_key().public_bytes()
        return pub

    def root_pub(self):
        """The back office's root public key (65 bytes), or None if ROOT_PUB is missing or bad."""
        return self._pub(ROOT_PUB)

    def batch_pub(self):
        """The back office's batch public key (65 bytes), or None if BATCH_PUB is missing or bad."""
        return self._pub(BATCH_PUB)

    def _pub(self, name):
        pub = statedir.read(self.path(name))
        return pub if pub is not None and len(pub) == 65 else None

    # -- trust list --------------------------------------------------------------------
    def trust_keys(self):
        """The trusted issuer keys (offgate.trust.IssuerKey: kid, key, active(now))."""
        return self._gate.verifier.trust.keys

    def trust_info(self):
        """(serial, issued (Unix seconds, 0: unknown), number of keys) of the installed trust list."""
        t = self._gate.verifier.trust
        return t.serial, t.issued, len(t.keys)

    def install_trust(self, data, store):
        """Make `store` (an offgate.trust.TrustStore parsed from `data`, checked by the caller) the
        gate's trust list: written atomically to TRUST, then used for the next scan."""
        statedir.atomic_write(self.path(TRUST), data)
        self._gate.verifier.set_trust(store)

    def install_tables(self, tmp):
        """Move the received comb tables file `tmp` to TABLES and attach them to the trusted keys
        (row by row checked, offgate.keytables). Returns (attached, refused)."""
        path = self.path(TABLES)
        statedir.replace(tmp, path)
        return self._gate.verifier.trust.attach_tables(path)

    # -- deny list ---------------------------------------------------------------------
    def is_denied(self, cti):
        return self._gate.verifier.deny.contains(cti)

    def deny_info(self):
        """{"count", "serial", "issued", "signed", "id_bytes"} of the installed deny list (id_bytes:
        how much of each id it stores, 8 or a prefix of 4 .. 7, docs/protocol.md §6)."""
        # read from the list's header fields here, not by DenyList methods: DenyList is in the
        # boot heap, which the state matrix's damaged-issuer-tables boots fill to the last block
        dl = self._gate.verifier.deny
        return {"count": dl.count, "serial": dl.serial, "issued": dl.issued, "signed": dl._h == 24,
                "id_bytes": dl._len}

    def replace_deny(self, tmp, known=None):
        """Move the received, checked deny list file `tmp` to DENY and open it; the gate has a valid
        list again (DENY_LIST_MISSING ends). known: (count, serial, issued, id length) of the list
        just checked whole (offgate.policy.denylist.DenyList.open: no second pass). Returns
        (count, serial)."""
        path = self.path(DENY)
        statedir.replace(tmp, path)
        dl = self._gate.verifier.deny
        dl.open(path, known)
        self._gate.deny_list_installed()
        return dl.count, dl.serial

    def deny_delta_base(self):
        """(serial, id length) of the installed list a deny delta can be merged with: an open,
        signed version-2 list; None if the gate holds none (only the full list can be installed)."""
        dl = self._gate.verifier.deny
        if dl._f is None or dl._h != 24:
            return None
        return dl.serial, dl._len

    def install_deny_delta(self, delta, head, digest):
        """Merge the checked deny delta file `delta` (head: offgate.policy.denydelta.check's result,
        its signature verified and its base deny_delta_base(), both by the caller) with the
        installed list into DENY_NEW; install the result over DENY if its SHA-256 is `digest`
        (32 bytes, from the signature), and the gate has a valid list again. Returns (count,
        serial). DenyListError (the merged list is not the signed one, a write failed): DENY and
        the open list are as they were (offgate.policy.denydelta.install)."""
        from offgate.policy import denydelta
        dl = self._gate.verifier.deny
        denydelta.install(dl, delta, self.path(DENY_NEW), self.path(DENY), head, digest)
        self._gate.deny_list_installed()
        return dl.count, dl.serial

    # -- the rest ----------------------------------------------------------------------
    def status(self):
        """The gate's status map (offgate.gate.Gate.status: scans, opened, denied, ...)."""
        return self._gate.status()
