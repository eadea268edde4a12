"""Ed25519 key files: one line of text each.

    secret:  rdeploy-ed25519-secret <base64 of the 32-byte seed> <comment>
    public:  rdeploy-ed25519 <base64 of the 32-byte public key> <comment>

The comment is the rest of the line (may be empty or hold spaces; no line
break).  The secret file is created with mode 0600.  A key id is the first
8 bytes of SHA-256 of the 32-byte public key, in hex (16 characters); it
names a key in signatures, in ``/etc/rdeploy/trusted/KEYID.pub`` and in
messages.
"""

import base64
import binascii
import dataclasses
import hashlib
import os

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from ..errors import (NO_SPACE_ERRNOS, InputError, NoSpaceError,
                      UsageError, no_space_left)
from .. import sighold
from ..host.partial import no_links, output_path

SECRET_TAG = "rdeploy-ed25519-secret"
PUBLIC_TAG = "rdeploy-ed25519"
KEY_BYTES = 32
#: A key file is one short line; anything longer is not one.
MAX_FILE = 4096

_RAW = {"encoding": serialization.Encoding.Raw,
        "format": serialization.PublicFormat.Raw}


def key_id(public_raw):
    """The 16 hex characters that name the public key `public_raw`."""
    return hashlib.sha256(public_raw).digest()[:8].hex()


@dataclasses.dataclass(frozen=True)
class PublicKey:
    raw: bytes
    comment: str = ""
    path: str = None

    @property
    def key_id(self):
        return key_id(self.raw)

    def verify(self, signature, message):
        """True when `signature` (64 bytes) signs `message` with this key."""
        try:
            ed25519.Ed25519PublicKey.from_public_bytes(self.raw).verify(
                signature, message)
        except InvalidSignature:
            return False
        return True

    def line(self):
        return _line(PUBLIC_TAG, self.raw, self.comment)

    def describe(self):
        """"KEYID comment" (the comment left out when empty)."""
        return f"{self.key_id} {self.comment}".rstrip()


@dataclasses.dataclass(frozen=True)
class SecretKey:
    seed: bytes = dataclasses.field(repr=False)
    comment: str = ""

    @classmethod
    def generate(cls, comment=""):
        private = ed25519.Ed25519PrivateKey.generate()
        return cls(private.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
            serialization.NoEncryption()), comment)

    def _private(self):
        return ed25519.Ed25519PrivateKey.from_private_bytes(self.seed)

    @property
    def public(self):
        raw = self._private().public_key().public_bytes(**_RAW)
        return PublicKey(raw, self.comment)

    def sign(self, message):
        return self._private().sign(message)

    def line(self):
        return _line(SECRET_TAG, self.seed, self.comment)


def _line(tag, raw, comment):
    return f"{tag} {base64.b64encode(raw).decode()} {comment}".rstrip() + "\n"


def check_comment(comment):
    if any(c in comment for c in "\r\n\0"):
        raise UsageError("--comment must be one line of text")
    return comment


def _read_line(path, what):
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE + 1)
    except FileNotFoundError:
        raise InputError(f"{path}: no such {what} file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a {what} file") \
            from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the {what} file: "
                         f"{exc.strerror}") from None
    try:
        text = data.decode()
    except UnicodeDecodeError:
        text = None
    lines = (text or "").splitlines()
    if text is None or len(data) > MAX_FILE or len(lines) != 1:
        raise InputError(f"{path}: not an rdeploy {what} file (one line "
                         f"expected)")
    return lines[0]


def _parse(path, tag, what):
    line = _read_line(path, what)
    word, _, rest = line.partition(" ")
    encoded, _, comment = rest.partition(" ")
    if word != tag:
        hint = ""
        if word == SECRET_TAG:
            hint = "; it is a secret key: give its .pub file"
        elif word == PUBLIC_TAG:
            hint = "; it is a public key: give the secret key file"
        raise InputError(f"{path}: not an rdeploy {what} file (it does not "
                         f"start with {tag}){hint}")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != KEY_BYTES:
        raise InputError(f"{path}: damaged {what} file (the key is not 32 "
                         f"bytes of base64)")
    return raw, comment


def load_public(path):
    """The PublicKey in the file `path` (InputError when it is not one)."""
    raw, comment = _parse(path, PUBLIC_TAG, "public key")
    try:
        ed25519.Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise InputError(f"{path}: damaged public key file") from None
    return PublicKey(raw, comment, os.fspath(path))


def load_secret(path):
    """The SecretKey in the file `path` (InputError when it is not one)."""
    raw, comment = _parse(path, SECRET_TAG, "secret key")
    return SecretKey(raw, comment)


def public_path(path):
    return os.fspath(path) + ".pub"


def _private_file(path, data, mode):
    """`data` written to a new private file beside `path`, created with
    `mode` (the secret's 0600 from the start: an fd opened while it is
    empty would read the key later), never through a symlink, fsynced;
    its name.  Nothing is left when this fails."""
    private = f"{path}.partial.{os.getpid()}.{os.urandom(4).hex()}"
    try:
        fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL |
                     os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as exc:
        raise _write_error(path, exc) from None
    try:
        with open(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        os.unlink(private)
        raise _write_error(path, exc) from None
    except BaseException:
        os.unlink(private)
        raise
    return private


def _name(private, path, replace):
    """Give the whole file `private` the name `path`: rename over it with
    `replace`, else link(2), which never replaces a file that appeared
    there meanwhile (InputError); where there are no hard links (FAT)
    checked, then renamed."""
    if replace:
        os.replace(private, path)
        return
    try:
        if no_links(lambda: os.link(private, path)):
            if os.path.lexists(path):
                raise FileExistsError
            os.rename(private, path)
    except FileExistsError:
        raise InputError(f"{path}: exists; keygen never overwrites a key "
                         f"(give --force to replace it)") from None


def _name_pair(made, names, replace):
    """Both private files `made` get their `names`, signals held: when
    the second cannot (out of space: a tmpfs counts every link(2) against
    its inodes; a file that appeared there), the first name is removed
    again (without `replace`: it is ours), so neither appears.  Then the
    directory is fsynced and both are committed (diskimage.sighold)."""
    with sighold.held():
        done = []
        try:
            for private, name in zip(made, names):
                try:
                    _name(private, name, replace)
                except OSError as exc:
                    raise _write_error(name, exc) from None
                done.append(name)
        except BaseException:
            if not replace:
                for name in done:
                    os.unlink(name)
            raise
        directory = os.open(os.path.dirname(os.path.abspath(names[0])),
                            os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        for name in names:
            sighold.committed(name)


def _write_error(path, exc):
    if exc.errno in NO_SPACE_ERRNOS:
        return NoSpaceError(f"{path}: cannot write: {no_space_left(exc)}; "
                            f"no key written")
    return InputError(f"{path}: cannot write: {exc.strerror}; no key "
                      f"written")


def write_keypair(path, comment="", force=False):
    """Generate a key pair; write the secret to `path` (mode 0600) and the
    public key to `path`.pub, neither over an existing file without
    `force` (InputError, before either is written).  The pair appears
    together or not at all: both are written whole (fsynced) to private
    files first, then given their names (:func:`_name_pair`), and the
    private files are removed, whatever failed.  (With `force` a rename
    of the public key that fails after the secret's leaves the new secret
    beside the old public key: renames in one directory fail only on a
    broken filesystem.)  Returns the PublicKey."""
    comment = check_comment(comment)
    path = os.fspath(path)
    for name in (path, public_path(path)):
        if os.path.lexists(name) and not force:
            raise InputError(f"{name}: exists; keygen never overwrites a "
                             f"key (give --force to replace it)")
    secret = SecretKey.generate(comment)
    public = secret.public
    names = [output_path(path, force), output_path(public_path(path), force)]
    made = []
    try:
        made.append(_private_file(names[0], secret.line().encode(), 0o600))
        made.append(_private_file(names[1], public.line().encode(), 0o644))
        _name_pair(made, names, force)
    finally:
        for private in made:
            if os.path.lexists(private):
                os.unlink(private)
    return dataclasses.replace(public, path=public_path(path))
