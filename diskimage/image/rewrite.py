"""Writing a new image from an existing one, chunk by chunk: a new
description (describe), other volume sizes (split, join), another codec
(recompress).

Every chunk is read through the index and checked against its digest
before it is written again, so a damaged image is reported (exit 4) and
never copied on.  Chunks keep their stored bytes unless recompressed.  The
output is always format 1.1: from a 1.0 image each chunk is decoded once
(it is anyway, to check it) and given its BLAKE3 digest.  The
output goes through VolumeOutput: ``NAME.partial`` volumes renamed only when
the whole image is written, so writing over the image itself (the default)
replaces it only on success.  An existing other output is refused unless
`force`, and then replaced only once the new image is whole.  The image is
locked for the whole rewrite (diskimage.image.lock): exclusively when it
is replaced, shared when it is only read; an existing other output is locked
exclusively too.
"""

import contextlib
import os

from diskimage.image import format as fmt
from diskimage.errors import InputError, TargetError, UnsupportedError
from diskimage.image.lock import image_lock
from diskimage.host.identity import refuse_image_over_source
from diskimage.pipeline import ordered_map
from diskimage.image.reader import ImageReader, decode_record
from diskimage.image.volumes import find_volumes
from diskimage.image.volumeout import StreamOutput, VolumeOutput



def writable(path):
    """Refuse (TargetError) an image that cannot be replaced: the file or
    its directory is read-only."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file")
    # Root may write anything, so a file without write bits counts as
    # read-only too: someone marked it so.
    if not os.access(path, os.W_OK) or not os.access(directory, os.W_OK) \
            or not os.stat(path).st_mode & 0o222:
        raise TargetError(f"{path}: image is read-only (or its directory "
                          f"{directory} is); nothing changed")


def refuse_over_input(source, target):
    """TargetError (exit 5, nothing written) when writing the image
    `target` (any of its volumes, or their partial files) would write over
    or remove a volume of the image `source` that is read: ``join IMG -o
    IMG.r01``, ``split IMG.rdi SIZE -o IMG`` (whose IMG.r01 is IMG.rdi's)."""
    volumes = find_volumes(source)
    for number, volume in enumerate(volumes):
        which = "the image read" if number == 0 else \
            f"volume {number + 1} of the image read ({source})"
        refuse_image_over_source(
            volume, target,
            why=f"it is {which}; choose an output beside it")


def current_split(reader):
    """The volume size of a split image (None for one file)."""
    sizes = reader.source.sizes
    return sizes[0] if len(sizes) > 1 else None


def rewrite(source, target=None, *, split="keep", compressor=None,
            metadata=None, threads=None, progress=None, force=False,
            stdout=None):
    """Write the image `source` again to `target` (default: over itself).
    `split`: "keep" the volume size, None for one file, or a size;
    `compressor`: re-encode every chunk; `metadata`: keys to change;
    `force`: replace an existing other `target` (else InputError).
    `target` "-": the image as one stream to the binary file `stdout`
    (the caller has refused a terminal and the image itself)."""
    if target == "-":
        with image_lock(source, shared=True), ImageReader(source) as reader:
            return _rewrite(reader, StreamOutput(stdout), compressor,
                            metadata, threads, progress)
    target = target or source
    # In place only when both name one path (a symlink to the image is
    # the image); a hard link of it is another name for its bytes, so
    # writing it is output over input, refused below.
    in_place = target == source or \
        os.path.realpath(target) == os.path.realpath(source)
    if in_place:
        # Through a symlink, the file it points to is rewritten and the
        # link stays (resolved once: lock, read and rename name one file).
        source = target = os.path.realpath(source)
        writable(source)
    else:
        refuse_over_input(source, target)
    if not in_place and not force and os.path.lexists(target):
        raise InputError(f"{target}: exists; not replaced without --force")
    with contextlib.ExitStack() as locks:
        locks.enter_context(image_lock(source, shared=not in_place))
        if not in_place and os.path.isfile(target):
            locks.enter_context(image_lock(target))
        with ImageReader(source) as reader:
            if split == "keep":
                split = current_split(reader)
            # Refused again when a volume is started and when the volumes
            # get their names: a file made there meanwhile is never
            # replaced without force.
            output = VolumeOutput(target, split, replace=in_place or force)
            return _rewrite(reader, output, compressor, metadata, threads,
                            progress)


def _rewrite(reader, output, compressor, metadata, threads, progress):
    from diskimage.image.writer import ImageWriter
    meta = dict(reader.metadata, **(metadata or {}))
    if compressor is not None:
        meta["compression"] = {"codec": compressor.name,
                               "level": compressor.level}
    entries = reader.entries
    total = sum(e.length for e in entries if not e.is_zero)

    if reader.sealer is not None:   # part C: an encrypted source
        raise UnsupportedError(f"{reader.source.name}: is encrypted; "
                               f"rewriting it is not supported yet")

    def work(number):
        entry = entries[number]
        if entry.is_zero:
            return entry, None
        fields, stored = reader.read_stored(number)
        data = decode_record((number, fields, stored, entry.record_offset),
                             reader.layout, reader.sealer)[2]   # checked
        if compressor is not None:
            return entry, compressor(data)
        if reader.layout.strong:
            return entry, (entry.codec, stored, entry.checksum,
                           entry.stored_crc32)
        # 1.0: the stored bytes kept, the 1.1 checks computed
        return entry, (entry.codec, stored, fmt.content_digest(data),
                       fmt.stored_crc(stored))

    writer = ImageWriter(output, meta, reader.chunk_size)
    try:
        done = 0
        for entry, packed in ordered_map(work, range(len(entries)),
                                         threads or os.cpu_count()):
            if packed is None:
                writer.add_zero(entry.area, entry.disk_offset,
                                entry.length)
                continue
            writer.add_data(entry.area, entry.disk_offset, entry.length,
                            *packed)
            done += entry.length
            if progress:
                progress(done, total)
        return writer.finish()
    except BaseException:
        writer.abort()
        raise
