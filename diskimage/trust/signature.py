"""The signature of an image: a small JSON file beside it, ``IMAGE.sig``.

IMAGE is the path given (the first volume of a split image).  The file is
UTF-8 JSON, one object::

    {"format": "rdeploy-signature", "version": 1, "algorithm": "ed25519",
     "key_id": "<16 hex>", "root": "<64 hex>", "signature": "<base64>",
     "signed_at": "<ISO 8601 UTC>", "comment": "<the key's comment>"}

The signed message (86 bytes) is ``b"rdeploy image root v1\\0"`` (22
bytes), the 32 bytes of the image's root digest (format 1.1: SHA-256 over
the file header, the META record and the INDX record, whose entries carry
every chunk's BLAKE3-256 digest), then the 32 bytes of SHA-256 of the
notes: the canonical JSON of {"comment", "key_id", "signed_at"} (keys
sorted, separators "," and ":", no spaces, non-ASCII as UTF-8).  So the
signature answers for every byte of content and for who signed it when:
an edited `comment`, `signed_at` or `key_id` no longer verifies.
A signature is good when `key_id` names a trusted key, `root` is the
image's root digest and `signature` verifies by that key over it.
A format 1.0 image is never signed: its chunk checks are CRC-32.
An encrypted image is signed without its passphrase: its root digest is
over the sealed bytes and checked from the plain header, META, INDX and
trailer (diskimage.image.sealed.sealed_info).
"""

import base64
import binascii
import datetime
import hashlib
import json
import os
import re

from ..errors import SignatureError, UnsupportedError
from ..host.partial import partial_file

FORMAT = "rdeploy-signature"
VERSION = 1
ALGORITHM = "ed25519"
MESSAGE_PREFIX = b"rdeploy image root v1\0"
SUFFIX = ".sig"
#: A signature file is a few hundred bytes; a larger one is not one.
MAX_FILE = 64 * 1024
_HEX = re.compile(r"[0-9a-f]+")


def signature_path(image, signature=None):
    """Where the signature of `image` is: `signature` when given, else
    IMAGE.sig beside it."""
    return os.fspath(signature) if signature else os.fspath(image) + SUFFIX


#: The fields of the .sig file that the signature covers besides the root.
NOTES = ("comment", "key_id", "signed_at")


def notes_digest(sig):
    """SHA-256 of the canonical JSON of `sig`'s comment, key_id and
    signed_at (keys sorted, no spaces, UTF-8)."""
    notes = {name: sig[name] for name in NOTES}
    return hashlib.sha256(json.dumps(
        notes, sort_keys=True, separators=(",", ":"),
        ensure_ascii=False).encode()).digest()


def message(root, sig):
    """The bytes signed: prefix, the 32-byte root, the notes' digest."""
    return MESSAGE_PREFIX + root + notes_digest(sig)


def image_root(reader):
    """The root digest of the image open in `reader` (an ImageReader, which
    checked it against the trailer): the 32 bytes a signature signs."""
    return reader.root


def is_strong(reader):
    """True when the image's chunk digests are strong enough to sign
    (format 1.1 and later)."""
    return bool(reader.layout.strong)


def refuse_weak(reader, name):
    """UnsupportedError (exit 7) for a format 1.0 image, which `sign`
    refuses."""
    if not is_strong(reader):
        raise UnsupportedError(
            f"{name} is format {reader.version}, whose chunk checks are "
            f"CRC-32: convert it with imgx recompress before signing")


def make(root, secret, now=None):
    """The signature object (a dict) of root digest `root` by `secret`."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    public = secret.public
    sig = {"format": FORMAT, "version": VERSION, "algorithm": ALGORITHM,
           "key_id": public.key_id, "root": root.hex(), "signature": None,
           "signed_at": now.astimezone(datetime.timezone.utc)
           .strftime("%Y-%m-%dT%H:%M:%SZ"),
           "comment": public.comment}
    sig["signature"] = base64.b64encode(
        secret.sign(message(root, sig))).decode()
    return sig


def encode(signature):
    return (json.dumps(signature, indent=1, ensure_ascii=False) + "\n") \
        .encode()


def decode(data, path):
    """The signature object in the bytes `data` of the file `path`, every
    field checked for its type and form (SignatureError when not)."""
    def bad(why):
        return SignatureError(f"{path}: not a usable rdeploy signature "
                              f"({why})")
    if len(data) > MAX_FILE:
        raise bad("too large")
    try:
        sig = json.loads(data.decode())
    except (UnicodeDecodeError, ValueError):
        raise bad("not JSON") from None
    if not isinstance(sig, dict) or sig.get("format") != FORMAT:
        raise bad(f"no \"format\": \"{FORMAT}\"")
    if sig.get("version") != VERSION:
        raise bad(f"version {sig.get('version')!r}; this tool reads "
                  f"version {VERSION}")
    if sig.get("algorithm") != ALGORITHM:
        raise bad(f"algorithm {sig.get('algorithm')!r}, not {ALGORITHM}")
    for name, size in (("key_id", 16), ("root", 64)):
        value = sig.get(name)
        if not isinstance(value, str) or len(value) != size or \
                not _HEX.fullmatch(value):
            raise bad(f"{name} is not {size} hex digits")
    try:
        raw = base64.b64decode(sig.get("signature") or "", validate=True)
    except (binascii.Error, ValueError, TypeError):
        raw = b""
    if len(raw) != 64:
        raise bad("the signature is not 64 bytes of base64")
    for name in ("signed_at", "comment"):
        if not isinstance(sig.get(name), str):
            raise bad(f"{name} is missing or not text")
    return dict(sig, raw=raw)


def read(path, image):
    """The checked signature object of the file `path`; SignatureError
    when there is none (`image` is unsigned) or it is not one."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE + 1)
    except FileNotFoundError:
        raise SignatureError(f"{image}: not signed (no signature file "
                             f"{path})") from None
    except OSError as exc:
        raise SignatureError(f"{path}: cannot read the signature: "
                             f"{exc.strerror}") from None
    return decode(data, path)


def write(path, signature):
    """Write the signature file `path` by way of PATH.partial (replacing
    an older signature when the new one is whole)."""
    with partial_file(path, replace=True, mode=0o644) as f:
        f.write(encode(signature))


def check(sig, root, keys, image):
    """The key of `keys` whose signature `sig` is, over root digest `root`;
    SignatureError (naming `image`) when none is."""
    by_id = {key.key_id: key for key in keys}
    key = by_id.get(sig["key_id"])
    if key is None:
        trusted = ", ".join(sorted(by_id)) or "none"
        raise SignatureError(
            f"{image}: signed by key {sig['key_id']}, which is not trusted "
            f"here (trusted: {trusted})")
    if sig["root"] != root.hex():
        raise SignatureError(
            f"{image}: the signature is not for this image: it names root "
            f"{sig['root']}, the image's root is {root.hex()} (the image "
            f"changed, or the signature belongs to another one)")
    if key.verify(sig["raw"], message(root, sig)):
        return key
    raise SignatureError(f"{image}: bad signature by key {key.key_id} (the "
                         f"signature file is damaged, edited or forged)")


def sign(reader, name, secret, path):
    """Sign the image open in `reader` (its root checked at open) with
    `secret`; write the signature to `path`.  A 1.0 image is refused
    (UnsupportedError, exit 7).  Returns the signature object."""
    refuse_weak(reader, name)
    sig = make(image_root(reader), secret)
    write(path, sig)
    return sig


def sign_file(image, secret, path):
    """Sign the image file `image` with `secret` into `path`: an encrypted
    image by the root sealed_info checks (no passphrase needed: the root
    is over the sealed bytes), any other through ImageReader (`sign`).
    Returns the signature object."""
    from ..image.reader import ImageReader
    from ..image.sealed import is_encrypted, sealed_info
    if is_encrypted(image):
        sig = make(bytes.fromhex(sealed_info(image)["root"]), secret)
        write(path, sig)
        return sig
    with ImageReader(image) as reader:
        return sign(reader, image, secret, path)


def verify(reader, name, keys, path):
    """(key, signature object, root) of the image open in `reader`, whose
    signature file is `path`, by one of `keys`; SignatureError when the
    image is unsigned, format 1.0, or its signature is not good."""
    if not is_strong(reader):
        raise SignatureError(
            f"{name} is format {reader.version}, whose chunk checks are "
            f"CRC-32: it cannot carry a signature (convert it with imgx "
            f"recompress, then sign it)")
    sig = read(path, name)
    root = image_root(reader)
    return check(sig, root, keys, name), sig, root
