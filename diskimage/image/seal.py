"""Encrypted images (format 1.1, header flag ENCRYPTED): the Sealer.

One passphrase gives one master key through a memory-hard KDF (scrypt,
written with n=2**17, r=8, p=1; Argon2id is read too) over 16 random salt
bytes; HKDF-SHA256 splits it into three keys, one per purpose::

    data    AES-256-GCM key of every DATA payload, the metadata, the index
    digest  BLAKE3 key of the content digests (they say nothing without it)
    check   16 bytes stored in the clear: a wrong passphrase is told apart
            from damage before anything is decrypted or written

Every sealed box is ``nonce (12 random bytes) | ciphertext | tag (16)``.
The associated data binds each box to its place:

    metadata  the 64 file header bytes
    DATA      b"RDI1.1 DATA" + "<HQQB" (area, disk_offset, length, codec)
    INDX      b"RDI1.1 INDX" + SHA-256(file header | whole META record)

so a payload moved to another record fails its tag, the index (which lists
every record, its place and its digest) cannot be rewritten or taken from
another image, and the trailer's root digest covers header, META and INDX.

The KDF parameters come from the image, which may be hostile: they are
capped on read (at most 1 GiB of memory, bounded work) before any key is
derived.  The library never prompts: `passphrase` is bytes, or a
zero-argument callable returning bytes, called only when needed.
"""

import base64
import binascii
import hashlib
import hmac
import json
import os
import struct

import blake3
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from ..errors import CorruptImageError, PassphraseError, UnsupportedError

CIPHER = "aes-256-gcm"
NONCE = 12
TAG = 16
OVERHEAD = NONCE + TAG          # bytes a sealed box adds to what it holds
SALT = 16
CHECK = 16

#: What a new image is written with (128 MiB of memory, about 0.5 s here).
DEFAULT_KDF = {"name": "scrypt", "n": 2 ** 17, "r": 8, "p": 1}

#: Caps on the KDF parameters an image may ask for (it may be hostile).
MAX_KDF_MEMORY = 1 << 30
MAX_SCRYPT_P = 16
MAX_ARGON2_ITERATIONS = 16
MAX_ARGON2_LANES = 16
#: The smallest work accepted: images are only written with DEFAULT_KDF,
#: but tests make small ones (a weak KDF hurts only its own image).
MIN_KDF_MEMORY = 1 << 20

DATA_AAD = b"RDI1.1 DATA"
DATA_FIELDS = struct.Struct("<HQQB")
INDEX_AAD = b"RDI1.1 INDX"


def _b64(raw):
    return base64.b64encode(raw).decode("ascii")


def _unb64(text, what, size=None):
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (AttributeError, UnicodeEncodeError, binascii.Error):
        raise CorruptImageError(f"encryption envelope: {what} is not "
                                f"base64", offset=64) from None
    if size is not None and len(raw) != size:
        raise CorruptImageError(f"encryption envelope: {what} is "
                                f"{len(raw)} bytes, not {size}", offset=64)
    return raw


def _int(kdf, key, low, high):
    value = kdf.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or \
            not low <= value <= high:
        raise UnsupportedError(
            f"encrypted image asks for a KDF {key} of {value!r}; this tool "
            f"accepts {low} to {high}")
    return value


def checked_kdf(kdf):
    """The KDF parameters of an envelope, refused beyond the caps (exit 7)
    before any memory is spent on them."""
    if not isinstance(kdf, dict):
        raise CorruptImageError("encryption envelope: kdf is not an object",
                                offset=64)
    name = kdf.get("name")
    if name == "scrypt":
        n = _int(kdf, "n", 2, 2 ** 24)
        if n & (n - 1):
            raise UnsupportedError(f"encrypted image asks for scrypt n={n}, "
                                   f"not a power of two")
        r = _int(kdf, "r", 1, 64)
        p = _int(kdf, "p", 1, MAX_SCRYPT_P)
        if not MIN_KDF_MEMORY <= 128 * n * r <= MAX_KDF_MEMORY:
            raise UnsupportedError(
                f"encrypted image asks scrypt for {128 * n * r} bytes of "
                f"memory; this tool accepts {MIN_KDF_MEMORY} to "
                f"{MAX_KDF_MEMORY}")
        return {"name": name, "n": n, "r": r, "p": p}
    if name == "argon2id":
        memory = _int(kdf, "memory_kib", MIN_KDF_MEMORY >> 10,
                      MAX_KDF_MEMORY >> 10)
        return {"name": name, "memory_kib": memory,
                "iterations": _int(kdf, "iterations", 1,
                                   MAX_ARGON2_ITERATIONS),
                "lanes": _int(kdf, "lanes", 1, MAX_ARGON2_LANES)}
    raise UnsupportedError(f"encrypted image uses the KDF {name!r}; this "
                           f"tool reads scrypt and argon2id")


def _master(passphrase, salt, kdf):
    if kdf["name"] == "scrypt":
        return Scrypt(salt=salt, length=32, n=kdf["n"], r=kdf["r"],
                      p=kdf["p"]).derive(passphrase)
    try:
        from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
    except ImportError:
        raise UnsupportedError("this image's key comes from Argon2id, which "
                               "needs cryptography 44 or newer") from None
    return Argon2id(salt=salt, length=32, iterations=kdf["iterations"],
                    lanes=kdf["lanes"],
                    memory_cost=kdf["memory_kib"]).derive(passphrase)


def _subkey(master, purpose, size=32):
    return HKDF(algorithm=hashes.SHA256(), length=size, salt=None,
                info=b"rdeploy 1.1 " + purpose).derive(master)


def _passphrase_bytes(passphrase):
    if callable(passphrase):
        passphrase = passphrase()
    if isinstance(passphrase, str):
        passphrase = passphrase.encode()
    if not isinstance(passphrase, (bytes, bytearray)):
        raise TypeError("a passphrase is bytes (or a callable giving them)")
    return bytes(passphrase)


def read_envelope(payload):
    """The plaintext part of an encrypted image's META payload: a dict
    {"cipher", "kdf", "salt", "check"} (kdf checked against the caps), what
    `info` may show without the passphrase.  CorruptImageError when the
    payload is not an envelope."""
    try:
        outer = json.loads(payload.decode())
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise CorruptImageError("encryption envelope is not valid JSON",
                                offset=64) from None
    enc = outer.get("encryption") if isinstance(outer, dict) else None
    if not isinstance(enc, dict) or not isinstance(outer.get("sealed"), str):
        raise CorruptImageError("encrypted image without an encryption "
                                "envelope in its metadata", offset=64)
    if enc.get("cipher") != CIPHER:
        raise UnsupportedError(f"encrypted image uses the cipher "
                               f"{enc.get('cipher')!r}; this tool reads "
                               f"{CIPHER}")
    return {"cipher": CIPHER, "kdf": checked_kdf(enc.get("kdf")),
            "salt": _unb64(enc.get("salt"), "salt", SALT),
            "check": _unb64(enc.get("check"), "check", CHECK),
            "sealed": _unb64(outer["sealed"], "sealed metadata")}


def describe_kdf(kdf):
    """One line for `info`: "scrypt n=131072 r=8 p=1"."""
    return " ".join([kdf["name"]] + [f"{k}={v}" for k, v in kdf.items()
                                     if k != "name"])


class Sealer:
    """The keys of one encrypted image and the boxes made with them.
    Thread-safe: AESGCM and BLAKE3 objects are made per call or immutable."""

    def __init__(self, master, salt, kdf):
        self.salt = salt
        self.kdf = kdf
        self._aead = AESGCM(_subkey(master, b"data"))
        self.digest_key = _subkey(master, b"digest")
        self.check = _subkey(master, b"check", CHECK)

    @classmethod
    def create(cls, passphrase, kdf=None):
        """A sealer for a new image: a new random salt (so a new key, also
        for the same passphrase), the KDF of DEFAULT_KDF unless given."""
        kdf = checked_kdf(dict(DEFAULT_KDF if kdf is None else kdf))
        passphrase = _passphrase_bytes(passphrase)
        salt = os.urandom(SALT)
        return cls(_master(passphrase, salt, kdf), salt, kdf)

    @classmethod
    def open(cls, envelope, header_raw, passphrase, name="image"):
        """The sealer of an existing image from its META payload (bytes)
        or read_envelope's dict; PassphraseError "NAME: wrong passphrase"
        when the check bytes differ.  `header_raw` is not needed to derive
        keys (kept for symmetry with metadata())."""
        if not isinstance(envelope, dict):
            envelope = read_envelope(envelope)
        passphrase = _passphrase_bytes(passphrase)
        sealer = cls(_master(passphrase, envelope["salt"], envelope["kdf"]),
                     envelope["salt"], envelope["kdf"])
        if not hmac.compare_digest(sealer.check, envelope["check"]):
            raise PassphraseError(f"{name}: wrong passphrase")
        return sealer

    # -- boxes ---------------------------------------------------------

    def _seal(self, data, aad):
        """nonce | ciphertext | tag, written in place where cryptography
        can (encrypt_into, 43+: no copy of the chunk, which was a third of
        the cost)."""
        nonce = os.urandom(NONCE)
        if not hasattr(self._aead, "encrypt_into"):
            return nonce + self._aead.encrypt(nonce, bytes(data), aad)
        box = bytearray(NONCE + len(data) + TAG)
        box[:NONCE] = nonce
        self._aead.encrypt_into(nonce, data, aad, memoryview(box)[NONCE:])
        return box

    def _open(self, box, aad):
        """The plaintext, or None when the box fails authentication."""
        if len(box) < OVERHEAD:
            return None
        view = memoryview(box)
        try:
            return self._aead.decrypt(view[:NONCE], view[NONCE:], aad)
        except InvalidTag:
            return None

    def envelope(self, meta_json, header_raw):
        """The META payload of an encrypted image: the plaintext envelope
        around the real metadata JSON (bytes), sealed with the header."""
        outer = {"encryption": {"cipher": CIPHER, "kdf": self.kdf,
                                "salt": _b64(self.salt),
                                "check": _b64(self.check)},
                 "sealed": _b64(self._seal(meta_json, bytes(header_raw)))}
        return json.dumps(outer, sort_keys=True,
                          separators=(",", ":")).encode()

    def metadata(self, payload, header_raw):
        """The real metadata (dict) of a META payload; CorruptImageError
        "metadata fails authentication" when header or envelope changed."""
        sealed = payload["sealed"] if isinstance(payload, dict) else \
            read_envelope(payload)["sealed"]
        plain = self._open(sealed, bytes(header_raw))
        if plain is None:
            raise CorruptImageError("metadata fails authentication",
                                    offset=64)
        try:
            meta = json.loads(plain.decode())
        except (UnicodeDecodeError, ValueError, RecursionError):
            meta = None
        if not isinstance(meta, dict):
            raise CorruptImageError("sealed metadata is not a JSON object",
                                    offset=64)
        return meta

    @staticmethod
    def _data_aad(area, disk_offset, length, codec):
        return DATA_AAD + DATA_FIELDS.pack(area, disk_offset, length, codec)

    def seal_chunk(self, area, disk_offset, length, codec, stored):
        """A DATA payload: the stored (compressed) bytes sealed to their
        place on the disk and their codec."""
        return self._seal(stored, self._data_aad(area, disk_offset, length,
                                                 codec))

    def open_chunk(self, fields, stored, offset=None, chunk=None):
        """The compressed bytes of a sealed DATA payload (`fields`: its
        record header as a dict)."""
        plain = self._open(stored, self._data_aad(
            fields["area"], fields["disk_offset"], fields["length"],
            fields["codec"]))
        if plain is None:
            raise CorruptImageError(
                "chunk fails authentication (altered, moved or from another "
                "image)", offset=offset, chunk=chunk)
        return plain

    @staticmethod
    def _index_aad(header_raw, meta_raw):
        return INDEX_AAD + hashlib.sha256(bytes(header_raw) +
                                          bytes(meta_raw)).digest()

    def seal_index(self, payload, header_raw, meta_raw):
        """The INDX payload of an encrypted image (`meta_raw`: the whole
        META record, header and payload)."""
        return self._seal(payload, self._index_aad(header_raw, meta_raw))

    def open_index(self, payload, header_raw, meta_raw, offset=None):
        plain = self._open(payload, self._index_aad(header_raw, meta_raw))
        if plain is None:
            raise CorruptImageError("index fails authentication",
                                    offset=offset)
        return plain

    def digest(self, data):
        """The content digest of a chunk of this image: BLAKE3-256 keyed
        with the digest key (one thread: callers run on all cores)."""
        return blake3.blake3(data, key=self.digest_key,
                             max_threads=1).digest()
