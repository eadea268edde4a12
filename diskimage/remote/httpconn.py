"""Kept-alive HTTP(S) connections (http.client and ssl only), the TLS
context, and the words for what went wrong on the way.

TLS is verified by default against the system's CA certificates (the
OpenSSL default paths; SSL_CERT_FILE and SSL_CERT_DIR are honoured); with
`ca_file` against that PEM bundle only.  A certificate that does not
verify is NetworkError naming --ca-file at once: it is not retried.
"""

import http.client
import socket
import ssl

from ..errors import InputError, NetworkError
from .urls import endpoint

#: What a retry may cure: a dropped or refused connection, a timeout, an
#: answer cut short.  (TLS verification failures are not among them.)
TRANSIENT = (OSError, http.client.HTTPException)


class Transient(NetworkError):
    """A failure that a retry may cure (a 5xx answer, a short body); its
    text is the cause the final error names.  Caught by the retry loop;
    it leaves it only inside the final NetworkError's words."""


def tls_context(ca_file=None):
    """The client TLS context: the system's CAs, or `ca_file` only."""
    try:
        return ssl.create_default_context(cafile=ca_file)
    except FileNotFoundError:
        raise InputError(f"{ca_file}: no such file (--ca-file)") from None
    except ssl.SSLError as exc:
        raise InputError(f"{ca_file}: not a PEM bundle of CA certificates "
                         f"(--ca-file): {exc.reason or exc}") from None
    except OSError as exc:
        raise InputError(f"{ca_file}: cannot read it (--ca-file): "
                         f"{exc.strerror}") from None


def cause(exc):
    """A failure as the few words the final error ends with."""
    if isinstance(exc, Transient):
        return str(exc)
    if isinstance(exc, http.client.IncompleteRead):
        return (f"the connection dropped {len(exc.partial)} bytes into a "
                f"read" + (f", {exc.expected} more expected"
                           if exc.expected else ""))
    if isinstance(exc, http.client.RemoteDisconnected):
        return "the server closed the connection without an answer"
    if isinstance(exc, socket.timeout):
        return "no answer in time (timed out)"
    if isinstance(exc, socket.gaierror):
        return f"host not found ({exc.strerror})"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower() if exc.strerror[:1].isupper() and \
            exc.strerror[1:2].islower() else exc.strerror
    return str(exc) or type(exc).__name__


def unknown_host(exc):
    """Whether `exc` says the host name does not exist (not retried: a
    wrong name does not get right by waiting; a DNS server that is not
    answering, EAI_AGAIN, is retried)."""
    return isinstance(exc, socket.gaierror) and exc.errno in (
        socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME))


def tls_failure(name, exc):
    """A TLS failure other than an untrusted certificate, in words."""
    reason = exc.reason or str(exc)
    if reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE",
                  "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST"):
        return NetworkError(f"{name}: the server does not speak TLS (a "
                            f"plain http server? then the URL is http://)")
    return NetworkError(f"{name}: TLS failed: {reason}")


def tls_refusal(name, exc, ca_file):
    """A TLS verification failure as its one NetworkError line."""
    why = getattr(exc, "verify_message", None) or exc.reason or str(exc)
    if ca_file:
        hint = (f"the certificate is not signed by a CA in {ca_file} "
                f"(--ca-file), or names another host")
    else:
        hint = ("give the CA certificate that signed it with --ca-file=PEM "
                "(boot media carry no system CA certificates)")
    return NetworkError(f"{name}: TLS certificate not trusted ({why}): "
                        f"{hint}")


class Connections:
    """One kept-alive connection per (scheme, host, port); use from one
    thread.  `request` sends and returns the response (its body unread)."""

    def __init__(self, context, timeout):
        self.context = context
        self.timeout = timeout
        self._open = {}

    def _connection(self, key):
        conn = self._open.get(key)
        if conn is None:
            scheme, host, port = key
            if scheme == "https":
                conn = http.client.HTTPSConnection(
                    host, port, timeout=self.timeout, context=self.context)
            else:
                conn = http.client.HTTPConnection(host, port,
                                                  timeout=self.timeout)
            self._open[key] = conn
        return conn

    def request(self, method, url, headers=()):
        """Send `method` for `url`, return the response.  A kept-alive
        connection that the server closed meanwhile is opened again once
        at once (that is keep-alive's normal end, not a failure)."""
        key, target, auth = endpoint(url)
        sent = dict(auth, **dict(headers))
        fresh = key not in self._open
        while True:
            conn = self._connection(key)
            try:
                conn.request(method, target, headers=sent)
                return conn.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError,
                    ConnectionResetError):
                self.drop(key)
                if fresh:
                    raise
                fresh = True
            except BaseException:
                self.drop(key)
                raise

    def drop(self, key_or_url):
        """Close the connection (to the endpoint of a URL, or a key)."""
        key = key_or_url if isinstance(key_or_url, tuple) else \
            endpoint(key_or_url)[0]
        conn = self._open.pop(key, None)
        if conn is not None:
            conn.close()

    def close(self):
        for conn in self._open.values():
            conn.close()
        self._open = {}
