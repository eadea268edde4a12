"""What a URL is shown as, where a request for it goes, and the URLs of a
split image's volumes.

A presigned URL (S3's, or any object store's) carries its credentials in
the query string (X-Amz-Credential, X-Amz-Signature ...), and a URL may
carry a user and password before the host: :func:`shown` drops both, and
every message, JSON field and restore marker names a URL that way.
"""

import base64
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

from ..errors import UsageError
from ..image.volumes import volume_name

DEFAULT_PORTS = {"http": 80, "https": 443}


def _parts(url):
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise UsageError(f"{shown_loosely(url)}: not a valid URL (its port "
                         f"is not a number from 0 to 65535)") from None
    if not parts.hostname:
        raise UsageError(f"{shown_loosely(url)}: not a valid URL (no host)")
    return parts, port


def shown_loosely(url):
    """A URL cut at its query string, for a message about a URL too bad
    to be parsed."""
    head = url.split("?", 1)[0].split("#", 1)[0]
    scheme, _, rest = head.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"


def shown(url):
    """`url` as messages show it: no user:password@, no query string (a
    "?..." says there was one), no fragment."""
    parts, port = _parts(url)
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    tail = "?..." if parts.query else ""
    return urlunsplit((parts.scheme.lower(), netloc, parts.path, "", "")) + \
        tail


def has_query(url):
    return bool(urlsplit(url).query)


def endpoint(url):
    """((scheme, host, port), request target, headers) of a request for
    `url`: the path and query as sent, and a Basic Authorization header
    when the URL names a user."""
    parts, port = _parts(url)
    scheme = parts.scheme.lower()
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    headers = {}
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(
            pair.encode()).decode("ascii")
    return (scheme, parts.hostname, port or DEFAULT_PORTS[scheme]), target, \
        headers


def redirected(url, location):
    """The URL a redirect's Location header points to (relative ones
    resolved against `url`); only http and https are followed."""
    new = urljoin(url, location)
    if urlsplit(new).scheme.lower() not in DEFAULT_PORTS:
        raise UsageError(f"{shown(url)}: redirected to a URL that is not "
                         f"http or https")
    return new


def volume_url(url, number):
    """The URL of volume `number` (0 the first) of the split image whose
    first volume is at `url`: lab.rdi, lab.r01, lab.r02 ... as files.
    None for a URL with a query string: the next name cannot be made from
    it (a presigned URL's signature covers its own path only)."""
    if number == 0:
        return url
    if has_query(url):
        return None
    return volume_name(url.split("#", 1)[0], number)
