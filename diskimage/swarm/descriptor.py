"""The swarm descriptor: a v1 single-file .torrent over an image's raw disk,
its info dict carrying the image's skeleton (docs/swarm.md, "The
descriptor").

:func:`parse_torrent` and :func:`parse_info` read one from hostile bytes:
every size is bounded before it is used, the skeleton's root digest is
recomputed and must equal its trailer's, and every index entry must lie
inside the torrent's one file.  :class:`Descriptor` answers what a
receiver needs: which pieces to fetch (wanted), which to hold back to the
end (the guard zones: tables and partition starts), the magnet link, the
bytes of the .torrent again.
"""

import hashlib
import urllib.parse
from dataclasses import dataclass, field

from ..errors import CorruptImageError, InputError, UnsupportedError
from ..image import format as fmt
from ..image.metacheck import BIG
from ..restoreplan import GUARD_SIZE, TABLE_KINDS
from . import bencode
from . import skeleton as skeleton_mod

VERSION = 1
PIECE_MIN = 64 << 10
PIECE_MAX = 64 << 20
PIECE_DEFAULT = 1 << 20
#: An automatic piece size gives a disk at least this many pieces (down to
#: PIECE_MIN): a swarm spreads a piece only once some receiver holds all of
#: it, and on a 40 MiB disk cut in 1 MiB pieces (22 wanted, 4 of them held
#: to the end) the seeder sent the 8 receivers 2.6-3.7 times the image
#: where 64 KiB pieces took 1.57-2.11 (tests/swarm/test_swarm_times.py); on
#: a 372 MB disk 256 KiB pieces and 1 MiB ones did the same (bench/)
MIN_AUTO_PIECES = 1024
MAX_AUTO_PIECES = 65536
MAX_SKELETON = 64 << 20
HASH_SIZE = 20


def piece_size_for(length, asked=None):
    """`asked` (checked: a power of two, 64 KiB to 64 MiB), else 1 MiB
    halved while the disk is under 1024 pieces (at least 64 KiB), or
    doubled until it is at most 65536 pieces (at most 64 MiB)."""
    if asked is not None:
        if not valid_piece_size(asked):
            raise InputError(f"piece size {asked}: not a power of two from "
                             f"{PIECE_MIN} to {PIECE_MAX} bytes")
        return asked
    size = PIECE_DEFAULT
    while -(-length // size) < MIN_AUTO_PIECES and size > PIECE_MIN:
        size //= 2
    while -(-length // size) > MAX_AUTO_PIECES and size < PIECE_MAX:
        size *= 2
    return size


def valid_piece_size(size):
    return isinstance(size, int) and PIECE_MIN <= size <= PIECE_MAX and \
        size & (size - 1) == 0


@dataclass
class Descriptor:
    """One torrent of rdeploy: `name` is its file's name (NAME.raw),
    `length` the image's disk size; `entries` the index's DATA (kind 1)
    and ZERO (kind 2) records as dicts; `root` the image's root digest;
    `info_bytes` the bencoded info dict as stored, `infohash` its v1
    SHA-1 in hex."""

    name: str
    length: int
    piece_size: int
    piece_hashes: bytes
    skeleton: bytes
    root: bytes
    meta: dict
    entries: list
    info_bytes: bytes
    infohash: str
    web_seeds: list = field(default_factory=list)
    trackers: list = field(default_factory=list)
    peers: list = field(default_factory=list)

    @property
    def num_pieces(self):
        return -(-self.length // self.piece_size)

    def piece_range(self, index):
        """(start, end) disk bytes of piece `index`."""
        start = index * self.piece_size
        return start, min(start + self.piece_size, self.length)

    def _pieces_over(self, ranges):
        marks = bytearray(self.num_pieces)
        size = self.piece_size
        for start, end in ranges:
            if end > start:
                first, last = start // size, (end - 1) // size
                marks[first:last + 1] = b"\1" * (last - first + 1)
        return marks

    def wanted_marks(self):
        """One byte per piece: 1 when it overlaps a DATA or ZERO record."""
        return self._pieces_over((e["disk_offset"], e["disk_offset"] +
                                  e["length"]) for e in self.entries)

    def wanted_pieces(self):
        """The pieces a receiver fetches, ascending: every piece that
        overlaps a DATA or ZERO record (the others are free space)."""
        return [i for i, m in enumerate(self.wanted_marks()) if m]

    def zero_pieces(self):
        """The wanted pieces that overlap no DATA record: all zeros in
        NAME.raw, so a receiver may zero them on the target itself
        (BLKZEROOUT, a punched hole) rather than fetch them."""
        data = self._pieces_over(
            (e["disk_offset"], e["disk_offset"] + e["length"])
            for e in self.entries if e["kind"] == fmt.KIND_DATA)
        return [i for i, m in enumerate(self.wanted_marks())
                if m and not data[i]]

    def guard_zones(self):
        """(start, end) disk ranges zeroed before anything else and
        written last: the table areas (`head` and `disk` up to 1 MiB,
        `ebr` and `gpt-backup` whole) and the first MiB of each
        partition; sorted, overlaps merged."""
        zones = []
        for area in self.meta["areas"]:
            start, size = area["start"], area["size"]
            if area["kind"] in ("ebr", "gpt-backup"):
                zones.append((start, start + size))
            elif area["kind"] in ("head", "disk", "partition"):
                zones.append((start, start + min(size, GUARD_SIZE)))
        merged = []
        for start, end in sorted(z for z in zones if z[1] > z[0]):
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        return merged

    def held_pieces(self):
        """The wanted pieces that overlap a guard zone, in write order:
        those over partition starts first, then those over the table
        areas, the piece holding byte 0 last of all (it overwrites the
        restore marker)."""
        wanted = self.wanted_marks()
        table = self._pieces_over(
            (a["start"], a["start"] + min(a["size"], GUARD_SIZE)
             if a["kind"] in ("head", "disk") else a["start"] + a["size"])
            for a in self.meta["areas"]
            if a["kind"] in TABLE_KINDS or a["kind"] == "disk")
        guarded = self._pieces_over(self.guard_zones())
        held = [i for i in range(self.num_pieces)
                if guarded[i] and wanted[i]]
        order = [i for i in held if not table[i]] + \
            [i for i in held if table[i] and i != 0] + \
            [i for i in held if i == 0]
        return order

    def wanted_bytes(self):
        """The bytes of all wanted pieces (what a fresh receiver fetches)."""
        marks = self.wanted_marks()
        total = marks.count(1) * self.piece_size
        if marks and marks[-1]:
            total -= self.num_pieces * self.piece_size - self.length
        return total

    def magnet(self):
        """magnet:?xt=urn:btih:HEX&dn=NAME&tr=..&ws=..&x.pe=HOST:PORT"""
        quote = urllib.parse.quote
        parts = [f"xt=urn:btih:{self.infohash}", f"dn={quote(self.name)}"]
        parts += [f"tr={quote(t, safe='')}" for t in self.trackers]
        parts += [f"ws={quote(w, safe='')}" for w in self.web_seeds]
        parts += [f"x.pe={quote(_host_port(h, p), safe=':[]')}"
                  for h, p in self.peers]
        return "magnet:?" + "&".join(parts)

    def to_bytes(self):
        """The .torrent: the info dict as stored, and the web seeds,
        trackers and peers."""
        top = {"info": bencode.Raw(self.info_bytes)}
        if self.web_seeds:
            top["url-list"] = list(self.web_seeds)
        if self.trackers:
            top["announce"] = self.trackers[0]
            top["announce-list"] = [[t] for t in self.trackers]
        if self.peers:
            top["nodes"] = [[h, p] for h, p in self.peers]
            top["rdeploy-peers"] = [[h, p] for h, p in self.peers]
        return bencode.encode(top)


def _host_port(host, port):
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def info_dict(name, length, piece_size, piece_hashes, skeleton):
    """The bencoded info dict of a new torrent."""
    return bencode.encode({
        "name": name, "length": length, "piece length": piece_size,
        "pieces": piece_hashes,
        "rdeploy": {"version": VERSION, "skeleton": skeleton}})


# --- reading -----------------------------------------------------------------
def parse_torrent(data, where):
    """The Descriptor of the .torrent bytes `data` (named `where`)."""
    if len(data) > MAX_SKELETON * 2:
        raise InputError(f"{where}: {len(data)} bytes: larger than any "
                         f"torrent of rdeploy")
    top, spans = bencode.decode_top(bytes(data), where)
    if not isinstance(top, dict) or b"info" not in top:
        raise InputError(f"{where}: not a torrent (no info dictionary)")
    start, end = spans[b"info"]
    return parse_info(
        data[start:end], where, web_seeds=_url_list(top, where),
        trackers=_trackers(top, where), peers=_peers(top, where))


def _texts(value, where, key):
    if isinstance(value, bytes):
        value = [value]
    if not isinstance(value, list) or \
            not all(isinstance(v, bytes) for v in value):
        raise InputError(f"{where}: {key} is not a list of strings")
    try:
        return [v.decode() for v in value]
    except UnicodeDecodeError:
        raise InputError(f"{where}: {key} is not UTF-8") from None


def _url_list(top, where):
    return _texts(top.get(b"url-list", []), where, "url-list")


def _trackers(top, where):
    found = []
    if b"announce" in top:
        found += _texts(top[b"announce"], where, "announce")
    tiers = top.get(b"announce-list", [])
    if not isinstance(tiers, list):
        raise InputError(f"{where}: announce-list is not a list")
    for tier in tiers:
        found += _texts(tier, where, "announce-list")
    return list(dict.fromkeys(found))


def _peers(top, where):
    found = []
    for key in (b"rdeploy-peers", b"nodes"):
        items = top.get(key, [])
        if not isinstance(items, list):
            raise InputError(f"{where}: {key.decode()} is not a list")
        for item in items:
            if not (isinstance(item, list) and len(item) == 2 and
                    isinstance(item[0], bytes) and isinstance(item[1], int)
                    and 0 < item[1] < 65536):
                raise InputError(f"{where}: {key.decode()} holds an entry "
                                 f"that is not [host, port]")
            try:
                found.append((item[0].decode(), item[1]))
            except UnicodeDecodeError:
                raise InputError(f"{where}: {key.decode()}: a host that is "
                                 f"not UTF-8") from None
    return list(dict.fromkeys(found))


def parse_info(info_bytes, where, *, web_seeds=(), trackers=(), peers=()):
    """The Descriptor of a bencoded info dict (`info_bytes`, as stored:
    from a .torrent or a magnet's fetched metadata)."""
    info_bytes = bytes(info_bytes)
    info = bencode.decode(info_bytes, where)
    if not isinstance(info, dict):
        raise InputError(f"{where}: not a torrent (its info is not a "
                         f"dictionary)")
    rdeploy = info.get(b"rdeploy")
    if not isinstance(rdeploy, dict):
        raise InputError(f"{where}: not a torrent of rdeploy (no rdeploy "
                         f"key in its info)")
    if rdeploy.get(b"version") != VERSION:
        raise UnsupportedError(f"{where}: rdeploy torrent version "
                               f"{rdeploy.get(b'version')!r}; this tool "
                               f"reads version {VERSION}")
    if b"files" in info:
        raise InputError(f"{where}: a multi-file torrent, not one of rdeploy")
    name = info.get(b"name")
    length = info.get(b"length")
    piece = info.get(b"piece length")
    pieces = info.get(b"pieces")
    skeleton = rdeploy.get(b"skeleton")
    if not isinstance(name, bytes) or not _good_name(name):
        raise InputError(f"{where}: its file name is not a plain name")
    if not isinstance(length, int) or not 0 < length <= BIG:
        raise InputError(f"{where}: length {length!r}: not 1 to 2^63-1")
    if not valid_piece_size(piece):
        raise InputError(f"{where}: piece length {piece!r}: not a power of "
                         f"two from {PIECE_MIN} to {PIECE_MAX}")
    count = -(-length // piece)
    if not isinstance(pieces, bytes) or len(pieces) != HASH_SIZE * count:
        got = len(pieces) if isinstance(pieces, bytes) else "no"
        raise InputError(f"{where}: pieces: {got} bytes, {count} pieces of "
                         f"{piece} bytes need {HASH_SIZE * count}")
    if not isinstance(skeleton, bytes) or len(skeleton) > MAX_SKELETON:
        raise InputError(f"{where}: its image skeleton is missing or larger "
                         f"than {MAX_SKELETON} bytes")
    root, meta, entries = skeleton_mod.parse(skeleton, where)
    if meta["source"]["size"] != length:
        raise CorruptImageError(
            f"{where}: the torrent's length {length} is not its image's "
            f"disk size {meta['source']['size']}")
    return Descriptor(
        name=name.decode(), length=length, piece_size=piece,
        piece_hashes=pieces, skeleton=skeleton, root=root, meta=meta,
        entries=entries, info_bytes=info_bytes,
        infohash=hashlib.sha1(info_bytes).hexdigest(),
        web_seeds=list(web_seeds), trackers=list(trackers),
        peers=[(h, p) for h, p in peers])


def _good_name(name):
    try:
        text = name.decode()
    except UnicodeDecodeError:
        return False
    return 0 < len(name) <= 255 and text not in (".", "..") and \
        "/" not in text and "\0" not in text
