"""What a capture reads: the chunk windows of each planned area, read on
the feeder thread, cut at free space and long zero runs, turned into the
data, zero and tick items that capture's workers store.

A disk file's holes (SEEK_DATA / SEEK_HOLE) are not read: a span that lies
in a hole is zeros, which is what reading it would have given, so the
image is the same; a sparse 1 TiB disk file costs what its data costs."""

from .errors import InputError
from .host.device import FileHoles
from .image.holes import Holed, Zeros, split_at_gaps, split_zero_runs


def _windows(area, runs, chunk_size):
    """For an area with used runs, yield (offset, pieces) for every chunk
    window holding used bytes; pieces are absolute (offset, length)."""
    start, end = area["start"], area["start"] + area["size"]
    window, pieces = None, []
    for offset, length in runs:
        offset += start
        run_end = min(offset + length, end)
        while offset < run_end:
            base = start + (offset - start) // chunk_size * chunk_size
            if base != window:
                if pieces:
                    yield window, pieces
                window, pieces = base, []
            piece_end = min(run_end, base + chunk_size)
            pieces.append((offset, piece_end - offset))
            offset = piece_end
    if pieces:
        yield window, pieces


def _read_pieces(disk, pieces, holes):
    """The bytes from the first piece's start to the last piece's end, with
    the gaps between pieces (free space) as zeros: free-space garbage is
    never stored.  Mostly-used spans are read in one call.  Of a disk
    file only its data is read: a span in a hole is Zeros, and of a span
    partly in one only the pieces' parts that hold data are read."""
    span_start = pieces[0][0]
    span_end = pieces[-1][0] + pieces[-1][1]
    used = sum(length for _, length in pieces)
    if holes is not None:
        extents = holes.data_in(span_start, span_end)
        if not extents:
            return span_start, Zeros(span_end - span_start), used
        if extents != [(span_start, span_end)]:
            data = Holed(span_end - span_start, _gaps(
                extents, span_start, span_end))
            for offset, length in _within(pieces, extents):
                data[offset - span_start:offset - span_start + length] = \
                    _read(disk, offset, length)
            return span_start, data, used
    if used * 2 >= span_end - span_start:
        raw = _read(disk, span_start, span_end - span_start)
        if used == len(raw):
            return span_start, raw, used
        data = bytearray(raw)
        cursor = span_start
        for offset, length in pieces:
            if offset > cursor:
                data[cursor - span_start:offset - span_start] = \
                    bytes(offset - cursor)
            cursor = offset + length
        return span_start, data, used
    data = bytearray(span_end - span_start)
    for offset, length in pieces:
        data[offset - span_start:offset - span_start + length] = \
            _read(disk, offset, length)
    return span_start, data, used


def _gaps(extents, start, end):
    """The (from, to) holes of [start, end) between sorted data `extents`,
    as offsets from `start`."""
    out, cursor = [], start
    for low, high in extents:
        if low > cursor:
            out.append((cursor - start, low - start))
        cursor = max(cursor, high)
    if end > cursor:
        out.append((cursor - start, end - start))
    return out


def _within(pieces, extents):
    """The parts of sorted (offset, length) `pieces` inside the sorted
    (from, to) `extents`."""
    extents = iter(extents)
    low, high = next(extents)
    for offset, length in pieces:
        end = offset + length
        while offset < end:
            if high <= offset:
                low, high = next(extents, (None, None))
                if low is None:
                    return
                continue
            start, stop = max(offset, low), min(end, high)
            if start < stop:
                yield start, stop - start
            if high >= end:
                break
            offset = high


def _read(disk, offset, length):
    data = disk.read(offset, length)
    if len(data) != length:
        raise InputError(f"{disk.path}: read only {len(data)} of "
                         f"{length} bytes at offset {offset}")
    return data


PREFETCH = 4    # windows read ahead of the one being read (16 MiB)


def _prefetched(disk, windows, holes):
    """The (offset, pieces) windows, each one's bytes asked for PREFETCH
    windows before it is read: the feeder reads one window at a time, and
    without the hint the device sees one request at a time (reads through
    a loop device were 1.5x slower than from the file)."""
    ahead = []
    for window in windows:
        pieces = window[1]
        start, end = pieces[0][0], pieces[-1][0] + pieces[-1][1]
        for low, high in [(start, end)] if holes is None else \
                holes.data_in(start, end):
            disk.prefetch(low, high - low)
        ahead.append(window)
        if len(ahead) > PREFETCH:
            yield ahead.pop(0)
    yield from ahead


def _whole(area, chunk_size):
    """Every chunk of an area as a window of one piece."""
    offset, end = area["start"], area["start"] + area["size"]
    while offset < end:
        length = min(chunk_size, end - offset)
        yield offset, [(offset, length)]
        offset += length


def _spans(disk, area, runs, chunk_size, holes):
    """(offset, bytes, weight) for every chunk of an area to store; weight
    is the number of used bytes it stands for (for progress)."""
    if runs is None:
        for offset, pieces in _prefetched(disk, _whole(area, chunk_size),
                                          holes):
            yield _read_pieces(disk, pieces, holes)
    else:
        for _, pieces in _prefetched(
                disk, _windows(area, runs, chunk_size), holes):
            for group in split_at_gaps(pieces):
                yield _read_pieces(disk, group, holes)


#: While a hole grows, a ("tick", weight) item every this many bytes, so
#: that progress moves through long runs of zeros (they make one record).
TICK_BYTES = 64 << 20


def chunks(disk, planned, chunk_size):
    """Yield ("data", area, offset, bytes, weight) and ("zero", area,
    offset, length, weight) items, merging adjacent zero chunks into one
    hole, and ("tick", weight) items for the part of a growing hole read
    so far (its weight then counts only the rest)."""
    zeros = bytes(chunk_size)
    holes = None if disk.is_block else FileHoles(disk.fd, disk.size)
    for number, (area, runs) in enumerate(planned):
        hole = None
        for offset, data, weight in split_zero_runs(
                _spans(disk, area, runs, chunk_size, holes)):
            length = len(data)
            if isinstance(data, Zeros) or data == (
                    zeros if length == chunk_size else bytes(length)):
                if hole is not None and hole[2] + hole[3] == offset:
                    hole[3] += length
                    hole[4] += weight
                    if hole[3] % TICK_BYTES < length:
                        yield ("tick", hole[4])
                        hole[4] = 0
                    continue
                if hole is not None:
                    yield tuple(hole)
                hole = ["zero", number, offset, length, weight]
                continue
            if hole is not None:
                yield tuple(hole)
                hole = None
            yield ("data", number, offset, data, weight)
        if hole is not None:
            yield tuple(hole)


