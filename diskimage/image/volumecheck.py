"""Telling which volume of a split image is wrong, and where a fault is.

The format records no volume number and no image id in a volume: volumes
are plain slices of one stream (docs/FORMAT.md, Split volumes).  What can
be told is told here:

- the sizes: every volume but the last is the split size, the last is at
  most that, so a volume cut short (or a longer stranger) before the last
  is found before anything is read;
- with the index (random access): the first record that starts in each
  volume must be there, as the index says, so a copy of another volume
  put in its place is found on opening;
- for any fault found later: the volume file and the byte in it, and
  whether that volume starts with the same bytes as another one (a copy).
"""

import contextlib
from collections import Counter

from . import format as fmt
from ..errors import CorruptImageError, InputError

_COMPARED = 4096    # leading bytes compared to spot a copy of a volume


def check_sizes(paths, sizes):
    """Raise CorruptImageError naming a volume whose size cannot be that of
    its place in the split image `paths` (sizes in the same order)."""
    if len(paths) < 2:
        return
    counts = Counter(sizes[:-1])
    split = max(counts, key=lambda size: (counts[size], size == sizes[0]))
    model = paths[sizes.index(split)]
    for number, (name, size) in enumerate(zip(paths[:-1], sizes[:-1])):
        if size != split:
            cut = "cut short" if size < split else "longer than a volume"
            after = paths[number + 1:]
            # a short one may be the real last, with strays after it
            more = " and after" if len(after) > 1 else ""
            stray = f", or {after[0]}{more} is left from another image" \
                if size < split else ""
            raise CorruptImageError(
                f"{name}: volume {number + 1} of the split image {paths[0]} "
                f"is {size} bytes, but every volume before the last is "
                f"{split} bytes (as {model}): it is {cut}, or not a volume "
                f"of this image{stray}")
    if sizes[-1] > split:
        raise CorruptImageError(
            f"{paths[-1]}: the last volume of the split image {paths[0]} is "
            f"{sizes[-1]} bytes, more than the {split} of the volumes "
            f"before it: it is not a volume of this image, or they are cut "
            f"short")


def locate(paths, sizes, offset):
    """(volume number, name, byte in that volume) of stream `offset`."""
    base = 0
    for number, (name, size) in enumerate(zip(paths, sizes)):
        if offset < base + size or number == len(paths) - 1:
            return number, name, offset - base
        base += size
    return None


def copy_of(files, paths, number):
    """The name of another volume that starts with the same bytes as volume
    `number` (so is probably the same file put twice), or None."""
    import os
    if number >= len(files):    # no local files (an image over HTTP)
        return None
    try:
        head = os.pread(files[number].fileno(), _COMPARED, 0)
        if len(head) < 64:
            return None
        for other, f in enumerate(files):
            if other != number and os.pread(f.fileno(), _COMPARED, 0) == head:
                return paths[other]
    except OSError:
        return None
    return None


def check_record_starts(source, entries, layout=fmt.CURRENT):
    """With the index: the first record starting in each later volume must
    be the one the index lists there.  Raise CorruptImageError naming the
    volume that does not hold it."""
    paths, sizes = source.paths, source.sizes
    if len(paths) < 2:
        return
    starts, base = [], 0
    for size in sizes:
        starts.append(base)
        base += size
    number = 1
    for entry in entries:
        while number < len(paths) and \
                entry.record_offset >= starts[number] + sizes[number]:
            number += 1
        if number >= len(paths):
            break
        if entry.record_offset < starts[number]:
            continue
        _check_entry(source, entry, number, starts[number], layout)
        number += 1


def _check_entry(source, entry, number, start, layout):
    offset = entry.record_offset
    name, local = source.paths[number], offset - start
    raw = source.read_at(offset, layout.record.size)
    try:
        fields = fmt.unpack_record(raw, offset, layout=layout)
        found = (fields["disk_offset"], fields["length"], fields["checksum"])
    except CorruptImageError:
        found = None
    if found != (entry.disk_offset, entry.length, entry.checksum):
        twin = copy_of(source.files, source.paths, number)
        why = f"it starts with the same bytes as {twin}, a copy of it?" \
            if twin else "it is damaged or from another image"
        raise CorruptImageError(
            f"{name}: not volume {number + 1} of the split image "
            f"{source.paths[0]}: the record the index places at its byte "
            f"{local} is not there ({why})", offset=offset,
            volume=(name, local))


def located(source, exc, size=None):
    """`exc` (a CorruptImageError at a stream offset) with the volume file
    and the byte in it added when `source` is a split image.  `size` is
    the length of the record at that offset, when known: a record that
    runs on into later volumes has them named, since a checksum cannot
    tell where in the record the damage is.  A volume of that span that
    starts as another one does (a copy put in its place), or a last volume
    that the stream ends in, is named in a hint.  Anything else is
    returned as it is."""
    paths = getattr(source, "paths", None) or []
    if not isinstance(exc, CorruptImageError) or exc.offset is None or \
            exc.volume is not None or len(paths) < 2 or \
            not getattr(source, "seekable", False):
        return exc
    number, name, local = locate(paths, source.sizes, exc.offset)
    last = number
    hints = [exc.hint] if exc.hint else []
    if size and size > 1:
        last, end_name, end_local = locate(paths, source.sizes,
                                           exc.offset + size - 1)
        if last != number:
            names = paths[number:last + 1]
            hints.append(
                f"the record runs on to byte {end_local} of {end_name}, so "
                f"the fault may be in {', '.join(names[:-1])} or "
                f"{names[-1]}")
    for volume in range(number, last + 1):
        twin = copy_of(source.files, paths, volume)
        if twin:
            first, second = sorted((paths.index(twin), volume))
            hints.append(f"{paths[first]} and {paths[second]} start with "
                         f"the same bytes: one of them is a copy of the "
                         f"other, not its own volume")
            break
    else:
        if last == len(paths) - 1 and \
                exc.what.startswith(("image ends", "image is")):
            hints.append(f"the last volume, {paths[last]}, is cut short or "
                         f"damaged")
    return CorruptImageError(exc.what, offset=exc.offset, chunk=exc.chunk,
                             volume=(name, local),
                             hint="; ".join(hints) or None)


@contextlib.contextmanager
def locating(source, size=None):
    """Faults found while reading a split image name the volume file and
    the byte in it, besides the stream offset (`size`: of the record)."""
    try:
        yield
    except CorruptImageError as exc:
        new = located(source, exc, size)
        if new is exc:
            raise
        raise new from None


def check_volume_sizes(source):
    """A split image's volumes checked by their sizes before any read."""
    if getattr(source, "seekable", False) and len(source.paths) > 1:
        check_sizes(source.paths, source.sizes)


def missing_volume(source):
    """Raise InputError naming the missing volume of a split image whose
    stream ended early, when that is why."""
    why = getattr(source, "missing_volume", lambda: None)()
    if why:
        raise InputError(why)


def read_trailer(source):
    """The checked trailer of an image file (or split volumes): its CRC,
    a missing volume named (InputError) when that is why it is not
    there, and its stream length equal to the file's size."""
    at = source.size - fmt.TRAILER.size
    try:
        trailer = fmt.unpack_trailer(source.read_at(at, fmt.TRAILER.size),
                                     at)
    except CorruptImageError:
        missing_volume(source)
        raise
    if trailer["stream_length"] != source.size:
        raise CorruptImageError(
            f"image is {source.size} bytes but its trailer says "
            f"{trailer['stream_length']}: a volume is missing or damaged",
            offset=at)
    return trailer
