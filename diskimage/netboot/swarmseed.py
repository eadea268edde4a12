"""`pxeconf serve`'s BitTorrent seeder: the site's `swarm-seed` torrents
(docs/pxeconf/site.md) served by libtorrent through diskimage.swarm's
seeder, on a thread of serve's own process (pxeconf runs no rdeploy).

- Each torrent is seeded from the NAME.raw beside it in the boot root
  (what `rdeploy swarm prepare` wrote there), which serve's HTTP server
  also publishes: a torrent prepared with `--web-seed=URL-of-the-root`
  has this server as its web seed (BEP 19, Range requests) even when no
  peer is up.
- It listens on serve's --listen address, port `swarm-port` (6881); its
  upload is capped at `swarm-upload-rate` Mbit/s; `swarm-tracker = PORT`
  also runs opentracker (the seeder's child, which dies with serve).
- It starts with serve (a torrent that does not load, libtorrent
  missing, a swarm-port another program holds: serve does not start,
  with that error's exit code) and stops with it, before the servers.
- An edit of the site file that changes what is seeded (or a torrent or
  its NAME.raw replaced) restarts it; an edit whose torrents do not load
  is logged and the seeder keeps what it seeded.  A seeder that fails
  while serving stops the service, as dnsmasq's death does.
- Every LOG_EVERY seconds, when a count moved, one line says what each
  torrent uploaded and to how many peers; the last line comes at its
  stop.
"""

import os
import threading
import time

from ..errors import DiskImageError, InputError
from ..sizes import format_size
from . import rootpath

LOG_EVERY = 60.0


def _torrent(root, name):
    """The torrent `name` of swarm-seed as a path under `root` (not
    followed through links: NAME.raw is beside the name the site gives)."""
    try:
        rel = rootpath.resolve(root, name)[1]
    except FileNotFoundError:
        raise InputError(f"swarm-seed: {name}: no such file in the boot "
                         f"root {root}") from None
    except rootpath.Refused as exc:
        raise InputError(f"swarm-seed: {name}: {exc}") from None
    return os.path.join(root, rel)


def plan(settings, root, listen):
    """What `settings` ask to seed, as a comparable tuple: (torrents as
    absolute paths, (host, port), upload rate in bytes/s or None, tracker
    port or None, the stamps of the files); None when nothing."""
    if not settings.swarm_seed:
        return None
    torrents = tuple(_torrent(root, name) for name in settings.swarm_seed)
    stamps = tuple(rootpath.stamp(path) for path in torrents) + tuple(
        rootpath.stamp(path[:-len(".torrent")] + ".raw")
        for path in torrents)
    rate = settings.swarm_upload_rate
    return (torrents, (listen, settings.swarm_port),
            None if rate is None else rate * 1_000_000 // 8,
            settings.swarm_tracker, stamps)


class Seeding:
    """The seeder serve runs (at most one): use() starts, restarts or
    stops it as the site asks; stop() at the end."""

    def __init__(self, log, on_exit):
        self.log = log
        self.on_exit = on_exit      # called with the error that ended it
        self.plan = None
        self.seeder = None
        self.thread = None
        self.stopping = threading.Event()

    def use(self, settings, root, listen, reloading=False):
        """Seed what `settings` name.  At start (not `reloading`) a seeder
        that cannot start raises; on a reload it is logged."""
        try:
            wanted = plan(settings, root, listen)
            if wanted == self.plan:
                return
            if wanted is not None and reloading:
                from ..swarm import seeder
                for path in wanted[0]:          # before the old one stops
                    seeder.load_torrent(path)
        except (DiskImageError, OSError) as exc:
            if not reloading:
                raise
            self.log(f"swarm: the site's torrents do not load; still "
                     f"seeding what was seeded: {exc}")
            return
        self.stop()
        if wanted is None:
            return
        try:
            self._start(wanted, root)
        except DiskImageError as exc:
            if not reloading:
                raise
            self.log(f"error: swarm: the seeder did not start; nothing is "
                     f"seeded until the site file changes: {exc}")

    def _start(self, wanted, root):
        from ..swarm import seeder
        torrents, listen, rate, tracker, _ = wanted
        self.root, self.said, self.last = root, None, time.monotonic()
        self.seeder = seeder.Seeder(list(torrents), listen=listen,
                                    upload_rate=rate, tracker_port=tracker,
                                    progress=self._progress)
        self.plan = wanted
        self.stopping.clear()
        names = ", ".join(os.path.relpath(t, root) for t in torrents)
        self.log(f"swarm: seeding {names} on {listen[0]}:{listen[1]}"
                 + (f", upload at most {rate * 8 / 1e6:g} Mbit/s" if rate
                    else "")
                 + (f", opentracker on port {tracker}" if tracker else ""))
        self.thread = threading.Thread(target=self._run, args=(self.seeder,),
                                       name="serve-swarm", daemon=True)
        self.thread.start()

    def _run(self, seeder):
        try:
            seeder.run(self.stopping.is_set)
        except Exception as exc:        # noqa: BLE001 - ends the service
            if not self.stopping.is_set():
                self.on_exit(exc if isinstance(exc, DiskImageError) else
                             DiskImageError(f"swarm seeder: {exc}"))
        finally:
            try:
                self.log(f"swarm: stopped seeding: "
                         f"{self._words(seeder.summary())}")
            finally:
                seeder.close()

    def _words(self, summary):
        return "; ".join(
            f"{os.path.relpath(t['torrent'], self.root)} "
            f"{format_size(t['uploaded_bytes'])} uploaded (peers seen: "
            f"{t['peers_seen']})" for t in summary["torrents"])

    def _progress(self, summary):
        """The seeder's every tick: a line every LOG_EVERY s at most, when
        the counts moved."""
        if time.monotonic() - self.last < LOG_EVERY:
            return
        self.last = time.monotonic()
        words = self._words(summary)
        if words != self.said:
            self.said = words
            self.log(f"swarm: {words}")

    def stop(self):
        if self.thread is not None:
            self.stopping.set()
            self.thread.join(30)
            self.thread = None
        self.seeder = None
        self.plan = None
