"""Disk images carried by BitTorrent (`rdeploy swarm`, docs/swarm.md).

The mapping (descriptor.py, rawview.py, target.py) needs no network: a v1
single-file torrent over the raw disk, whose info dict also carries the
image's skeleton (file header, metadata, index and trailer).  The sessions
(session.py, receiver.py, seeder.py) run on libtorrent, imported here only
when they are used.
"""

from ..errors import MissingToolError


def libtorrent():
    """The libtorrent module (its Python bindings), or MissingToolError
    (exit 10) naming the pip and the Debian package."""
    try:
        import libtorrent as lt
    except ImportError:
        raise MissingToolError(
            "libtorrent", "python3-libtorrent",
            what="rdeploy swarm (pip package libtorrent)") from None
    return lt
