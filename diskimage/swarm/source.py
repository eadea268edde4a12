"""SOURCE of `rdeploy swarm receive`: a .torrent file, its http(s) URL
(read with diskimage.remote's HTTP code: TLS verified, --ca-file, retries)
or a magnet link, whose info dict comes from the peers (BEP 9) and is
then parsed as a torrent's would be."""

import base64
import dataclasses
import re
from urllib.parse import parse_qsl, urlsplit

from ..errors import InputError, UsageError
from ..image import format as fmt
from ..remote import is_url, open_input
from ..remote.urls import shown as url_shown
from . import descriptor
from .target import PREFIX, marker_name

#: The largest descriptor read (a torrent of rdeploy holds its skeleton:
#: metadata and index, some MiB for a large disk).
MAX_TORRENT = 16 << 20

_HEX = re.compile(r"^[0-9a-fA-F]{40}$")
_BASE32 = re.compile(r"^[A-Za-z2-7]{32}$")


@dataclasses.dataclass
class Magnet:
    """A magnet link: `infohash` (v1, hex), its display name, trackers,
    web seeds and peers ((host, port) of x.pe)."""

    uri: str
    infohash: str
    name: str = ""
    trackers: list = dataclasses.field(default_factory=list)
    web_seeds: list = dataclasses.field(default_factory=list)
    peers: list = dataclasses.field(default_factory=list)


def is_magnet(text):
    return isinstance(text, str) and text[:8].lower() == "magnet:?"


def parse_magnet(uri):
    """The Magnet of `uri`; InputError (3) when it names no v1 infohash."""
    from .session import peer_address
    shown_uri = shown(uri)
    infohash, fields = None, Magnet(uri, "")
    for key, value in parse_qsl(urlsplit(uri).query, keep_blank_values=True):
        if key == "xt" and value.lower().startswith("urn:btih:"):
            text = value[9:]
            if _HEX.match(text):
                infohash = text.lower()
            elif _BASE32.match(text):
                infohash = base64.b32decode(text.upper()).hex()
        elif key == "dn":
            fields.name = value
        elif key == "tr":
            fields.trackers.append(value)
        elif key == "ws":
            fields.web_seeds.append(value)
        elif key == "x.pe":
            try:
                fields.peers.append(peer_address(value, "x.pe"))
            except UsageError:
                raise InputError(f"{shown_uri}: x.pe={value!r} is not "
                                 f"HOST:PORT") from None
    if infohash is None:
        raise InputError(f"{shown_uri}: a magnet link without a v1 "
                         f"infohash (xt=urn:btih:40 hex digits)")
    fields.infohash = infohash
    return fields


def shown(source):
    """SOURCE as messages name it: the restore marker's name without its
    "swarm:" (target.marker_name: a path made absolute, a URL without
    credentials or query, a magnet link cut at its first "&")."""
    return marker_name(source)[len(PREFIX):]


def load(source, *, ca_file=None, on_retry=None):
    """The Descriptor of SOURCE (a file or an http(s) URL), or the Magnet
    of a magnet link.  InputError (3) for a missing file or one that is
    not a torrent of rdeploy, NetworkError (15) for an unreadable URL,
    CorruptImageError (4) for a damaged skeleton.  `on_retry(text)` is
    told of each wait before the URL is tried again."""
    if is_magnet(source):
        return parse_magnet(source)
    if not is_url(source):
        return load_file(source)
    name = url_shown(source)
    try:
        with open_input(source, ca_file=ca_file, on_retry=on_retry) as remote:
            if remote.size is not None and remote.size > MAX_TORRENT:
                raise InputError(f"{name}: {remote.size} bytes: larger than "
                                 f"any torrent of rdeploy "
                                 f"({MAX_TORRENT >> 20} MiB)")
            data = remote.read(MAX_TORRENT + 1)
    except InputError as exc:       # remote's words are an image's
        text = str(exc).replace("no such image on the server",
                                "no such torrent on the server")
        raise InputError(text) from None
    return _parse(data, name)


def load_file(path):
    """The Descriptor of the .torrent file at `path` (InputError for a
    missing or unreadable file, one larger than MAX_TORRENT, or one that
    is not a torrent of rdeploy)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_TORRENT + 1)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: a directory, not a torrent") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read it: {exc.strerror}") \
            from None
    return _parse(data, path)


def _parse(data, name):
    if data.startswith(fmt.MAGIC):
        raise InputError(f"{name}: an rdeploy image, not a torrent: use "
                         f"rdeploy restore, or rdeploy swarm prepare it "
                         f"first")
    if len(data) > MAX_TORRENT:
        raise InputError(f"{name}: larger than any torrent of rdeploy "
                         f"({MAX_TORRENT >> 20} MiB)")
    return descriptor.parse_torrent(data, name)


def from_metadata(magnet, info_bytes):
    """The Descriptor of a magnet link's info dict fetched from the peers
    (libtorrent checked that it hashes to the link's infohash)."""
    return descriptor.parse_info(
        info_bytes, shown(magnet.uri), web_seeds=magnet.web_seeds,
        trackers=magnet.trackers, peers=magnet.peers)
