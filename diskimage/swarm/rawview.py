"""`rdeploy swarm prepare`: an image's raw disk (NAME.raw, what a plain
restore leaves on a same-size blank disk) and its torrent (NAME.torrent),
written in one pass over the image.

Every record is checked as restore checks it (stored CRC, BLAKE3 digest,
the index, the root); DATA bytes are written at their disk offsets into a
sparse NAME.raw (holes and free space never written), and each piece's
SHA-1 is taken on the way, in disk order, without reading anything back
(a piece with no byte of data gets the one hash of an all-zero piece).
Both files are written as NAME.partial and renamed when whole, the
.torrent last: a .torrent is never found without its whole NAME.raw.
"""

import hashlib
import os
import time

from ..errors import (NO_SPACE_ERRNOS, DiskImageError, InputError,
                      NoSpaceError, PassphraseError, UnsupportedError,
                      no_space_left)
from ..host import partial as partial_files
from ..image import format as fmt
from ..image.reader import RecordStream
from ..pipeline import ordered_map
from ..remote import open_input
from . import descriptor as desc_mod
from . import skeleton as skeleton_mod

ZEROS = bytes(1 << 20)


class PieceHasher:
    """SHA-1 of each piece of a disk fed front to back: data at offsets
    that only grow, gaps between them zeros."""

    def __init__(self, length, piece_size):
        self.length, self.size = length, piece_size
        self.hashes = []
        self.position = 0
        self.current = hashlib.sha1()
        self.zero_piece = _zero_hash(piece_size)

    def _piece_end(self):
        return min(self.position - self.position % self.size + self.size,
                   self.length)

    def _close_piece(self):
        self.hashes.append(self.current.digest())
        self.current = hashlib.sha1()

    def zeros(self, end):
        """Zeros from the position up to disk byte `end`."""
        while self.position < end:
            piece_end = self._piece_end()
            at_start = self.position % self.size == 0
            if at_start and piece_end <= end and \
                    piece_end - self.position == self.size:
                self.hashes.append(self.zero_piece)     # a whole zero piece
                self.position = piece_end
                continue
            step = min(end, piece_end) - self.position
            while step:
                take = min(step, len(ZEROS))
                self.current.update(ZEROS[:take])
                step -= take
                self.position += take
            if self.position == piece_end:
                self._close_piece()

    def data(self, offset, data):
        """`data` at disk byte `offset` (never before the position)."""
        self.zeros(offset)
        view = memoryview(data)
        while view:
            piece_end = self._piece_end()
            take = min(len(view), piece_end - self.position)
            self.current.update(view[:take])
            view = view[take:]
            self.position += take
            if self.position == piece_end:
                self._close_piece()

    def finish(self):
        self.zeros(self.length)
        return b"".join(self.hashes)


def _zero_hash(size):
    h = hashlib.sha1()
    for _ in range(size // len(ZEROS)):
        h.update(ZEROS)
    h.update(ZEROS[:size % len(ZEROS)])
    return h.digest()


def _names(torrent_path):
    base = os.path.basename(torrent_path)
    name = base[:-len(".torrent")] if base.endswith(".torrent") and \
        len(base) > len(".torrent") else base
    return name + ".raw", os.path.join(os.path.dirname(torrent_path),
                                       name + ".raw")


def _open_stream(source):
    try:
        stream = RecordStream(source)
    except PassphraseError:
        raise InputError(f"{source.name}: is encrypted: a swarm would carry "
                         f"its disk in the clear; restore it with rdeploy "
                         f"restore instead") from None
    if not stream.layout.strong:
        raise UnsupportedError(f"{source.name}: is format 1.0 (no BLAKE3 "
                               f"chunk digests to check a swarm's pieces "
                               f"against); convert it with imgx recompress")
    return stream


def _write_all(fd, offset, data, where):
    """All of `data` at `offset` of NAME.partial (`where`); a fault is one
    line naming the file and the offset."""
    view = memoryview(data)
    while view:
        try:
            done = os.pwrite(fd, view, offset)
        except OSError as exc:
            if exc.errno in NO_SPACE_ERRNOS:
                raise NoSpaceError(f"{where}: {no_space_left(exc)} at disk "
                                   f"offset {offset}") from None
            raise DiskImageError(f"{where}: write failed at disk offset "
                                 f"{offset}: {exc.strerror}") from None
        if done <= 0:
            raise NoSpaceError(f"{where}: no space left at disk offset "
                               f"{offset}")
        view, offset = view[done:], offset + done


def _stream_into(stream, fd, where, hasher, progress):
    """Every record checked (in parallel), DATA written at its offset and
    hashed in order; returns the index entries packed and the stream
    offset where the index record starts."""
    total = sum(a["size"] for a in stream.metadata["areas"])
    done = 0
    entries = []
    end = fmt.FILE_HEADER.size + len(stream.meta_raw)
    threads = max(1, min(4, os.cpu_count() or 1))
    for number, fields, data, offset in ordered_map(
            stream.decode, stream.records(), threads):
        entries.append(fmt.Entry.from_fields(offset, fields)
                       .pack(stream.layout))
        end = offset + stream.layout.record.size + fields["stored_size"]
        if data is not None:
            _write_all(fd, fields["disk_offset"], data, where)
            hasher.data(fields["disk_offset"], data)
        done += fields["length"]
        if progress:
            progress(done, total)
    return b"".join(entries), end


def prepare(image, torrent_path, *, web_seeds=(), trackers=(), peers=(),
            piece_size=None, force=False, progress=None):
    """Write TORRENT and NAME.raw beside it for `image` (a path, a URL or
    an open source); returns a summary dict."""
    started = time.monotonic()
    torrent_path = os.fspath(torrent_path)
    if piece_size is not None:
        desc_mod.piece_size_for(1, piece_size)        # checked first
    file_name, raw_path = _names(torrent_path)
    partial_files.refuse_existing(torrent_path, force)
    partial_files.refuse_existing(raw_path, force)
    owned = isinstance(image, (str, os.PathLike))
    source = open_input(os.fspath(image)) if owned else image
    try:
        stream = _open_stream(source)
        length = stream.metadata["source"]["size"]
        size = desc_mod.piece_size_for(length, piece_size)
        hasher = PieceHasher(length, size)
        with partial_files.partial_file(raw_path, replace=force) as raw:
            fd = raw.fileno()
            os.ftruncate(fd, length)
            index_payload, index_offset = _stream_into(
                stream, fd, raw_path + partial_files.PARTIAL, hasher, progress)
            skeleton = skeleton_mod.build(stream, index_payload,
                                          index_offset)
            info = desc_mod.info_dict(file_name, length, size,
                                      hasher.finish(), skeleton)
            desc = desc_mod.parse_info(info, torrent_path,
                                       web_seeds=list(web_seeds),
                                       trackers=list(trackers),
                                       peers=list(peers))
        try:
            with partial_files.partial_file(torrent_path,
                                            replace=force) as out:
                out.write(desc.to_bytes())
        except BaseException:
            _remove(raw_path)
            raise
    finally:
        if owned:
            source.close()
    return {"torrent": torrent_path, "raw": raw_path,
            "infohash": desc.infohash, "magnet": desc.magnet(),
            "pieces": desc.num_pieces, "piece_size": size,
            "wanted_pieces": len(desc.wanted_pieces()),
            "wanted_bytes": desc.wanted_bytes(), "disk_size": length,
            "root": desc.root.hex(),
            "seconds": time.monotonic() - started}


def _remove(path):
    try:
        os.unlink(path)
    except OSError:
        pass
