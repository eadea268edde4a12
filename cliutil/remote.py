"""What rdeploy and imgx share for an IMAGE that is an http:// or https://
URL (diskimage.remote reads it): --ca-file checked against the image
named, the argument a library call takes (an open HttpInput for a URL,
the path otherwise), and how a URL is named in words (never with its
user, password or query string: a presigned URL's query carries its
credentials)."""

import contextlib
import sys

from cliutil.text import safe

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
    """--ca-file's value (None when not given); it goes with an https://
    URL among `images` (default: IMAGE): with a file or an http:// URL it
    would be silently ignored, so it is a usage error."""
    value = args.get("--ca-file")
    names = images or (args.get("IMAGE"),)
    if value is not None and not any(
            is_url(n or "") and n.lower().startswith("https://")
            for n in names):
        raise UsageError("--ca-file goes with an https:// IMAGE (the CA "
                         "certificates its server's certificate is checked "
                         "against)")
    return value


def retry_note(prog, progress=None):
    """The on_retry of an HttpInput: each retry of a stalled read said as
    it happens, a warning line on stderr (through `progress` when the
    command has one, so --progress=json makes it an event)."""
    def note(text):
        if progress is not None:
            progress.warn(text)
        else:
            print(f"{prog}: warning: {safe(text)}", file=sys.stderr,
                  flush=True)
    return note


@contextlib.contextmanager
def image_arg(args, key="IMAGE", prog="rdeploy", progress=None):
    """args[key] as a library call takes it: the open HttpInput of a URL
    (closed afterwards), else the path (or None) as it is."""
    image = args.get(key)
    if image is None or not is_url(image):
        ca_file(args, image)
        yield image
        return
    with open_input(image, ca_file=ca_file(args, image),
                    on_retry=retry_note(prog, progress)) as source:
        yield source
