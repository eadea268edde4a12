"""`rdeploy swarm seed`: one libtorrent session serving TORRENTs from the
NAME.raw beside each (what `swarm prepare` wrote), in seed mode (no hash
check of the whole file first: libtorrent checks each piece as it first
serves it), until stopped; with `tracker_port`, opentracker beside it
(tracker.py) for the torrents' infohashes.  The summary counts, per
torrent, the bytes uploaded and the peers seen."""

import os
import time

from ..errors import InputError
from . import libtorrent, session as sessions
from .source import load_file
from .hold import hold
from .stepback import SLOTS, StepBack
from .tally import Tally
from .tracker import Tracker

TICK = 0.5


def load_torrent(path):
    """(Descriptor, directory) of TORRENT `path`; its NAME.raw checked:
    there, a file of the torrent's length (InputError, exit 3)."""
    desc = load_file(path)
    directory = os.path.dirname(os.path.abspath(path))
    raw = os.path.join(directory, desc.name)
    try:
        size = os.stat(raw).st_size
    except FileNotFoundError:
        raise InputError(f"{raw}: no such file (the disk's bytes that "
                         f"{path} is served from; rdeploy swarm prepare "
                         f"writes it beside the torrent)") from None
    if size != desc.length:
        raise InputError(f"{raw}: {size} bytes, not the {desc.length} of "
                         f"{path}'s disk: not the file prepare wrote for it")
    return desc, directory


def _step_back(lt, handle, desc):
    """The torrent's StepBack over the pieces receivers fetch (the wanted
    ones they do not zero themselves): those of their first phase, and
    the held ones they fetch last."""
    zero = set(desc.zero_pieces())
    held = [i for i in desc.held_pieces() if i not in zero]
    skip = zero | set(held)
    main = [i for i in desc.wanted_pieces() if i not in skip]
    return StepBack(lt, handle, main, held)


def _hold(desc, directory):
    """Held shared while served: a receive onto it is refused (hold.py)."""
    return hold(os.path.join(directory, desc.name), shared=True,
                error=InputError)


class Seeder:
    """The seeding session (a context manager): `run(stop)` serves until
    `stop()` is true (or an interrupt); `summary()` at any time."""

    def __init__(self, torrents, *, listen, upload_rate=None,
                 tracker_port=None, progress=None, step_back=True):
        self.lt = libtorrent()
        self.paths = list(torrents)
        self.loaded = [load_torrent(p) for p in self.paths]
        self.progress = progress
        self.started = time.monotonic()
        self.tracker = None
        self.handles, self.tallies, self.steps = [], [], []
        self.held = []
        self.unchoked_most = 0      # the most peers unchoked at one tick
        peers = [p for desc, _ in self.loaded for p in desc.peers]
        # SLOTS for each torrent: the session's limit is their sum, and
        # each torrent's max_uploads keeps one from taking the others'
        self.slots = SLOTS if step_back else -1
        self.session = sessions.open_session(
            listen=listen, upload_rate=upload_rate, peers=peers,
            agent=sessions.SEEDER_AGENT,
            unchoke_slots=SLOTS * len(self.loaded) if step_back else -1)
        try:
            if tracker_port is not None:
                self.tracker = Tracker(tracker_port,
                                       [d.infohash for d, _ in self.loaded])
            for desc, directory in self.loaded:
                self.held.append(_hold(desc, directory))
                params = sessions.add_params(
                    desc, directory, flags=self.lt.torrent_flags.seed_mode)
                handle = self.session.add_torrent(params)
                handle.set_max_uploads(self.slots)
                self.handles.append(handle)
                self.tallies.append(Tally(self.lt))
                if step_back:
                    self.steps.append(_step_back(self.lt, handle, desc))
        except BaseException:
            self.close()
            raise

    def _tick(self):
        self.session.wait_for_alert(int(TICK * 1000))
        for alert in self.session.pop_alerts():
            if isinstance(alert, (self.lt.file_error_alert,
                                  self.lt.torrent_error_alert)):
                raise InputError(f"swarm seed: {alert.message()}")
        unchoked = 0
        for handle, tally in zip(self.handles, self.tallies):
            tally.update(handle)
            unchoked += tally.unchoked
        self.unchoked_most = max(self.unchoked_most, unchoked)
        for handle, tally, step in zip(self.handles, self.tallies,
                                       self.steps):
            step.update(tally.peer_info, handle.status().total_payload_upload)
        if self.progress is not None:
            self.progress(self.summary())

    def run(self, stop=None):
        while stop is None or not stop():
            self._tick()
        return self.summary()

    def summary(self):
        torrents = []
        steps = self.steps or [None] * len(self.handles)
        for path, (desc, _), handle, tally, step in zip(
                self.paths, self.loaded, self.handles, self.tallies, steps):
            status = handle.status()
            torrents.append({
                **(step.summary() if step is not None else {}),
                "torrent": path, "infohash": desc.infohash,
                "uploaded_bytes": status.total_payload_upload,
                "peers": tally.peers, "peers_seen": len(tally.peers_seen),
                "peers_fed": len(tally.peers_fed),
                "unchoke_slots": self.slots,
                "unchoked_most": tally.unchoked_most,
                "upload_rate": status.upload_payload_rate})
        return {"torrents": torrents,
                "uploaded_bytes": sum(t["uploaded_bytes"] for t in torrents),
                "unchoked_most": self.unchoked_most,
                "tracker_port": self.tracker and self.tracker.port,
                "seconds": time.monotonic() - self.started}

    def close(self):
        if self.session is not None:
            for handle in self.handles:
                self.session.remove_torrent(handle)
            self.session.pause()
            box, self.session = [self.session], None
            sessions.let_go(box)
        if self.tracker is not None:
            self.tracker.stop()
            self.tracker = None
        while self.held:
            os.close(self.held.pop())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def seed(torrents, *, listen, upload_rate=None, tracker_port=None,
         progress=None, stop=None, ready=None, step_back=True):
    """Serve `torrents` until `stop()` is true; the summary.  `ready()`
    once every torrent is served (and the tracker runs).  On an interrupt
    the summary so far rides on the KeyboardInterrupt (`.summary`) for the
    command to print."""
    with Seeder(torrents, listen=listen, upload_rate=upload_rate,
                tracker_port=tracker_port, progress=progress,
                step_back=step_back) as seeder:
        if ready is not None:
            ready()
        try:
            return seeder.run(stop)
        except KeyboardInterrupt as exc:
            exc.summary = seeder.summary()
            raise
