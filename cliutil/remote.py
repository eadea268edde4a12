"""What rdeploy and imgx share for an IMAGE that is an http:// or https://
URL (diskimage.remote reads it): --ca-file checked against the image
named, the argument a library call takes (an open HttpInput for a URL,
the path otherwise), and how a URL is named in words (never with its
user, password or query string: a presigned URL's query carries its
credentials)."""

import contextlib

from diskimage.errors import UsageError
from diskimage.remote import is_url, open_input


def shown(name):
    """`name` as messages say it: a URL without user, password and query,
    anything else as it is."""
    if isinstance(name, str) and is_url(name):
        from diskimage.remote.urls import shown as url_shown
        return url_shown(name)
    return name


def ca_file(args, *images):
    """--ca-file's value (None when not given); it goes with a URL among
    `images` (default: IMAGE)."""
    value = args.get("--ca-file")
    names = images or (args.get("IMAGE"),)
    if value is not None and not any(is_url(n or "") for n in names):
        raise UsageError("--ca-file goes with an https:// IMAGE (the CA "
                         "certificates its server's certificate is checked "
                         "against)")
    return value


@contextlib.contextmanager
def image_arg(args, key="IMAGE"):
    """args[key] as a library call takes it: the open HttpInput of a URL
    (closed afterwards), else the path (or None) as it is."""
    image = args.get(key)
    if image is None or not is_url(image):
        ca_file(args, image)
        yield image
        return
    with open_input(image, ca_file=ca_file(args, image)) as source:
        yield source
