"""The libtorrent session of `rdeploy swarm seed` and `swarm receive`: its
settings (documented in docs/swarm.md, "Finding peers" and "Web seeds"),
and the one way both open it.

* Disk I/O is libtorrent's posix storage always: it writes with pwrite
  into the file it is given, also a block device (the default mmap
  storage fails there: "file_truncate ... Invalid argument").
* Peers are found from the torrent's peers and --peer (connected at
  once, and the DHT's only bootstrap nodes: no public DHT router is ever
  asked), the torrent's trackers, local service discovery (one segment)
  and peer exchange (peers tell each other of the peers they know: across
  a router, once one peer on each side is known).  UPnP and NAT-PMP are
  off: a lab's machines need no port mapped on a home router.
* Every address is in the global peer class, so --upload-rate and
  --download-rate hold on a LAN too (libtorrent exempts local and private
  addresses from its limits otherwise).
* A finished receiver keeps its connections to other finished ones
  (close_redundant_connections off), so it can count who holds the whole
  disk (--seed-until).
* ssrf_mitigation stays on unless a web seed URL has a query string and
  names a private or loopback address (an S3-compatible store's presigned
  URL on the LAN), which libtorrent refuses under it.
"""

import ipaddress
import socket
from urllib.parse import urlsplit

from .. import __version__
from ..errors import NetworkError, UsageError
from . import libtorrent

DEFAULT_PORT = 6881
#: The client names peers tell each other in their handshake: a receiver
#: counts the receivers that hold the whole disk (--seed-until) by it.
RECEIVER_AGENT = f"rdeploy-receive/{__version__}"
SEEDER_AGENT = f"rdeploy-seed/{__version__}"
RECEIVER_ID, SEEDER_ID = "-RD0100-", "-RS0100-"

#: The alerts the callers read: errors, state changes (metadata received,
#: a torrent finished), the listen sockets, closed connections and the
#: peers' errors (a web seed that ignores Range is told by its address
#: only).
_ALERTS = ("error_notification", "status_notification",
           "storage_notification", "connect_notification",
           "peer_notification")


def listen_address(text):
    """--listen's HOST:PORT or PORT as (host, port); host "" means every
    address."""
    text = str(text).strip()
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    host = host.strip("[]")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise UsageError(f"--listen takes HOST:PORT or PORT (1 to 65535), "
                         f"not {text!r}")
    return host, int(port)


def peer_address(text, option="--peer"):
    """A --peer HOST:PORT as (host, port)."""
    host, sep, port = str(text).rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or \
            not 1 <= int(port) <= 65535:
        raise UsageError(f"{option} takes HOST:PORT, not {text!r}")
    return host, int(port)


def _join(host, port):
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _interfaces(listen):
    host, port = listen
    if host:
        return _join(host, port)
    return f"0.0.0.0:{port},[::]:{port}"


def local_address(host):
    """Whether `host` (a name is looked up) is a loopback, private or
    link-local address: where libtorrent's ssrf_mitigation applies."""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except (socket.gaierror, UnicodeError):
        return False
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if ip.is_loopback or ip.is_private or ip.is_link_local:
            return True
    return False


def needs_query_seeds(web_seeds):
    """Whether a web seed has a query string (a presigned URL) and names a
    local address: then ssrf_mitigation must be off for it to be used."""
    for url in web_seeds:
        parts = urlsplit(url)
        if parts.query and parts.hostname and local_address(parts.hostname):
            return True
    return False


def settings(*, listen, upload_rate=None, download_rate=None, peers=(),
             web_seed_query=False, agent=RECEIVER_AGENT, unchoke_slots=-1):
    """The session's settings pack (a dict).  `listen`: (host, port);
    rates in bytes per second (None: no limit); `peers`: (host, port)
    pairs, the DHT's bootstrap nodes; `web_seed_query`: a presigned web
    seed on a local address (see needs_query_seeds); `unchoke_slots`:
    how many peers are served at once (-1: all)."""
    lt = libtorrent()
    mask = 0
    for name in _ALERTS:
        mask |= int(getattr(lt.alert.category_t, name))
    return {
        "listen_interfaces": _interfaces(listen),
        # connections to peers leave from the listen address too: else a
        # machine with several addresses is seen (and banned, once it
        # meets itself) under another
        "outgoing_interfaces": listen[0],
        # --listen is where peers are told to find us: never another port
        "listen_system_port_fallback": False, "max_retry_port_bind": 0,
        # never the public DHT routers: only the peers we were given
        "dht_bootstrap_nodes": ",".join(_join(h, p) for h, p in peers),
        "enable_dht": True, "enable_lsd": True,
        "enable_upnp": False, "enable_natpmp": False,
        "user_agent": agent,
        # receivers and seeders apart by their peer id too: a finished
        # receiver learns that another is whole when libtorrent closes
        # their connection (both upload only), from the id (tally.py)
        "peer_fingerprint": SEEDER_ID if agent == SEEDER_AGENT
        else RECEIVER_ID,
        "upload_rate_limit": int(upload_rate or 0),
        "download_rate_limit": int(download_rate or 0),
        "close_redundant_connections": False,
        # TCP only: uTP's connects between receivers timed out again and
        # again in the room (8 receivers, shaped links), and a pair whose
        # one connection was dropped as a duplicate never met again, so
        # neither counted the other whole (--seed-until waited its limit)
        "enable_outgoing_utp": False, "enable_incoming_utp": False,
        # a swarm of one site: every peer it is told of is worth a try
        "max_failcount": 10, "min_reconnect_time": 2,
        "ssrf_mitigation": not web_seed_query,
        "max_web_seed_connections": 4,
        # a web seed is tried again soon after an error, and never banned
        # for good over a piece that failed its hash (a broken transfer)
        "urlseed_wait_retry": 2, "urlseed_timeout": 10,
        "ban_web_seeds": False,
        # a request or a peer that went silent frees its blocks in
        # seconds, not the minute or two of the defaults: on a LAN an
        # answer takes milliseconds, and the receivers that left hold
        # requests nobody answers
        "request_timeout": 10, "piece_timeout": 10, "peer_timeout": 30,
        # every peer of a lab's swarm is served by a receiver (the
        # default 8 chokes the ninth); the seeder serves a few at a time
        # (stepback.py)
        "unchoke_slots_limit": unchoke_slots,
        "alert_mask": mask,
    }


def open_session(*, listen, upload_rate=None, download_rate=None, peers=(),
                 web_seeds=(), agent=RECEIVER_AGENT, unchoke_slots=-1):
    """A libtorrent session with settings(), posix disk I/O, every address
    in the global peer class; listening checked (NetworkError naming the
    address when it cannot listen)."""
    lt = libtorrent()
    params = lt.session_params()
    params.settings = settings(
        listen=listen, upload_rate=upload_rate, download_rate=download_rate,
        peers=peers, web_seed_query=needs_query_seeds(web_seeds),
        agent=agent, unchoke_slots=unchoke_slots)
    params.disk_io_constructor = "posix_disk_io_constructor"
    session = lt.session(params)
    rates = lt.ip_filter()
    for first, last in (("0.0.0.0", "255.255.255.255"),
                        ("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")):
        rates.add_rule(first, last, 1 << lt.session.global_peer_class_id)
    session.set_peer_class_filter(rates)
    _listening(session, lt, listen)
    for host, port in peers:
        try:
            session.add_dht_node((host, port))
        except (RuntimeError, TypeError):
            pass            # a name the DHT cannot take: still a peer
    return session


def _listening(session, lt, listen, timeout=5.0):
    """Wait for the listen sockets: at least one succeeded, or the error
    of the first that failed."""
    import time
    deadline = time.monotonic() + timeout
    failed = None
    while time.monotonic() < deadline:
        session.wait_for_alert(200)
        for alert in session.pop_alerts():
            if isinstance(alert, lt.listen_succeeded_alert):
                return
            if isinstance(alert, lt.listen_failed_alert) and failed is None:
                failed = alert
        if failed is not None and session.is_listening() is False:
            break
    if failed is not None and not session.is_listening():
        raise NetworkError(f"cannot listen on {_interfaces(listen)} "
                           f"(--listen): {failed.error.message()}")


def add_params(desc, save_path, *, peers=(), flags=0, web_seeds=None):
    """add_torrent_params for Descriptor `desc`: its info dict as stored
    (the infohash is that of those bytes), its web seeds (or `web_seeds`:
    the receiver adds them later, webseeds.py) and trackers, the peers to
    connect to; files under `save_path`."""
    lt = libtorrent()
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(b"d4:info" + desc.info_bytes + b"e")
    params.save_path = save_path
    params.url_seeds = list(desc.web_seeds if web_seeds is None
                            else web_seeds)
    params.trackers = list(desc.trackers)
    params.peers = [(h, p) for h, p in peers if _numeric(h)]
    params.flags = (params.flags | flags) & ~lt.torrent_flags.auto_managed \
        & ~lt.torrent_flags.paused
    return params


def _numeric(host):
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def connect(handle, peers):
    """Connect to each peer that is a name (params.peers takes addresses
    only): looked up here."""
    for host, port in peers:
        if _numeric(host):
            continue
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror:
            continue        # a peer not found is not fatal: there are others
        for info in infos[:1]:
            handle.connect_peer((info[4][0], port))


def let_go(box):
    """End the session in the list `box` (its only reference) without
    tearing it down: libtorrent's ~session joins its network thread, which
    was seen (a web seed on moto's S3 server) to wait on for minutes after
    the torrent was removed, holding the GIL; the disk is written and
    checked by then, and a receive must not hang on boot media with no one
    watching.  The paused session, its sockets closed (a seeder restarted
    by pxeconf serve binds the same port again), is kept
    (diskimage.lingering) until the process exits, which it then does
    without Python's teardown."""
    from .. import lingering
    session = box.pop()
    session.apply_settings({"listen_interfaces": "", "enable_dht": False,
                            "enable_lsd": False})
    lingering.keep(session)
