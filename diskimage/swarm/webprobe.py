"""A web seed tried once by `swarm prepare`: a GET of its first byte
(Range: bytes=0-0), which must be answered 206.  A server that ignores
Range (python3 -m http.server answers 200 with the whole file) cannot
serve pieces: libtorrent gives up on it.  The answer is a warning, never a
failure: the server may not be up yet."""

import http.client
import ssl
import urllib.parse

from ..remote.urls import shown

TIMEOUT = 3


def target_url(url, name):
    """The URL of NAME.raw a web seed URL means (BEP 19: one ending in /
    is a directory holding the file)."""
    parts = urllib.parse.urlsplit(url)
    if parts.path.endswith("/") or not parts.path:
        path = (parts.path or "/") + urllib.parse.quote(name)
        return urllib.parse.urlunsplit(parts._replace(path=path))
    return url


def problem(url, name):
    """None when the web seed `url` answers a 1-byte Range GET of NAME.raw
    with 206, else what is wrong, as a line naming it (without query)."""
    full = target_url(url, name)
    parts = urllib.parse.urlsplit(full)
    where = shown(full)
    cls = http.client.HTTPSConnection if parts.scheme == "https" else \
        http.client.HTTPConnection
    extra = {"context": ssl.create_default_context()} \
        if parts.scheme == "https" else {}
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    try:
        conn = cls(parts.hostname, parts.port, timeout=TIMEOUT, **extra)
        try:
            conn.request("GET", path, headers={"Range": "bytes=0-0"})
            response = conn.getresponse()
            status = response.status
        finally:
            conn.close()
    except (OSError, http.client.HTTPException) as exc:
        return (f"web seed {where}: not reachable now "
                f"({getattr(exc, 'strerror', None) or exc}); receivers will "
                f"try it")
    if status == 206:
        return None
    if status == 200:
        return (f"web seed {where}: ignores Range (answers 200 with the "
                f"whole file): libtorrent cannot fetch pieces from it; "
                f"serve NAME.raw with a server that honours Range")
    return f"web seed {where}: answers HTTP {status} to a Range request"


def seed_at(urls, endpoint):
    """The web seed of `urls` (as shown, no query) that libtorrent's peer
    at `endpoint` (ip, port) is, or None: libtorrent names a web seed's
    failures (an "invalid HTTP range") by its address only."""
    import socket
    host, port = endpoint[0], endpoint[1]
    for url in urls:
        parts = urllib.parse.urlsplit(url)
        default = 443 if parts.scheme == "https" else 80
        if (parts.port or default) != port:
            continue
        try:
            addresses = {info[4][0] for info in socket.getaddrinfo(
                parts.hostname, port, type=socket.SOCK_STREAM)}
        except OSError:
            continue
        if host in addresses:
            return shown(url)
    return None


def fault(lt, alert, web_seeds):
    """(web seed URL as shown, why) of libtorrent's alert of a web seed's
    failure: a url_seed_alert names its URL; a peer_error_alert only an
    address, which is a web seed's when one of `web_seeds` is there
    ((None, None) for another peer's)."""
    if isinstance(alert, lt.url_seed_alert):
        return shown(alert.server_url()), \
            alert.error_message() or alert.message()
    return seed_at(web_seeds, alert.endpoint), alert.error.message()
