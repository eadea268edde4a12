"""`rdeploy swarm receive`: a torrent of rdeploy written onto TARGET by
libtorrent, piece by piece as they come, served to the others from what
was written, then checked against the image's own digests.

1. A magnet link's info dict is fetched first (from the peers, BEP 9) in
   a torrent that downloads nothing, then removed.
2. target.open_target: TARGET's size and use checked, the guard zones
   zeroed and the restore marker written (or, on a target marked by an
   earlier receive of the same root, resumed: libtorrent rechecks what is
   there instead of taking the target for empty).
3. The torrent's one file NAME.raw is a symlink, in a private temporary
   directory, to TARGET; libtorrent writes it with posix I/O.  Priorities:
   the wanted pieces that are not held first (4; every other piece 0:
   free space is never fetched), then the held ones (guard zones), the
   piece holding byte 0 last of all.  libtorrent only announces pieces it
   wrote and hash-checked, so nothing is served that this machine did not
   write.
4. target.check: every DATA and ZERO record of the image's index against
   TARGET, and the root digest; then the seed phase (--seed-time,
   --seed-until), the torrent removed (nothing is served once the disk
   changes), target.finish (backup GPT, new ids, the marker cleared).

No byte for `wait` seconds: NetworkError (15), TARGET left marked.  An
interrupt leaves it marked as well (verify-target exits 13); the same
command finishes it.
"""

import os
import tempfile
import time

from ..errors import NetworkError, TargetChangedError
from . import libtorrent, session as sessions, source as sources
from . import target as targets
from .tally import Stall, Tally
from .webseeds import WebSeeds

PRIORITY = 4
TICK = 0.5
#: With --seed-until, a receiver serves at least this long after its
#: check, so that the others see it whole (their next look at its pieces)
#: before it leaves.
SHOWN = 3.0


class Receive:
    """One receive: `run()` returns its summary."""

    def __init__(self, source, target, *, listen, source_name, peers=(),
                 upload_rate=None, download_rate=None, seed_time=0,
                 seed_until=None, wait=None, new_ids=False, progress=None,
                 check_progress=None, status=None, warn=None):
        self.lt = libtorrent()
        self.source, self.target = source, target
        self.source_name = source_name      # SOURCE as given
        self.shown = sources.shown(source_name)
        self.extra_peers = list(peers)
        self.listen, self.wait = listen, wait
        self.rates = (upload_rate, download_rate)
        self.seed_time, self.seed_until = seed_time or 0, seed_until
        self.new_ids = new_ids
        self.progress, self.check_progress = progress, check_progress
        self.status, self.warn = status, warn
        self.session = self.handle = self.desc = None
        self.tmpdir = None
        self.marked = False
        self.done = self.total = self.downloaded = 0
        self.zero = []
        self.tally = self.webseeds = None
        self.hash_failures = 0
        self.told = set()

    # -- the session -------------------------------------------------------

    def _peers(self, known):
        peers = []
        for peer in list(known) + self.extra_peers:
            if peer not in peers:
                peers.append(tuple(peer))
        return peers

    def _open(self, known, web_seeds):
        upload, download = self.rates
        self.session = sessions.open_session(
            listen=self.listen, upload_rate=upload, download_rate=download,
            peers=self._peers(known), web_seeds=web_seeds)

    def _alerts(self):
        """Read the alerts: a write error is fatal (TARGET marked); a
        tracker that cannot be reached is told once, never fatal."""
        lt = self.lt
        for alert in self.session.pop_alerts():
            if isinstance(alert, (lt.file_error_alert,
                                  lt.torrent_error_alert)):
                raise self._failed(alert.message())
            if isinstance(alert, lt.hash_failed_alert):
                self.hash_failures += 1
            elif isinstance(alert, lt.peer_disconnected_alert) and \
                    self.tally is not None:
                self.tally.disconnected(alert)
            elif isinstance(alert, lt.tracker_error_alert):
                why = alert.error.message() if alert.error.value() else \
                    alert.error_message() or alert.message()
                self._tell_once(f"tracker {alert.tracker_url()}: {why} "
                                f"(not fatal: peers come from the others "
                                f"too)")

    def _tell_once(self, text):
        key = text.split(":", 1)[0]
        if key not in self.told and self.warn is not None:
            self.told.add(key)
            self.warn(text)

    def _failed(self, why):
        state = (f"{self.target} is marked incomplete (rdeploy "
                 f"verify-target exits 13)") if self.marked else \
            f"nothing written to {self.target}"
        return TargetChangedError(f"swarm receive failed: {why}; {state}")

    # -- a magnet link's metadata ------------------------------------------

    def _metadata(self, magnet):
        lt = self.lt
        params = lt.parse_magnet_uri(magnet.uri)
        self.tmpdir = tempfile.mkdtemp(prefix="rdeploy-swarm-")
        params.save_path = self.tmpdir
        params.flags |= lt.torrent_flags.upload_mode
        params.flags &= ~lt.torrent_flags.auto_managed & \
            ~lt.torrent_flags.paused
        params.file_priorities = [0]
        handle = self.session.add_torrent(params)
        sessions.connect(handle, self._peers(magnet.peers))
        stall = Stall()
        try:
            while not handle.status().has_metadata:
                self.session.wait_for_alert(int(TICK * 1000))
                self._alerts()
                if stall.over(self.wait):
                    raise NetworkError(
                        f"{self.shown}: no peer gave the torrent's "
                        f"metadata within {self.wait} s (--wait; peers: "
                        f"{handle.status().num_peers}); nothing written to "
                        f"{self.target}")
            info = handle.torrent_file().info_section()
        finally:
            self.session.remove_torrent(handle)
        return sources.from_metadata(magnet, bytes(info))

    # -- the download --------------------------------------------------------

    def _add(self, resumed):
        desc, lt = self.desc, self.lt
        if self.tmpdir is None:
            self.tmpdir = tempfile.mkdtemp(prefix="rdeploy-swarm-")
        os.symlink(os.path.abspath(self.target),
                   os.path.join(self.tmpdir, desc.name))
        flags = 0 if resumed else getattr(lt.torrent_flags,
                                          "no_verify_files", 0)
        peers = self._peers(desc.peers)
        self.webseeds = WebSeeds(lt, None, desc.web_seeds, peers=peers,
                                 fallback=bool(peers or desc.trackers),
                                 download_rate=self.rates[1])
        params = sessions.add_params(desc, self.tmpdir, peers=peers,
                                     flags=flags,
                                     web_seeds=self.webseeds.initial())
        held, zero = set(desc.held_pieces()), set(self.zero)
        params.piece_priorities = [
            PRIORITY if marks and i not in held and i not in zero else 0
            for i, marks in enumerate(desc.wanted_marks())]
        self.handle = self.webseeds.handle = \
            self.session.add_torrent(params)
        sessions.connect(self.handle, self._peers(desc.peers))

    def _zero(self):
        """Zero the wanted pieces that hold no DATA byte on the target
        itself (a punched hole, BLKZEROOUT) instead of fetching them: they
        are zeros in NAME.raw.  libtorrent is never told it has them, so
        they are not served (every receiver zeroes its own)."""
        from ..host.device import open_target, sync, zero_range
        ranges = []
        for index in self.zero:
            start, end = self.desc.piece_range(index)
            if ranges and ranges[-1][1] == start:
                ranges[-1][1] = end
            else:
                ranges.append([start, end])
        if not ranges:
            return
        with open_target(self.target) as disk:
            for start, end in ranges:
                zero_range(disk, start, end - start)
            sync(disk)

    def _phases(self):
        """The pieces of each phase, in order: the wanted pieces not held,
        the held ones but the last, the last (byte 0's); those zeroed
        here are in none."""
        zero = set(self.zero)
        held = [i for i in self.desc.held_pieces() if i not in zero]
        hold = set(held)
        first = [i for i in self.desc.wanted_pieces()
                 if i not in hold and i not in zero]
        return [p for p in (first, held[:-1], held[-1:]) if p]

    def _piece_bytes(self, indices):
        desc = self.desc
        return sum(desc.piece_range(i)[1] - desc.piece_range(i)[0]
                   for i in indices)

    def _tick(self, stall, phase_name):
        self.session.wait_for_alert(int(TICK * 1000))
        self._alerts()
        status = self.handle.status()
        self.tally.update(self.handle)
        self.downloaded = status.total_payload_download
        stall.moved(self.downloaded)
        self.webseeds.announce()
        if phase_name == "download":
            self.webseeds.update(self.tally.peer_info, stall.quiet)
        if self.status is not None:
            self.status({
                "phase": phase_name, "done": self.done, "total": self.total,
                "peers": self.tally.peers, "web_seeds": self.tally.web_seeds,
                "download_rate": status.download_payload_rate,
                "upload_rate": status.upload_payload_rate,
                "web_seed_bytes": self.tally.web_seed_bytes,
                "peer_bytes": max(0, self.downloaded -
                                  self.tally.web_seed_bytes),
                "uploaded_bytes": status.total_payload_upload})
        return status

    def _download(self):
        wanted = self.desc.wanted_pieces()
        self.total = self._piece_bytes(wanted)
        stall = Stall()
        phases, zero = self._phases(), set(self.zero)
        for number, pieces in enumerate(phases):
            if number:
                self.handle.prioritize_pieces(
                    [(i, PRIORITY) for i in pieces])
            while True:
                status = self._tick(stall, "download")
                have = status.pieces
                if have:
                    self.done = self._piece_bytes(
                        i for i in wanted if have[i] or i in zero)
                if self.progress is not None:
                    self.progress(self.done, self.total)
                if have and all(have[i] for i in pieces):
                    break
                self._stalled(stall)
        self.handle.flush_cache()

    def _stalled(self, stall):
        if stall.over(self.wait):
            raise NetworkError(
                f"no data for {self.wait} s (--wait; peers: "
                f"{self.tally.peers}, web seeds: {self.tally.web_seeds}) "
                f"after {self.done} of {self.total} bytes; {self.target} "
                f"is marked incomplete (rdeploy verify-target exits 13): "
                f"the same swarm receive finishes it")
        told = stall.note()
        if told is not None and self.warn is not None:
            self.warn(f"no data for {told} s; peers: {self.tally.peers}")

    def _seed(self):
        """Serve after the check: for --seed-time seconds, or until
        --seed-until receivers (this one included) hold every wanted piece
        as far as the peers tell, at most --seed-time when it is given."""
        until, limit = self.seed_until, self.seed_time
        if not limit and not until:
            return 0.0
        started = time.monotonic()
        stall = Stall()
        while True:
            self._tick(stall, "seed")
            elapsed = time.monotonic() - started
            if until and 1 + len(self.tally.complete) >= until and \
                    elapsed >= SHOWN:
                break
            if limit and elapsed >= limit:
                break
        return time.monotonic() - started

    def _close(self):
        if self.session is not None:
            if self.handle is not None:
                try:
                    self.session.remove_torrent(self.handle)
                except RuntimeError:
                    pass
            self.session.pause()
            self.session = self.handle = None
        if self.tmpdir is not None:
            if self.desc is not None:
                link = os.path.join(self.tmpdir, self.desc.name)
                if os.path.islink(link):
                    os.unlink(link)     # the link only, never TARGET
            try:
                os.rmdir(self.tmpdir)
            except OSError:
                pass
            self.tmpdir = None

    def run(self):
        started = time.monotonic()
        try:
            source = self.source
            if isinstance(source, sources.Magnet):
                self._open(source.peers, source.web_seeds)
                self.desc = self._metadata(source)
            else:
                self.desc = source
                self._open(source.peers, source.web_seeds)
            resumed = self._open_target()
            self.zero = self.desc.zero_pieces()
            zero = set(self.zero)
            self.tally = Tally(self.lt, [i for i in self.desc.wanted_pieces()
                                         if i not in zero])
            self._zero()
            self._add(resumed)
            self._download()
            checked = targets.check(self.target, self.desc,
                                    progress=self.check_progress)
            seed_seconds = self._seed()
            self.tally.update(self.handle)
            status = self.handle.status()
            tally = self.tally
            self._close()
            finished = targets.finish(self.target, self.desc,
                                      new_ids=self.new_ids,
                                      source_name=self.source_name)
        except KeyboardInterrupt as exc:
            if self.marked:
                exc.done = (f"{self.target}: {self.done} of {self.total} "
                            f"bytes received; marked incomplete (rdeploy "
                            f"verify-target exits 13): the same swarm "
                            f"receive finishes it")
            raise
        finally:
            self._close()
        return {"target": self.target, "source": self.shown,
                "root": self.desc.root.hex(),
                "infohash": self.desc.infohash,
                "wanted_bytes": self.total,
                "zeroed_bytes": self._piece_bytes(self.zero),
                "downloaded_bytes": self.downloaded,
                "web_seed_bytes": min(tally.web_seed_bytes, self.downloaded),
                "peer_bytes": max(0, self.downloaded - tally.web_seed_bytes),
                "uploaded_bytes": status.total_payload_upload,
                "checked_bytes": checked.get("checked_bytes"),
                "hash_failures": self.hash_failures,
                "receivers_complete": 1 + len(tally.complete),
                "seconds": time.monotonic() - started,
                "seed_seconds": seed_seconds, "resumed": resumed,
                **self.webseeds.summary(),
                "actions": finished, "verified": True}

    def _open_target(self):
        opened = targets.open_target(self.target, self.desc,
                                     self.source_name, yes_checked=True)
        self.marked = True
        if isinstance(opened, dict):
            return bool(opened.get("resume"))
        return bool(opened)


def receive(source, target, **options):
    """Receive `source` (a Descriptor or a source.Magnet) onto `target`;
    options as Receive takes them.  Returns the summary dict."""
    return Receive(source, target, **options).run()
