"""A receiver's web seeds as a fallback, and its retries when its sources
all went away (docs/swarm.md, "Web seeds").

libtorrent asks a web seed for pieces whenever it has one, also while
peers could give them: so every receiver pulled about a share of the
disk from the server's HTTP port beside what the seeder sent, and the
server uploaded two images' worth and more.  Here a receiver whose
torrent names peers or trackers (or that was given --peer) starts
without its web seeds, and adds them (handle.add_url_seed) only

* when no connected peer has a wanted piece it lacks and unchokes it, for
  GRACE seconds (no seeder reachable, or the last pieces nobody has), or
* when what peers give stays under FLOOR bytes a second for PATIENCE
  seconds (a seeder on a slow link);

and removes them again once peers that can serve it give at least twice
FLOOR for PATIENCE seconds (after HOLD seconds at least: no flapping).
A torrent with neither peers nor trackers keeps its web seeds throughout.

While they are in use, a web seed libtorrent dropped (an HTTP error, a
connection that broke: it removes some for good) is added again on the
next tick: a transient error never loses it.  And when nothing moved for
RETRY seconds with no peer and no web seed connected, the receiver asks
again: every known peer connected anew, the trackers and the DHT
announced to, the web seeds removed and added (their retry wait reset).
"""

import time

#: Below this many payload bytes a second from peers, web seeds help.
FLOOR = 256 * 1024
GRACE = 3.0
PATIENCE = 5.0
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
        self.started = now
        self.announces = 0

    def initial(self):
        """The URLs the torrent is added with."""
        return [] if self.fallback else list(self.urls)

    def _serving(self, peer_info):
        """(peers that have what we lack and unchoke us, their rate, web
        seed connections)."""
        web_types = (self.lt.peer_info.web_seed, self.lt.peer_info.http_seed)
        serving = rate = webs = 0
        for peer in peer_info:
            if peer.connection_type in web_types:
                webs += 1
                continue
            flags = peer.flags
            if flags & self.lt.peer_info.interesting and \
                    not flags & self.lt.peer_info.choked:
                serving += 1
            rate += peer.payload_down_speed
        return serving, rate, webs

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
        seconds without a byte (`quiet`); add or remove the web seeds."""
        now = time.monotonic()
        serving, rate, webs = self._serving(peer_info)
        if serving:
            self.without = now
        if rate >= self.floor:
            self.slow = now
        if serving and rate >= 2 * self.floor:
            self.fast = self.fast or now
        else:
            self.fast = None
        if self.fallback and not self.on and (
                now - self.without >= GRACE or now - self.slow >= PATIENCE):
            self._add()
        elif self.fallback and self.on and self.fast is not None and \
                now - self.fast >= PATIENCE and now - self.switched >= HOLD:
            self._remove()
        elif self.on:
            self._keep()
        if quiet >= RETRY and not serving and not webs and \
                now - self.retried >= RETRY:
            self._retry()

    def _add(self):
        for url in self.urls:
            self.handle.add_url_seed(url)
        self.on, self.switched = True, time.monotonic()
        self.added += 1

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
                "web_seeds_readded": self.readded,
                "retries": self.retries}
