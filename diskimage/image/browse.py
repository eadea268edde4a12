"""Images and the paths inside them: ``IMAGE:N/path`` (partition N) and
``IMAGE:/path`` (the one filesystem of an image that holds only one).

:class:`Image` opens an image for random access and hands out the
filesystem of a partition, read through an ImageView so that only the
chunks a command looks at are read and decoded.
"""

import os
import re
from urllib.parse import urlsplit

from diskimage.errors import InputError, UsageError
from diskimage.fs.read import Filesystem, browsable as _browsable
from diskimage.image.view import ImageView
from diskimage.image.reader import ImageReader
from diskimage.tables.partitions import extended_said

_PATH = re.compile(r"^(?P<image>.+):(?P<part>\d*)(?P<path>/.*)?$")


def _quoted(text):
    """IMGPATH as a usage error quotes it: a URL's query string (a
    presigned URL's credentials) left out."""
    if "://" in text and "?" in text:
        return repr(text.split("?", 1)[0] + "?...")
    return repr(text)


def split_path(text):
    """'IMAGE:N/path' -> (IMAGE, N or None, 'path' without the leading /).
    The last colon that is followed by digits and/or a slash splits, so
    image names may hold colons, and an http(s) URL's port does not split
    ("http://h:8080/lab.rdi:2/etc"); a URL's query string written after
    the path ("URL:2/etc?sig=...") goes back to the URL."""
    from diskimage.remote import is_url
    match = _PATH.match(text)
    if is_url(text) and match and "/" not in match["image"].split("://")[1]:
        match = None        # "http://h:8080/x.rdi": the port, no partition
    if not match or (not match["part"] and match["path"] is None):
        raise UsageError(f"{_quoted(text)}: expected IMAGE:N/path or "
                         f"IMAGE:/path")
    image = match["image"]
    if image.endswith(":") and not os.path.lexists(image):
        # "h.rdi::/x": one colon too many, not an image named "h.rdi:".
        raise UsageError(f"{text!r}: one colon between the image and the "
                         f"path, as in {image.rstrip(':')}:N/path or "
                         f"{image.rstrip(':')}:/path")
    part = int(match["part"]) if match["part"] else None
    path = match["path"] or "/"
    if "?" in path and is_url(image) and not urlsplit(image).query:
        # "URL:1/etc?X-Amz-Signature=...": a presigned URL's query put
        # after the path is the URL's (and never echoed in a message)
        path, query = path.split("?", 1)
        image = f"{image}?{query}"
    return image, part, path.lstrip("/")


class Image:
    """An image opened for browsing; use as a context manager."""

    def __init__(self, path, passphrase=None, ca_file=None, on_retry=None):
        """`passphrase`: a callable, asked only for an encrypted image
        (see ImageReader).  `path` may be an http(s) URL (read with Range
        requests, diskimage.remote; `ca_file`: its TLS CA bundle,
        `on_retry`: told of each retry)."""
        from diskimage.remote import is_url, open_input
        self._remote = open_input(path, ca_file=ca_file,
                                  on_retry=on_retry) \
            if is_url(path) else None
        self.path = self._remote.name if self._remote else path
        try:
            self.reader = ImageReader(self._remote or path,
                                      passphrase=passphrase)
        except BaseException:
            self._close_remote()
            raise
        self.metadata = self.reader.metadata
        self._filesystems = {}

    def _close_remote(self):
        if self._remote is not None:
            self._remote.close()

    def close(self):
        self.reader.close()
        self._close_remote()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def volumes(self):
        """Areas that hold a volume: partitions, or a table-less disk."""
        return [a for a in self.metadata["areas"]
                if a["kind"] in ("partition", "disk")]

    def _table_numbers(self):
        return sorted(p["number"] for p in
                      self.metadata["table"].get("partitions", []))

    def area(self, number):
        """The area of partition `number`; None picks the image's only
        filesystem."""
        if number is None:
            browsable = [a for a in self.volumes
                         if _browsable(a["filesystem"])]
            if len(browsable) == 1:
                return browsable[0]
            if not browsable:
                raise InputError(f"{self.path}: holds no filesystem imgx "
                                 f"can read")
            numbers = ", ".join(str(a["partition"]) for a in browsable)
            raise UsageError(f"{self.path}: holds {len(browsable)} "
                             f"filesystems (partitions {numbers}); name one, "
                             f"as in {self.path}:{browsable[0]['partition']}"
                             f"/path")
        for area in self.volumes:
            if area["partition"] == number:
                return area
        if number in self._table_numbers():
            raise InputError(f"{self.path}: partition {number} was not "
                             f"captured in this image")
        said = extended_said(self.metadata["table"], number)
        if said:
            raise InputError(f"{self.path}: {said}")
        have = ", ".join(str(n) for n in self._table_numbers()) or "none"
        raise InputError(f"{self.path}: no partition {number} (partitions: "
                         f"{have})")

    def view(self, area):
        return ImageView(self.reader, area["start"], area["size"])

    def filesystem(self, number):
        area = self.area(number)
        key = area["partition"]
        if key not in self._filesystems:
            where = f"{self.path}:{key if key is not None else ''}"
            self._filesystems[key] = Filesystem(self.view(area),
                                                area["filesystem"], where)
        return self._filesystems[key]

    def browsable_numbers(self):
        return [a["partition"] for a in self.volumes
                if _browsable(a["filesystem"])]
