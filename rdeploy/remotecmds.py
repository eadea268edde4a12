"""What rdeploy adds for an IMAGE that is an http:// or https:// URL
(diskimage.remote reads it): --ca-file checked, the argument a library
call takes (an open HttpInput for a URL, the path otherwise), the name a
restore marker keeps (never a presigned URL's query string), and the
refusal of a required signature."""

import contextlib
import os

from diskimage.errors import SignatureError, UsageError
from diskimage.remote import is_url, open_input


def ca_file(args):
    """--ca-file's value (None when not given); it goes with a URL."""
    value = args.get("--ca-file")
    if value is not None and not is_url(args.get("IMAGE") or ""):
        raise UsageError("--ca-file goes with an https:// IMAGE (the CA "
                         "certificates its server's certificate is checked "
                         "against)")
    return value


@contextlib.contextmanager
def image_arg(args, key="IMAGE"):
    """IMAGE as a library call takes it: the open HttpInput of a URL
    (closed afterwards), else the path (or None) as it is."""
    image = args.get(key)
    if image is None or not is_url(image):
        ca_file(args)
        yield image
        return
    with open_input(image, ca_file=ca_file(args)) as source:
        yield source


def image_name(path):
    """How the restore marker names the image: "-", a URL as shown
    (without user, password or query string), or the absolute path."""
    if path == "-":
        return path
    if is_url(path):
        from diskimage.remote.urls import shown
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
