"""``--trust=PUBKEY``: the public keys an imaging environment trusts.

Each key goes into the initramfs as ``/etc/rdeploy/trusted/KEYID.pub``
(diskimage.trust.policy.TRUSTED_DIR), the public key file as rdeploy
keygen wrote it.  The environment's rdeploy finds them there and then
restores only images signed by one of them; nothing on the medium or the
kernel command line turns that off.  `bootdisk info` reads the keys back
from the initramfs itself.
"""

from diskimage.trust import keys as keyfiles
from diskimage.trust.policy import TRUSTED_DIR

DIRECTORY = TRUSTED_DIR.strip("/")


def load(paths):
    """The PublicKeys of the files `paths` (InputError for one that is not
    a public key), each key once."""
    found = {}
    for path in paths:
        key = keyfiles.load_public(path)
        found.setdefault(key.key_id, key)
    return list(found.values())


def add(tree, keys):
    """Put `keys` into the initramfs tree; returns what the manifest
    says of them."""
    if keys:
        tree.directory(DIRECTORY)
    for key in keys:
        tree.file(f"{DIRECTORY}/{key.key_id}.pub", key.line().encode())
    return [{"key_id": key.key_id, "comment": key.comment} for key in keys]


def read(files):
    """The trusted keys in an initramfs whose files are `files` (name ->
    bytes): [{"key_id", "comment"}], from the key files themselves."""
    keys = []
    for name in sorted(files):
        if name.startswith(f"{DIRECTORY}/") and name.endswith(".pub"):
            words = files[name].decode(errors="replace").split(" ", 2)
            comment = words[2].strip() if len(words) > 2 else ""
            keys.append({"key_id": name[len(DIRECTORY) + 1:-4],
                         "comment": comment})
    return keys
