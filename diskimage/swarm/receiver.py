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
import signal
import tempfile
import time

from .. import sighold
from ..errors import DiskImageError, NetworkError, TargetChangedError
from . import libtorrent, session as sessions, source as sources
from . import diskfault, metadata, target as targets, webprobe
from .hold import refuse_own_files
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
        self.held = self.marker = None  # TARGET's hold (hold.py), marker
        self.noted, self.last_phase = 0.0, False
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
                raise self._failed(diskfault.fault(alert, self.target))
            if isinstance(alert, lt.hash_failed_alert):
                self.hash_failures += 1
            elif isinstance(alert, (lt.url_seed_alert, lt.peer_error_alert)):
                url, why = webprobe.fault(
                    lt, alert, self.desc.web_seeds if self.desc else ())
                if url is None:
                    continue
                self._tell_once(f"web seed {url}: {why} (a web seed must "
                                f"answer Range requests with 206: "
                                f"python3 -m http.server does not)", url)
            elif isinstance(alert, lt.peer_disconnected_alert) and \
                    self.tally is not None:
                self.tally.disconnected(alert)
            elif isinstance(alert, lt.tracker_error_alert):
                why = alert.error.message() if alert.error.value() else \
                    alert.error_message() or alert.message()
                self._tell_once(f"tracker {alert.tracker_url()}: {why} "
                                f"(not fatal: peers come from the others "
                                f"too)")

    def _tell_once(self, text, key=None):
        key = key or text.split(":", 1)[0]
        if key not in self.told and self.warn is not None:
            self.told.add(key)
            self.warn(text)

    def _failed(self, why):
        state = diskfault.MARKED if self.marked else \
            "nothing written to it"
        return TargetChangedError(f"{why}; {state}")

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
        """The wanted pieces with no DATA byte zeroed on TARGET itself
        (target.zero_pieces) instead of fetched."""
        targets.zero_pieces(self.target, self.desc, self.zero)

    def _note(self, force=False):
        """The marker's done/total bytes brought up to date (verify-target
        tells them), every 5 s, and never once byte 0's piece may come."""
        now = time.monotonic()
        if self.last_phase or not (force or now - self.noted >= 5):
            return
        self.noted = now
        targets.note_progress(self.target, self.marker, self.done,
                              self.total)

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
        """Fetch the phases in order.  done/total count the bytes to
        fetch: the pieces zeroed here are in neither (summary:
        zeroed_bytes), so the bar starts at 0."""
        zero = set(self.zero)
        wanted = [i for i in self.desc.wanted_pieces() if i not in zero]
        self.total = self._piece_bytes(wanted)
        stall = Stall()
        phases = self._phases()
        for number, pieces in enumerate(phases):
            self.last_phase = 0 in pieces     # the marker's piece
            if number:
                self.handle.prioritize_pieces(
                    [(i, PRIORITY) for i in pieces])
            while True:
                status = self._tick(stall, "download")
                have = status.pieces
                if have:
                    self.done = self._piece_bytes(
                        i for i in wanted if have[i])
                if self.progress is not None:
                    self.progress(self.done, self.total)
                self._note()
                if have and all(have[i] for i in pieces):
                    break
                self._stalled(stall)
        self.handle.flush_cache()

    def _stalled(self, stall):
        if stall.over(self.wait):
            self._note(force=True)
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
        as far as the peers tell, at most --seed-time when it is given.
        (seconds, the KeyboardInterrupt that stopped it or None): an
        interrupt here still lets the verified target be finished."""
        until, limit = self.seed_until, self.seed_time
        if not limit and not until:
            return 0.0, None
        started = time.monotonic()
        stall = Stall()
        try:
            while True:
                self._tick(stall, "seed")
                elapsed = time.monotonic() - started
                if until and 1 + len(self.tally.complete) >= until and \
                        elapsed >= SHOWN:
                    break
                if limit and elapsed >= limit:
                    break
        except KeyboardInterrupt as exc:
            return time.monotonic() - started, exc
        return time.monotonic() - started, None

    def _finish(self, stopped, seconds):
        """targets.finish (signals held: it is short and must not be cut);
        after an interrupt of the seed phase, that interrupt raised again
        saying what was done."""
        if stopped is None:
            return targets.finish(self.target, self.desc,
                                  new_ids=self.new_ids,
                                  source_name=self.source_name)
        how = signal.Signals(getattr(stopped, "signum", signal.SIGINT)).name
        head = (f"{self.target}: verified; seeding stopped by {how} after "
                f"{seconds:.0f} s")
        try:
            with sighold.held():
                finished = targets.finish(self.target, self.desc,
                                          new_ids=self.new_ids,
                                          source_name=self.source_name)
        except DiskImageError as exc:
            stopped.done = (f"{head}; finishing it failed: {exc}; it is "
                            f"checked but not finished (verify-target "
                            f"exits 13 while a marker is on it)")
            raise stopped from None
        steps = ["new identities given" if step == "new identities" else
                 step for step in finished["steps"]]
        stopped.done = f"{head}; " + ("; ".join(steps) or "finished")
        raise stopped

    def _close(self):
        if self.session is not None:
            if self.handle is not None:
                try:
                    for url in self.handle.url_seeds():
                        self.handle.remove_url_seed(url)
                    self.session.remove_torrent(self.handle)
                except RuntimeError:
                    pass
            self.session.pause()
            box, self.session, self.handle = [self.session], None, None
            sessions.let_go(box)
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
                self.desc = metadata.fetch(self, source)
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
                                    progress=self.check_progress,
                                    marker=self.marker)
            seed_seconds, stopped = self._seed()
            self.tally.update(self.handle)
            status = self.handle.status()
            tally = self.tally
            self._close()
            self._let_go()      # finish opens it O_EXCL itself
            finished = self._finish(stopped, seed_seconds)
        except KeyboardInterrupt as exc:
            if self.marked and not getattr(exc, "done", None):
                self._note(force=True)
                exc.done = (f"{self.target}: {self.done} of {self.total} "
                            f"bytes received; marked incomplete (rdeploy "
                            f"verify-target exits 13): the same swarm "
                            f"receive finishes it")
            raise
        finally:
            self._close()
            self._let_go()
        return {"target": self.target, "source": self.shown,
                "root": self.desc.root.hex(),
                "infohash": self.desc.infohash,
                "wanted_bytes": self._piece_bytes(
                    self.desc.wanted_pieces()),
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
        refuse_own_files(self.target, self.source_name, self.desc)
        opened = targets.open_target(self.target, self.desc,
                                     self.source_name, yes_checked=True)
        self.held, self.marker = opened["hold"], opened["marker"]
        self.marked = True
        return bool(opened["resume"])

    def _let_go(self):
        if self.held is not None:
            os.close(self.held)
            self.held = None


def receive(source, target, **options):
    """Receive `source` (a Descriptor or a source.Magnet) onto `target`;
    options as Receive takes them.  Returns the summary dict."""
    return Receive(source, target, **options).run()
