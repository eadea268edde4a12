"""Which keys this machine trusts, and the check a restore makes first.

Boot media made with ``bootdisk --trust=PUBKEY`` carry each key as
``/etc/rdeploy/trusted/KEYID.pub`` (the environment variable
RDEPLOY_TRUSTED_DIR names another directory, for tests).  When that
directory holds keys, every restore requires a signature by one of them;
no option turns that off, and a key given with --require-signature must
be one of them (it narrows the choice, never widens it).  A file there
that is not a good public key, or whose name is not its key id, refuses
every restore: the check fails closed.

Before a restore with a required signature writes anything
(:func:`check_image`): the image is opened through its index (the root
digest checked against the trailer), the signature is checked against
that root, and every chunk is read and checked against the signed index.
The restore itself then reads the image again as a stream, with every
record required to equal the signed index entry before it is written
(``RecordStream(expected=...)``) and the stream's header and metadata
required to equal those checked (:func:`check_stream`).
"""

import os

from ..errors import InputError, SignatureError
from ..image.reader import ImageReader
from ..pipeline import ordered_map
from . import keys as keyfiles
from . import signature as signatures

TRUSTED_DIR = "/etc/rdeploy/trusted"
ENV = "RDEPLOY_TRUSTED_DIR"
#: More than this many files in the trusted directory is not a key set.
MAX_KEYS = 256


def trusted_dir():
    return os.environ.get(ENV) or TRUSTED_DIR


def installed_keys(directory=None):
    """The PublicKeys in the trusted directory (empty when it does not
    exist or holds no .pub file); SignatureError for any file there that
    is not KEYID.pub holding the key KEYID."""
    directory = directory or trusted_dir()
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise SignatureError(f"{directory}: cannot read the trusted keys: "
                             f"{exc.strerror}; no restore is allowed") \
            from None
    if len(names) > MAX_KEYS:
        raise SignatureError(f"{directory}: {len(names)} files, more than "
                             f"{MAX_KEYS} trusted keys; no restore is "
                             f"allowed")
    found = []
    for name in names:
        path = os.path.join(directory, name)
        try:
            key = keyfiles.load_public(path)
        except InputError as exc:
            raise SignatureError(f"{exc}: in the trusted keys; no restore "
                                 f"is allowed") from None
        if name != f"{key.key_id}.pub":
            raise SignatureError(f"{path}: holds key {key.key_id}, so its "
                                 f"name must be {key.key_id}.pub; no restore "
                                 f"is allowed")
        found.append(key)
    return found


def trusted_keys(explicit=()):
    """The keys a signature must be by: those in the files `explicit`
    (--require-signature, --pubkey) and the installed ones.  Without
    installed keys: the explicit ones (none: no signature is required).
    With installed keys: those, or the explicit ones when each of them is
    installed too (SignatureError naming the first that is not)."""
    given = [keyfiles.load_public(path) for path in explicit]
    installed = installed_keys()
    if not installed:
        return given
    ids = {key.key_id for key in installed}
    for key in given:
        if key.key_id not in ids:
            raise SignatureError(
                f"{key.path}: key {key.key_id} is not trusted by this "
                f"environment ({trusted_dir()}: {', '.join(sorted(ids))})")
    return given or installed


def refuse_pipe(image):
    if image == "-":
        raise SignatureError("a signature can only be checked before "
                             "writing on an image file, not a pipe")


def refuse_stream(what):
    """A restore from a stream (`what`: "a multicast session") where a
    signature is required (bootdisk --trust's keys installed): refused
    before it joins, as a pipe is."""
    if installed_keys():
        raise SignatureError(
            f"this environment restores only signed images ({trusted_dir()}"
            f"), and a signature can only be checked before writing on an "
            f"image file, not {what}")


def _check_chunk(reader):
    def check(number):
        reader.read_entry(number)
        return reader.entries[number].length
    return check


def check_image(path, keys, signature=None, threads=1, progress=None,
                chunks=True, passphrase=None):
    """Everything a restore with a required signature checks before its
    first write (without `chunks`, as for a dry run: all but reading every
    chunk); returns {"key", "signature", "root", "entries", "header",
    "metadata"} for the restore (see check_stream).  Raises SignatureError
    (unsigned, not good, format 1.0, a pipe), CorruptImageError (a chunk,
    the index or the trailer damaged) or InputError.  `passphrase`: as
    ImageReader takes it, for an encrypted image."""
    refuse_pipe(path)
    sig_path = signatures.signature_path(path, signature)
    with ImageReader(path, passphrase=passphrase) as reader:
        key, sig, root = signatures.verify(reader, path, keys, sig_path)
        total = sum(entry.length for entry in reader.entries)
        done = 0
        numbers = range(len(reader.entries) if chunks else 0)
        for length in ordered_map(_check_chunk(reader), numbers, threads):
            done += length
            if progress:
                progress(done, total)
        return {"key": key, "signature": sig, "root": root,
                "entries": reader.entries, "header": reader.header,
                "metadata": reader.metadata}


def check_stream(stream, checked, image):
    """The restore's RecordStream `stream` must begin with the header and
    metadata that `checked` (check_image's result) found signed: the file
    must not have changed in between (SignatureError)."""
    if stream.header != checked["header"] or \
            stream.metadata != checked["metadata"]:
        raise SignatureError(f"{image}: changed after its signature was "
                             f"checked; nothing written")
