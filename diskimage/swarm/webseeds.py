"""A receiver's web seeds as a fallback, and its retries when its sources
all went away (docs/swarm.md, "Web seeds").

libtorrent asks a web seed for pieces whenever it has one, also while
peers could give them: so every receiver pulled about a share of the
disk from the server's HTTP port beside what the seeder sent, and the
server uploaded two images' worth and more.  Here a receiver whose
torrent names peers or trackers (or that was given --peer) starts
without its web seeds, and adds them (handle.add_url_seed) only when its
peers cannot serve it:

* while a seed is connected (the seeder, by its peer id or its
  bitfield: receivers never hold the pieces they zero themselves, so
  are no seeds): when nothing at all came for STARVED seconds, or what
  peers give stays under FLOOR bytes a second for SLOW seconds (a seeder
  on a slow link).  The seeder serves a few peers at a time
  (stepback.SLOTS), so a receiver it chokes waits its turn while the
  pieces come from the others; a slow receiver's own downlink is no
  reason either;
* with no seed connected (the seeder gone, or not reached yet): when no
  connected peer has a wanted piece it lacks and unchokes it for GRACE
  seconds, or what peers give stays under FLOOR for PATIENCE seconds;

and removes them again once peers that can serve it give at least FLOOR
(with a seed connected; twice FLOOR without) for PATIENCE seconds, after
HOLD seconds at least: no flapping.  The rate counts the peers only, and
a web seed shares the receiver's downlink, hence the lower bar while a
seed is connected.  A torrent with neither peers nor trackers keeps its
web seeds throughout.  The summary counts the additions by their reason.

While they are in use, a web seed libtorrent dropped (an HTTP error, a
connection that broke: it removes some for good) is added again on the
next tick: a transient error never loses it.  And when nothing moved for
RETRY seconds with no peer and no web seed connected, the receiver asks
again: every known peer connected anew, the trackers and the DHT
announced to, the web seeds removed and added (their retry wait reset).
"""

import time

from .session import SEEDER_ID

_SEEDER_ID = SEEDER_ID.encode()

#: Below this many payload bytes a second from peers, web seeds help.
FLOOR = 256 * 1024
GRACE = 3.0
PATIENCE = 5.0
#: With a seed connected: seconds with no byte from anyone, and under
#: FLOOR, before the web seeds are added.
STARVED = 5.0
SLOW = 10.0
HOLD = 10.0
RETRY = 5.0
#: Seconds after the start at which the trackers and the DHT are asked
#: again for peers, then every ANNOUNCE_EVERY: receivers started together
#: all announce before any other is listed, and would otherwise learn of
#: each other only from peer exchange a minute later (each pulling the
#: whole disk from the seeder meanwhile), or never once they are all
#: finished (a finished torrent does not connect to peers that peer
#: exchange calls seeds), and --seed-until would wait for good.
ANNOUNCE_AT = (1.0, 3.0, 6.0, 10.0)
ANNOUNCE_EVERY = 5.0


def _seeder(peer):
    """Whether `peer` is `rdeploy swarm seed` by its peer id (a super
    seeding seeder does not tell it holds every piece)."""
    return bytes(peer.pid.to_bytes()).startswith(_SEEDER_ID)


class WebSeeds:
    """One torrent's web seeds; `update()` on every tick of the download.
    `fallback`: start without them (the torrent has other sources)."""

    def __init__(self, lt, handle, urls, *, peers=(), fallback=True,
                 download_rate=None, warn=None):
        self.lt, self.handle = lt, handle
        self.urls = list(urls)
        self.peers = list(peers)
        self.warn = warn
        self.floor = FLOOR if not download_rate else \
            min(FLOOR, int(download_rate) // 4)
        self.fallback = fallback and bool(self.urls)
        self.on = not self.fallback and bool(self.urls)
        now = time.monotonic()
        self.switched = now
        self.without = now        # since when no peer could serve us
        self.slow = now           # since when peers give under the floor
        self.fast = None          # since when peers give 2 * floor
        self.retried = now
        self.added = self.readded = self.retries = 0
        self.reasons = {}         # why they were added -> how often
        self.started = now
        self.announces = 0

    def initial(self):
        """The URLs the torrent is added with."""
        return [] if self.fallback else list(self.urls)

    def _serving(self, peer_info):
        """(peers that have what we lack and unchoke us, their rate, web
        seed connections, whether a seed is connected)."""
        info = self.lt.peer_info
        web_types = (info.web_seed, info.http_seed)
        serving = rate = webs = 0
        seed = False
        for peer in peer_info:
            if peer.connection_type in web_types:
                webs += 1
                continue
            flags = peer.flags
            if flags & info.interesting and not flags & info.choked:
                serving += 1
            if flags & info.seed or _seeder(peer):
                seed = True
            rate += peer.payload_down_speed
        return serving, rate, webs, seed

    def announce(self):
        """Ask the trackers and the DHT for peers again when it is time
        (ANNOUNCE_AT, ANNOUNCE_EVERY): on every tick, downloading or
        seeding."""
        elapsed = time.monotonic() - self.started
        due = ANNOUNCE_AT[self.announces] if \
            self.announces < len(ANNOUNCE_AT) else ANNOUNCE_AT[-1] + \
            ANNOUNCE_EVERY * (self.announces - len(ANNOUNCE_AT) + 1)
        if elapsed < due:
            return
        self.announces += 1
        self._ask()

    def _ask(self):
        """The trackers, the DHT and every known peer, now."""
        self.handle.force_reannounce(
            0, -1, self.lt.reannounce_flags_t.ignore_min_interval)
        self.handle.force_dht_announce()
        for host, port in self.peers:
            try:
                self.handle.connect_peer((host, port))
            except (RuntimeError, TypeError, ValueError):
                pass        # a name: session.connect looked it up at start

    def update(self, peer_info, quiet):
        """Read the connections (`peer_info`, from the tally) and the
        seconds without a byte from anyone (`quiet`); add or remove the
        web seeds."""
        now = time.monotonic()
        serving, rate, webs, seed = self._serving(peer_info)
        if serving:
            self.without = now
        if rate >= self.floor:
            self.slow = now
        bar = self.floor if seed else 2 * self.floor
        if serving and rate >= bar:
            self.fast = self.fast or now
        else:
            self.fast = None
        why = self._why(now, quiet, seed)
        if self.fallback and not self.on and why:
            self._add(why)
        elif self.fallback and self.on and self.fast is not None and \
                now - self.fast >= PATIENCE and now - self.switched >= HOLD:
            self._remove()
        elif self.on:
            self._keep()
        if quiet >= RETRY and not serving and not webs and \
                now - self.retried >= RETRY:
            self._retry()

    def _why(self, now, quiet, seed):
        """Why the web seeds are wanted now (None: they are not)."""
        slow = now - self.slow
        if seed:
            if quiet >= STARVED:
                return "starved"
            return "slow" if slow >= SLOW else None
        if now - self.without >= GRACE:
            return "no_peer_serving"
        return "slow" if slow >= PATIENCE else None

    def _add(self, why):
        for url in self.urls:
            self.handle.add_url_seed(url)
        self.on, self.switched = True, time.monotonic()
        self.added += 1
        self.reasons[why] = self.reasons.get(why, 0) + 1

    def _remove(self):
        for url in self.urls:
            self.handle.remove_url_seed(url)
        self.on, self.switched = False, time.monotonic()

    def _keep(self):
        """Add again a web seed libtorrent removed."""
        have = set(self.handle.url_seeds())
        for url in self.urls:
            if url not in have:
                self.handle.add_url_seed(url)
                self.readded += 1

    def _retry(self):
        """Nothing connected and nothing moving: ask every source again."""
        self.retried = time.monotonic()
        self.retries += 1
        self._ask()
        if self.urls:
            for url in self.urls:
                self.handle.remove_url_seed(url)
            for url in self.urls:
                self.handle.add_url_seed(url)
            self.on, self.switched = True, time.monotonic()

    def summary(self):
        return {"web_seeds_added": self.added,
                "web_seeds_why": dict(self.reasons),
                "web_seeds_readded": self.readded,
                "retries": self.retries}
