"""What rdeploy adds for an IMAGE that is an http:// or https:// URL
(diskimage.remote reads it; cliutil.remote has what imgx shares): the
name a restore marker keeps (never a presigned URL's query string), and
the refusal of a required signature."""

import os

from cliutil.remote import (ca_file, image_arg, retry_note,  # noqa: F401
                            shown)
from diskimage.errors import SignatureError
from diskimage.remote import is_url


def image_name(path):
    """How the restore marker names the image: "-", a URL as shown
    (without user, password or query string), or the absolute path."""
    if path == "-":
        return path
    if is_url(path):
        return shown(path)
    return os.path.abspath(path)


def refuse_signature(args, option):
    """A required signature with a URL is refused, as with a pipe: the
    signature check reads the image whole before the restore's first
    write, and a URL is not read twice."""
    if is_url(args.get("IMAGE") or ""):
        raise SignatureError(f"{option}: a signature can only be checked "
                             f"on an image file, not a URL; download the "
                             f"image and its .sig, then give the file")
