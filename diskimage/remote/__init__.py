"""Images read over the network: http:// and https:// URLs (a plain web
server, `pxeconf serve`, an S3 presigned URL).  :class:`HttpInput`
(httpinput.py) is one more source of the source protocol that
RecordStream and ImageReader read (diskimage.image.volumes has the other
two); urls.py holds what a URL is shown as and how its volumes are named.
"""

import re

from ..errors import UsageError

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def is_url(text):
    """Whether `text` is an http:// or https:// URL (scheme in any case).
    Any other ``scheme://`` is a UsageError naming the two there are; a
    path (without ``://`` after a scheme) is not a URL."""
    if not isinstance(text, str):
        return False
    match = _SCHEME.match(text)
    if not match:
        return False
    if match.group(1).lower() in ("http", "https"):
        return True
    from .urls import shown_loosely
    raise UsageError(f"{shown_loosely(text)}: {match.group(1)}:// is not a "
                     f"source this tool reads; images are read from files, "
                     f"stdin (-), http:// or https:// URLs")


def open_input(name, *, ca_file=None, on_retry=None, **options):
    """The source of the image `name`: an HttpInput for a URL, else its
    volume files (a VolumeInput).  `on_retry(text)` is told of each wait
    before a retry; `options` go to HttpInput (tries, backoff, timeout)."""
    if is_url(name):
        options["on_retry"] = on_retry
        from .httpinput import HttpInput
        return HttpInput(name, ca_file=ca_file, **options)
    from ..image.volumes import VolumeInput
    return VolumeInput(name)
