# offgate.cose on MicroPython: COSE_Sign1 structure rejects, header rules, ES256 verification.
# Vectors were signed on the host with `cryptography` (P-256 key, ECDSA/SHA-256, r||s).
from binascii import unhexlify as H

from offgate.codec import cbor
from offgate import cose

PUB = (
    "04471c3e758c4904285bba7e53118ed0f524adeb0757d25bd2f8e7b0d76dfa714cdd520f7aca8a8b"
    "917acc37f51de8f0c9bbe3ad858382e702dc25a12d09f7a858"
)
PUB_C = "02471c3e758c4904285bba7e53118ed0f524adeb0757d25bd2f8e7b0d76dfa714c"
PUB_OTHER = (
    "0427dc812de9374f35b5ff02901dd3f0225bddad4dafed3f1dfcc068c9e0f5ab7b8ed95e95d91343"
    "5e93e5ac18196c1eb88df7156b3ed0f3cc7f9095857eb0ffde"
)
GOOD = (
    "d2844da2012604486b69642d70726f74a04d68656c6c6f207061796c6f616458407dc9ab8236f3c6"
    "ba90a0250f721994cb7448f4bfb4f9047b2f6c317e719d5b7964b1b81e48a4fc398224c2dc6c55a6"
    "3d66b5e3c88e39ab06134a196c8a78e99a"
)
GOOD_UNTAGGED = (
    "8443a10126a043a101025840c528ea05c5b01df4106b0875d0eb69d30c1e4879fbe056204e12f173"
    "cf0cfa92ebf7fed779aef7e4379ebb85d55701eec53e9ea35b83cd8949b1af50e6130ea4"
)
NONCANON_PROT = (
    "d28444a1013806a041785840b16a4aa93e19b03cd748188749773763d0c64103c9c32759c539255c"
    "eca6fae2fa6bb21a63c79bc025318671b66ad81d4b91f89706c52d4774331f13b16612d5"
)
ES384 = (
    "d28444a1013822a0417858408224ce20662b37a2396542c09e2c8452a4eaf0acdf22ec4496de546d"
    "2bfbd9febe92272aaadf48e2ff759fd99d67080750c51c556260deb6e4330673fc6eb688"
)
NO_ALG = (
    "d28444a104416ba041785840a6ed0aeb9e295c4445a396b3fe0b14d74337631a30b946c6a0832b20"
    "4c506c065d458c4fd34fa7bf29ae6d40ad4f780ec7f6da865204c79ab98205da399ab237"
)
EMPTY_PROT_UALG = (
    "d28440a1012641785840d2be6e1bd6be520b5200999bc26007c360531f78bec5e11ca5397f9add97"
    "696481892bd56a1f8bb4a6e6de265c6dd02746257a215885cc005c07a058367710fd"
)
UALG_ONLY = (
    "d28444a104416ba101264178584019ea88a94cd8226e41ccd6c75fca1db2c8f3ade49f16349cce07"
    "6810122944e791cc1060c7eb004365052329c49e5a2b77a0e5f27d466d6bd2bc1aa14894f67a"
)
ALG_TEXT = (
    "d28448a101654553323536a041785840c9709825da43337bbc2c71cdf96ea8a01842c28e210dce4e"
    "830ae63ff86c93a7de760df06003977407c46947f8776ea1c216773f6e0f723b1b468871c186776d"
)
KID_BOTH = (
    "d28446a20126044150a104415541785840d0cc745daa9bd2b4fe3461e371c5d851bacea535200fd0"
    "36d8b93fbda2ba27bcddf9a6db44d6d6b2063a498f5964ca9c63349ea964b436fc00e51cddee73d8"
    "2c"
)
KID_UNPROT = (
    "d28443a10126a1044155417858409d7f07c745cb759a9f35a85e83953c83210ea54189d800b338aa"
    "68c41878cd9d5302c07fa2e859ac79a23b8a7cc4f7f083e372db4209de3c00f3cf73f7ea233f"
)


def _raises(fn, exc, *a):
    try:
        r = fn(*a)
    except exc as e:
        return e
    raise AssertionError("no %s, got %r" % (exc.__name__, r))


def _sign1(prot=b"\xa1\x01\x26", uhdr=None, payload=b"p", sig=b"\x00" * 64, tag=b"\xd2"):
    return tag + cbor.dumps([prot, uhdr if uhdr is not None else {}, payload, sig])


def test_exception_classes():
    for c in (cose.Malformed, cose.BadAlgorithm, cose.BadSignature):
        assert issubclass(c, ValueError)
    assert not issubclass(cose.BadSignature, cose.BadAlgorithm)


def test_parse_fields():
    s = cose.sign1_parse(H(GOOD))
    assert s.protected == H("a2012604486b69642d70726f74")
    assert s.phdr == {1: -7, 4: b"kid-prot"}
    assert s.uhdr == {}
    assert s.payload == b"hello payload"
    assert len(s.signature) == 64
    assert s.alg == -7 and s.kid == b"kid-prot"
    u = cose.sign1_parse(H(GOOD_UNTAGGED))
    assert u.alg == -7 and u.kid is None and u.payload == b"\xa1\x01\x02"


def test_parse_accepts_memoryview_and_bytearray():
    assert cose.sign1_parse(memoryview(H(GOOD))).payload == b"hello payload"
    assert cose.sign1_parse(bytearray(H(GOOD))).payload == b"hello payload"


def test_empty_protected():
    s = cose.sign1_parse(_sign1(prot=b""))
    assert s.phdr == {} and s.alg is None and s.protected == b""


def test_kid_precedence():
    assert cose.sign1_parse(H(KID_BOTH)).kid == b"P"
    assert cose.sign1_parse(H(KID_UNPROT)).kid == b"U"


def test_sig_structure_exact_bytes():
    s = cose.sign1_parse(H(NONCANON_PROT))
    assert s.protected == H("a1013806") and s.alg == -7
    assert cose.sig_structure(s) == b"\x84\x6aSignature1\x44\xa1\x01\x38\x06\x40\x41x"


def test_structure_rejects():
    bad = [
        b"", b"\xd2", b"\x00", b"\xd2\x00", b"\xd2\xa0",  # not an array
        b"\xd2" + cbor.dumps([b"", {}, b""]),  # 3 elements
        b"\xd2" + cbor.dumps([b"", {}, b"", b"", b""]),  # 5 elements
        _sign1(prot={1: -7}),  # protected is a map, not a bstr
        _sign1(prot="x"), _sign1(prot=None),
        _sign1(uhdr=[]), _sign1(uhdr=b""),  # unprotected not a map
        _sign1(payload=None),  # detached payload
        _sign1(payload="p"), _sign1(payload=[]),
        _sign1(sig=None), _sign1(sig="s" * 64), _sign1(sig=[]),
        _sign1() + b"\x00",  # trailing byte
        _sign1(tag=b"\xd1"), _sign1(tag=b"\xd8\x62"), _sign1(tag=b"\xc0"),  # other tags
        _sign1(tag=b"\xd2\xd2"),  # doubled tag
        _sign1(prot=b"\x80"), _sign1(prot=b"\x01"),  # protected not a map
        _sign1(prot=b"\xa1\x01\x26\x00"),  # protected has trailing bytes
        _sign1(prot=b"\xa2\x01\x26\x01\x26"),  # duplicate label
        _sign1(prot=b"\xa1\x01\xf9\x00\x00"),  # float inside
        _sign1(uhdr={4: cbor.Tag(18, b"k")}),  # tag inside the structure
        _sign1(prot=b"\xa2\x01\x26\x02\x81\x04"),  # crit
        _sign1(prot=b"\xa2\x01\x26\x04\x61k"), _sign1(uhdr={4: 5}),  # kid not a bstr
        _sign1(uhdr={1: -7}),  # alg in both headers
        b"\xd2\x9f" + cbor.dumps(b"")[0:1] + b"\xa0\x40\x40\xff",  # indefinite array
    ]
    for i, b in enumerate(bad):
        e = _raises(cose.sign1_parse, ValueError, b)
        assert not isinstance(e, (cose.BadAlgorithm, cose.BadSignature)), i
    _raises(cose.sign1_parse, ValueError, 5)


def test_nontag_shortest_tag18_accepted():
    b = H(GOOD)
    assert cose.sign1_parse(b"\xd8\x12" + b[1:]).payload == b"hello payload"


def test_verify_good():
    assert cose.sign1_verify(H(GOOD), H(PUB)) == b"hello payload"
    assert cose.sign1_verify(H(GOOD), H(PUB_C)) == b"hello payload"
    assert cose.sign1_verify(H(GOOD_UNTAGGED), H(PUB)) == b"\xa1\x01\x02"
    assert cose.sign1_verify(H(NONCANON_PROT), H(PUB)) == b"x"
    assert cose.sign1_verify(H(KID_BOTH), bytearray(H(PUB))) == b"x"


def test_verify_with_parsed_key():
    from offgate import ecdsa
    k = ecdsa.parse_public_key(H(PUB))
    assert cose.sign1_verify(H(GOOD), k) == b"hello payload"
    s = cose.sign1_parse(H(GOOD))
    assert cose.verify_parsed(s, k) is True
    assert cose.verify_parsed(s, ecdsa.parse_public_key(H(PUB_OTHER))) is False
    assert cose.verify_parsed(cose.sign1_parse(H(ES384)), k) is False


def test_verify_bad_alg():
    for v in (ES384, NO_ALG, UALG_ONLY, EMPTY_PROT_UALG, ALG_TEXT):
        e = _raises(cose.sign1_verify, cose.BadAlgorithm, H(v), H(PUB))
        assert "alg" in str(e)


def test_verify_bad_signature():
    e = _raises(cose.sign1_verify, cose.BadSignature, H(GOOD), H(PUB_OTHER))
    assert "signature" in str(e)
    b = bytearray(H(GOOD))
    b[-1] ^= 1
    _raises(cose.sign1_verify, cose.BadSignature, bytes(b), H(PUB))
    b = bytearray(H(GOOD))
    b[20] ^= 0x20  # inside the payload
    _raises(cose.sign1_verify, cose.BadSignature, bytes(b), H(PUB))
    s = cose.sign1_parse(H(GOOD))
    for sig in (b"", s.signature[:63], s.signature + b"\x00", b"\x00" * 64, b"\xff" * 64):
        _raises(cose.sign1_verify, cose.BadSignature, _sign1(prot=s.protected, payload=s.payload, sig=sig),
                H(PUB))


def test_verify_malformed_and_bad_key():
    _raises(cose.sign1_verify, ValueError, H(GOOD) + b"\x00", H(PUB))
    _raises(cose.sign1_verify, ValueError, H(GOOD)[:-1], H(PUB))
    _raises(cose.sign1_verify, ValueError, _sign1(payload=None), H(PUB))
    for key in (b"", H(PUB)[:64], b"\x04" + b"\x00" * 64, b"\x05" + H(PUB)[1:], b"\x02" * 33, b"\x00"):
        _raises(cose.sign1_verify, ValueError, H(GOOD), key)
