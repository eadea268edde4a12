"""A magnet link's info dict, fetched from the peers (BEP 9) in a torrent
that downloads nothing and is then removed.  Web seeds cannot serve it
(they hold NAME.raw only): a magnet link needs a peer, a tracker, the
DHT or LSD.  The wait is told (a `swarm` status with phase "metadata",
and a line when it starts and after 10, 20, 40 ... s without it), and
ends at --wait."""

import tempfile

from ..errors import NetworkError
from . import session as sessions, source as sources
from .tally import Stall

TICK = 0.5


def fetch(receive, magnet):
    """The Descriptor of `magnet`, for the Receive `receive` (its session,
    peers, wait, alerts and callbacks); NetworkError (15) at --wait."""
    lt, session = receive.lt, receive.session
    params = lt.parse_magnet_uri(magnet.uri)
    receive.tmpdir = tempfile.mkdtemp(prefix="rdeploy-swarm-")
    params.save_path = receive.tmpdir
    params.flags |= lt.torrent_flags.upload_mode
    params.flags &= ~lt.torrent_flags.auto_managed & \
        ~lt.torrent_flags.paused
    params.file_priorities = [0]
    handle = session.add_torrent(params)
    peers = receive._peers(magnet.peers)
    sessions.connect(handle, peers)
    _tell(receive, f"fetching the torrent's metadata from "
                   f"{len(peers)} peers and {len(magnet.trackers)} trackers "
                   f"(and the DHT, LSD; web seeds cannot serve it)")
    stall = Stall()
    try:
        while not handle.status().has_metadata:
            session.wait_for_alert(int(TICK * 1000))
            receive._alerts()
            count = handle.status().num_peers
            if receive.status is not None:
                receive.status({"phase": "metadata", "done": 0, "total": 0,
                                "peers": count, "web_seeds": 0,
                                "download_rate": 0, "upload_rate": 0,
                                "web_seed_bytes": 0, "peer_bytes": 0,
                                "uploaded_bytes": 0})
            if stall.over(receive.wait):
                raise NetworkError(
                    f"{receive.shown}: no peer gave the torrent's metadata "
                    f"within {receive.wait} s (--wait; peers: {count}); "
                    f"nothing written to {receive.target}")
            told = stall.note()
            if told is not None:
                _tell(receive, f"no metadata for {told} s; peers "
                               f"connected: {count}")
        info = handle.torrent_file().info_section()
    finally:
        session.remove_torrent(handle)
    return sources.from_metadata(magnet, bytes(info))


def _tell(receive, text):
    if receive.warn is not None:
        receive.warn(text)
