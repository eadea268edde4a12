"""What a swarm's torrent has moved, read from libtorrent's peer list:
bytes from web seeds and from peers, bytes uploaded, the peers seen, and
the receivers that hold every wanted piece (--seed-until).

libtorrent counts bytes per connection; a connection that closes takes
its count with it, and one that opens again starts from zero.  So each
connection's last count is kept after it closed, and banked when a
smaller count comes under the same key (a new connection).  The receiver
takes its totals from the torrent's own counters, and only the web seeds'
share from here."""

import time

from .session import RECEIVER_AGENT, RECEIVER_ID

_RECEIVER = (RECEIVER_AGENT.split("/", 1)[0] + "/").encode()
_RECEIVER_ID = RECEIVER_ID.encode()


def _client(peer):
    """The client name the peer gave (bytes in these bindings)."""
    client = peer.client
    return client if isinstance(client, bytes) else client.encode()


class Tally:
    def __init__(self, lt, wanted=()):
        self.lt = lt
        self.wanted = list(wanted)
        self._last = {}         # (kind, endpoint) -> (down, up)
        self._banked = {"web": [0, 0], "peer": [0, 0]}
        self.peers_seen = set()
        self.peers_fed = set()  # hosts this side sent payload to
        self.complete = set()   # hosts of receivers holding every wanted
        self.peers = 0
        self.web_seeds = 0
        self.peer_info = []     # the last update's connections
        self.unchoked = 0       # peers this side unchoked at the last one
        self.unchoked_most = 0

    def update(self, handle):
        """Read the torrent's connections once."""
        seen = {}
        peers = webs = unchoked = 0
        self.peer_info = handle.get_peer_info()
        for peer in self.peer_info:
            web = peer.connection_type in (self.lt.peer_info.web_seed,
                                           self.lt.peer_info.http_seed)
            kind = "web" if web else "peer"
            host = peer.ip[0]
            key = (kind, tuple(peer.ip))
            counts = (peer.total_download, peer.total_upload)
            last = self._last.get(key)
            if last is not None and (counts[0] < last[0] or
                                     counts[1] < last[1]):
                self._bank(kind, last)
            seen[key] = counts
            if web:
                webs += 1
                continue
            peers += 1
            unchoked += not peer.flags & self.lt.peer_info.choked
            self.peers_seen.add(host)
            if counts[1] > 0:
                self.peers_fed.add(host)
            if self.wanted and _client(peer).startswith(_RECEIVER) and \
                    self._holds_all(peer.pieces):
                self.complete.add(host)
        self._last.update(seen)     # a closed connection keeps its count
        self.peers, self.web_seeds = peers, webs
        self.unchoked = unchoked
        self.unchoked_most = max(self.unchoked_most, unchoked)

    def disconnected(self, alert):
        """A peer_disconnected_alert: libtorrent closes a connection
        between two torrents that both hold all they want (upload to
        upload), often before a tick sees its pieces: a receiver's peer id
        on such a close, while this one is finished, is a receiver that
        holds every wanted piece (--seed-until)."""
        if alert.reason != self.lt.close_reason_t.upload_to_upload:
            return
        if bytes(alert.pid.to_bytes()).startswith(_RECEIVER_ID):
            ip = alert.ip
            self.complete.add(ip[0] if isinstance(ip, tuple) else str(ip))

    def _bank(self, kind, counts):
        self._banked[kind][0] += counts[0]
        self._banked[kind][1] += counts[1]

    def _holds_all(self, pieces):
        if not pieces:
            return False
        try:
            return all(pieces[i] for i in self.wanted)
        except IndexError:
            return False

    def _sum(self, kind, column):
        return self._banked[kind][column] + sum(
            counts[column] for key, counts in self._last.items()
            if key[0] == kind)

    @property
    def web_seed_bytes(self):
        return self._sum("web", 0)


class Stall:
    """When no byte has come for a while: `note()` gives the seconds of
    silence to tell (10 s, then 20, 40 ...), once each; `over(wait)` says
    whether --wait is past."""

    FIRST = 10

    def __init__(self):
        self.since = time.monotonic()
        self.bytes = 0
        self.next = self.FIRST

    def moved(self, total):
        if total != self.bytes:
            self.bytes = total
            self.since = time.monotonic()
            self.next = self.FIRST

    @property
    def quiet(self):
        return time.monotonic() - self.since

    def note(self):
        if self.quiet < self.next:
            return None
        told, self.next = self.next, self.next * 2
        return told

    def over(self, wait):
        return wait is not None and self.quiet >= wait
