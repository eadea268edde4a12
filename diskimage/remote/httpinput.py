"""HttpInput: an image (or the volumes of a split image) read over HTTP(S),
as one more source of the source protocol (diskimage.image.volumes).

- Opening probes each volume with a 1-byte Range GET (not HEAD: an S3
  presigned GET URL refuses HEAD): its size (Content-Range), whether the
  server honours ranges (a 206), and its validator (a strong ETag, else
  Last-Modified).  A split image's volumes are found from the URL of the
  first (lab.rdi, lab.r01 ...) until one is not there (404, 410; 401/403
  too, as S3 answers for a missing key); a URL with a query string names
  one volume only (see missing_volume).
- read(): one streamed GET per volume.  A dropped connection, a timeout
  or a 5xx is resumed with ``Range: bytes=POS-`` from the byte after the
  last one received, with If-Range on the validator: a resource that
  changed answers whole (200), and that is refused ("changed on its server
  while being read"), never spliced.  The reader checks every chunk whole
  anyway, so resumed bytes are checked as the rest.  Waits between tries:
  backoff, 2x, 4x ... (1, 2, 4, 8, 16 s by default), each told to
  `on_retry` first; the count starts again once bytes arrive.  A host
  name that does not resolve is not retried.
- read_at(): Range GETs over a kept-alive connection, so random access
  (info, imgx, verify-target) reads only the records it needs; seekable
  only when every volume answered the probe with a 206.
"""

import http.client
import ssl
import threading
import time

from ..errors import InputError, NetworkError
from ..image.volumes import READ_PIECE
from ..words import counted
from . import httpconn, urls
from .httpconn import Connections, Transient

_GONE = (404, 410)
_REFUSED = (401, 403)
_REDIRECTS = (301, 302, 303, 307, 308)
_MAX_REDIRECTS = 5


class Changed(NetworkError):
    """The resource changed between two requests of one read."""


def _validator(response):
    """(header to send in If-Range, value) of a response, or None."""
    etag = response.getheader("ETag")
    if etag and not etag.startswith("W/"):
        return etag
    return response.getheader("Last-Modified")


def _content_range(response):
    """(first, last, total) of a 206's Content-Range (last and first None
    for "bytes */N"), or None when it is missing or not bytes."""
    value = (response.getheader("Content-Range") or "").strip()
    unit, _, spec = value.partition(" ")
    if unit.lower() != "bytes":
        return None
    span, _, total = spec.partition("/")
    try:
        total = None if total == "*" else int(total)
        if span == "*":
            return None, None, total
        first, _, last = span.partition("-")
        return int(first), int(last), total
    except ValueError:
        return None


class HttpInput:
    """The image at `url` (its first volume), read over HTTP(S)."""

    files = ()          # no local files (volumecheck's copy test skips)
    #: why random access is refused when not seekable (ImageReader)
    unseekable = ("its server does not answer Range requests, which random "
                  "access needs (restore and verify read it front to back)")

    def __init__(self, url, *, ca_file=None, tries=6, backoff=1.0,
                 timeout=30, on_retry=None):
        self.url = url
        self.on_retry = on_retry    # (text): told before each wait
        self.name = urls.shown(url)
        self.ca_file = ca_file
        self.tries = max(1, tries)
        self.backoff = backoff
        scheme = url.split(":", 1)[0].lower()
        context = httpconn.tls_context(ca_file) \
            if scheme == "https" or ca_file else None
        self._random = Connections(context, timeout)
        self._stream = Connections(context, timeout)
        self._lock = threading.Lock()
        self._random_lock = threading.Lock()
        self.position = 0
        self.bytes_read = 0
        self.requests = 0
        self._urls, self.paths, self.sizes = [], [], []
        self._validators, self._ranges = [], []
        self._end = None        # (URL shown, status) that ended the volumes
        self._current, self._local, self._response = 0, 0, None
        try:
            self._find_volumes()
        except BaseException:
            self.close()
            raise
        self.seekable = all(self._ranges) and None not in self.sizes
        self.size = sum(self.sizes) if None not in self.sizes else None

    # -- opening -------------------------------------------------------

    def _find_volumes(self):
        url = self.url
        while url is not None:
            found = self._retrying(url, 0, lambda u=url: self._probe(u),
                                   self._random)
            if found is None:
                break
            final, size, ranges, validator = found
            self._urls.append(final)
            self.paths.append(urls.shown(url))
            self.sizes.append(size)
            self._ranges.append(ranges)
            self._validators.append(validator)
            url = urls.volume_url(self.url, len(self._urls))

    def _probe(self, url):
        """(final URL, size or None, ranges honoured, validator) of the
        volume at `url`, or None when it is not there (later volumes)."""
        first = not self._urls
        response, url = self._get(self._random, url, {"Range": "bytes=0-0"},
                                  probing=not first)
        if response is None:
            return None
        validator = _validator(response)
        if response.status == 206:
            span = _content_range(response)
            body = response.read()
            self._count(len(body))
            if span is None or span[2] is None:
                raise NetworkError(f"{urls.shown(url)}: the server answers "
                                   f"a range without its total size")
            return url, span[2], True, validator
        if response.status == 416:
            span = _content_range(response)
            response.read()
            return url, span[2] if span else 0, True, validator
        length = response.getheader("Content-Length")
        self._random.drop(url)      # a whole body that is not wanted now
        return url, int(length) if length and length.isdigit() else None, \
            False, validator

    def _get(self, conns, url, headers, probing=False):
        """GET `url` following redirects: (response with a 2xx or 416, the
        final URL).  Statuses that refuse are raised; on a probe of a later
        volume, one that is not there is (None, url)."""
        for _ in range(_MAX_REDIRECTS + 1):
            self.requests += 1
            response = conns.request("GET", url, headers)
            status = response.status
            if status in _REDIRECTS and response.getheader("Location"):
                response.read()
                url = urls.redirected(url, response.getheader("Location"))
                continue
            if 200 <= status < 300 or status == 416:
                return response, url
            reason = f"HTTP {status} {response.reason}".strip()
            response.read()
            if probing and status in _GONE + _REFUSED:
                self._end = (urls.shown(url), status)
                return None, url
            if status in _GONE:
                raise InputError(f"{urls.shown(url)}: no such image on the "
                                 f"server ({reason})")
            if status in _REFUSED:
                hint = ("; a presigned URL that has expired or was made "
                        "for another method is refused so: make a new one") \
                    if urls.has_query(url) else ""
                raise NetworkError(f"{urls.shown(url)}: refused "
                                   f"(HTTP {status}){hint}")
            if status >= 500 or status in (408, 429):
                raise Transient(reason)
            raise NetworkError(f"{urls.shown(url)}: the server answers "
                               f"{reason}")
        raise NetworkError(f"{urls.shown(url)}: more than {_MAX_REDIRECTS} "
                           f"redirects")

    def _retrying(self, url, position, attempt, conns):
        """attempt() until it returns, with the waits of the module's
        docstring between tries; the final failure as one line."""
        failures = 0
        while True:
            try:
                return attempt()
            except (httpconn.TRANSIENT + (Transient,)) as exc:
                if isinstance(exc, ssl.SSLCertVerificationError):
                    raise httpconn.tls_refusal(urls.shown(url), exc,
                                               self.ca_file) from None
                if isinstance(exc, ssl.SSLError) and not isinstance(
                        exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
                    raise httpconn.tls_failure(urls.shown(url),
                                               exc) from None
                if httpconn.unknown_host(exc):
                    raise NetworkError(f"{urls.shown(url)}: "
                                       f"{httpconn.cause(exc)}") from None
                conns.drop(url)
                failures += 1
                if failures >= self.tries:
                    raise NetworkError(
                        f"{urls.shown(url)}: could not be read at byte "
                        f"{position} after "
                        f"{counted(failures, 'try', 'tries')} (last: "
                        f"{httpconn.cause(exc)})") from None
                wait = self.backoff * 2 ** (failures - 1)
                if self.on_retry is not None:
                    self.on_retry(
                        f"{urls.shown(url)}: {httpconn.cause(exc)} at byte "
                        f"{position}; retrying in {wait:g} s (try "
                        f"{failures + 1} of {self.tries})")
                time.sleep(wait)

    def _count(self, n):
        with self._lock:
            self.bytes_read += n

    def missing_volume(self):
        """When the stream ends early: why, when a missing volume may be
        it, or None."""
        if urls.has_query(self.url):
            return (f"{self.name}: the image ends early; if it is a split "
                    f"image, its later volumes cannot be found from a URL "
                    f"with a query string (a presigned URL names one object "
                    f"only): join it into one file (imgx join) and serve "
                    f"that")
        if len(self.paths) < 2 or self.sizes[-1] != self.sizes[0]:
            return None
        name, status = self._end or (
            urls.shown(urls.volume_url(self.url, len(self.paths))), 404)
        return (f"{name}: not on the server (HTTP {status}): the split "
                f"image {self.name} goes on after {self.paths[-1]} (full at "
                f"{self.sizes[-1]} bytes, as every volume before it), but "
                f"volume {len(self.paths) + 1} is missing")

    # -- front to back ---------------------------------------------------

    def read(self, size):
        """Up to `size` bytes of the stream; fewer only at its end."""
        parts = []
        while size > 0 and self._current < len(self._urls):
            end = self.sizes[self._current]
            if end is not None and self._local >= end:
                self._next_volume()
                continue
            url = self._urls[self._current]
            data = self._retrying(
                url, self._local,
                lambda: self._stream_piece(min(size, READ_PIECE)),
                self._stream)
            if not data:
                self._next_volume()
                continue
            parts.append(data)
            size -= len(data)
            self._local += len(data)
            self.position += len(data)
        return b"".join(parts)

    def _next_volume(self):
        self._close_response()
        self._current += 1
        self._local = 0

    def _close_response(self):
        if self._response is not None:
            self._response.close()
            self._response = None

    def _stream_piece(self, size):
        try:
            if self._response is None:
                self._response = self._open_stream()
            data = self._response.read(size)
        except BaseException:
            self._close_response()
            raise
        self._count(len(data))
        end = self.sizes[self._current]
        if not data and end is not None and self._local < end:
            self._close_response()
            raise Transient(f"the answer ended {end - self._local} bytes "
                            f"early")
        return data

    def _open_stream(self):
        """The GET that streams the current volume from self._local."""
        number, local = self._current, self._local
        url, validator = self._urls[number], self._validators[number]
        headers = {}
        if local and self._ranges[number]:
            headers["Range"] = f"bytes={local}-"
            if validator:
                headers["If-Range"] = validator
        response, _ = self._get(self._stream, url, headers)
        shown = urls.shown(url)
        if validator and _validator(response) not in (None, validator):
            response.close()
            raise Changed(f"{shown}: changed on its server while being read")
        if response.status == 206:
            span = _content_range(response)
            if span is None or span[0] != local or \
                    span[2] != self.sizes[number]:
                response.close()
                raise Changed(f"{shown}: changed on its server while being "
                              f"read (a resumed range does not fit)")
            return response
        if local and self._ranges[number]:
            response.close()
            raise Changed(f"{shown}: changed on its server while being read")
        length = response.getheader("Content-Length")
        if self.sizes[number] is not None and length is not None and \
                length.isdigit() and int(length) != self.sizes[number]:
            response.close()
            raise Changed(f"{shown}: changed on its server while being read "
                          f"(now {length} bytes, {self.sizes[number]} "
                          f"before)")
        skip = local        # a server without ranges: read up to here again
        while skip:
            data = response.read(min(skip, READ_PIECE))
            if not data:
                raise Transient("the answer ended before the resume point")
            self._count(len(data))
            skip -= len(data)
        return response

    # -- random access -----------------------------------------------------

    def read_at(self, offset, size):
        """Up to `size` bytes at stream `offset` (Range requests), across
        volume boundaries."""
        if not self.seekable:
            raise InputError(f"{self.name}: {self.unseekable}")
        parts, base = [], 0
        for number, volume_size in enumerate(self.sizes):
            if size <= 0:
                break
            if offset < base + volume_size:
                local = offset - base
                n = min(size, volume_size - local)
                data = self._range(number, local, n)
                parts.append(data)
                offset += len(data)
                size -= len(data)
            base += volume_size
        return b"".join(parts)

    def _range(self, number, local, size):
        url = self._urls[number]
        with self._random_lock:     # one kept-alive connection: in turn
            return self._retrying(
                url, local, lambda: self._range_once(number, local, size),
                self._random)

    def _range_once(self, number, local, size):
        url, validator = self._urls[number], self._validators[number]
        headers = {"Range": f"bytes={local}-{local + size - 1}"}
        if validator:
            headers["If-Range"] = validator
        response, _ = self._get(self._random, url, headers)
        shown = urls.shown(url)
        if response.status == 416:
            response.read()
            return b""
        span = _content_range(response)
        if response.status != 206 or span is None or span[0] != local or \
                span[2] != self.sizes[number]:
            self._random.drop(url)
            raise Changed(f"{shown}: changed on its server while being read")
        try:
            data = response.read()
        except http.client.IncompleteRead as exc:
            self._count(len(exc.partial))
            raise
        self._count(len(data))
        if len(data) != span[1] - span[0] + 1:
            raise Transient(f"a range answer of {len(data)} bytes, "
                            f"{span[1] - span[0] + 1} announced")
        return data

    def close(self):
        self._close_response()
        self._stream.close()
        self._random.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
