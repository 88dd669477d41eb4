"""Host-side makers for the field-case and robustness tests: an issuer, its trust store, many
credentials and codes, made directly with offgate_host.wire.formats (no back-office database, so
thousands of credentials cost well under a second each)."""
import os
import time

from offgate_host.wire import formats, keys

NOW = int(time.time())


class Issuer:
    def __init__(self, now=NOW, valid_s=30 * 86400, iss="field"):
        self.key = keys.generate()
        self.pub = keys.pub_bytes(self.key)
        self.kid = keys.kid_of(self.pub)
        self.iss = iss
        self.nbf = now - 86400
        self.exp = now + valid_s
        self.rider = keys.generate()  # one rider key for every credential: verification cost is the same
        self.rider_pub = keys.pub_bytes(self.rider)

    def entry(self):
        return {"kid": self.kid, "iss": self.iss, "pub": self.pub, "nbf": self.nbf, "exp": self.exp}

    def trust(self):
        return formats.trust_store_bytes([self.entry()])

    def deny(self, ctis, serial=1, issued=None):
        """A signed version-2 deny list (docs/protocol.md §6); the issuer key stands in for the root
        key (the gate checks the signature at install, the CRC and order at every load)."""
        def sign(payload):
            return formats.sign1(self.key, {formats.H_ALG: formats.ALG_ES256, formats.H_KID: self.kid},
                                  payload, tagged=True)
        return formats.signed_deny_list_bytes(ctis, serial, self.nbf if issued is None else issued, sign)

    def credential(self, cti=None, zones=(1,), nbf=None, exp=None):
        cti = cti or os.urandom(8)
        return cti, formats.make_credential(self.key, self.kid, iss=self.iss, sub="r", cti=cti,
                                            nbf=self.nbf if nbf is None else nbf,
                                            exp=self.exp if exp is None else exp,
                                            rider_pub65=self.rider_pub, zones=list(zones))

    def code(self, cred, iat, ctr):
        return formats.qr_text(formats.make_auth_code(self.rider, cred, iat=iat, ctr=ctr))
