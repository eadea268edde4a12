"""The image readers over hostile bytes: the stream reader (RecordStream
and each chunk's decode, as verify reads), restore from a pipe (the plan
and the writing, onto a new disk file and onto an existing one), the
random-access
reader (ImageReader: trailer, index, every chunk, as info and imgx read),
`rdeploy info`'s summary, each over one file and over the same stream
cut into split volumes of 4 KiB (img.rdi, img.r01, ...).

Random bytes rarely get past the CRCs and the digest, and a hostile image
has them right (none needs a secret), so each input is read three ways:
as given; resealed (every CRC, chunk checksum and the trailer's digest
made right for the bytes as they are, index kept); and rebuilt (the index
and trailer made anew from the records found).  The last two reach the
checks behind the checksums: sizes, offsets, the metadata's contents.
"""

import io
import os
import zlib

from diskimage.errors import DiskImageError
from diskimage.image import format as fmt
from diskimage.image.compression import decompress
from diskimage.image.info import image_info
from diskimage.image.reader import ImageReader, RecordStream
from diskimage.image.verify import verify
from diskimage.image.volumes import PipeInput, VolumeInput, volume_name
from diskimage.restore import run_restore
from diskimage.restoreplan import plan_restore
from tests.fuzz.targets_index import scratch

MAX_LEN = 65536
SPLIT = 4096

_DIR = None


def _dir():
    global _DIR
    if _DIR is None:
        _DIR = scratch("image")
    return _DIR


def _crc_last(raw):
    """A structure whose last 4 bytes are the CRC-32 of the rest."""
    raw = bytearray(raw)
    raw[-4:] = zlib.crc32(raw[:-4]).to_bytes(4, "little")
    return bytes(raw)


def _layout(data):
    """The layout the header names (1.0 or 1.1), else the current one."""
    try:
        return fmt.layout(fmt.FILE_HEADER.unpack(
            data[:fmt.FILE_HEADER.size], at=0))
    except (DiskImageError, KeyError):
        return fmt.CURRENT


def _records(data, layout):
    """[(offset, fields, payload)] of the records after the header, read
    leniently (a payload cut by the end of the input is kept short), up
    to and with the INDX record; and where the trailer would start."""
    size = layout.record.size
    pos, found = fmt.FILE_HEADER.size, []
    while pos + size <= len(data):
        fields = layout.record.unpack(data[pos:pos + size], at=pos)
        payload = data[pos + size:pos + size + fields["stored_size"]]
        found.append((pos, fields, payload))
        pos += size + len(payload)
        if fields["tag"] not in fmt.TAGS or fields["tag"] == fmt.TAG_INDEX:
            break
    return found, pos


def _decoded(fields, payload):
    try:
        return decompress(fields["codec"], payload, fields["length"])
    except (DiskImageError, MemoryError, OverflowError):
        return None


def _checks(fields, payload, layout):
    """The record header's check fields made right for `payload`."""
    tag = fields["tag"]
    if tag == fmt.TAG_ZERO:
        return {}
    data = payload if tag in (fmt.TAG_META, fmt.TAG_INDEX) else \
        None if fields["flags"] & fmt.RECORD_SEALED else \
        _decoded(fields, payload)
    if not layout.strong:
        return {} if data is None else {"checksum": fmt.checksum(data)}
    checks = {"stored_crc32": fmt.stored_crc(payload)}
    if data is not None:
        checks["digest"] = fmt.content_digest(data)
    return checks


def resealed(data, rebuild):
    """`data` with every check made right (see the module's text), in the
    layout its header names."""
    head = fmt.FILE_HEADER.size
    if len(data) < head:
        return data
    layout = _layout(data)
    out = [_crc_last(data[:head])]
    records, end = _records(data, layout)
    entries = []
    meta_raw = index_raw = b""
    offset = head
    for pos, fields, payload in records:
        tag = fields["tag"]
        if tag not in fmt.TAGS:
            break
        if tag == fmt.TAG_INDEX and rebuild:
            payload = b"".join(e.pack(layout) for e in entries)
            fields = dict(fields, length=len(payload),
                          stored_size=len(payload))
        fields = dict(fields, **_checks(fields, payload, layout))
        raw = _crc_last(layout.record.pack(**fields)) + payload
        if tag == fmt.TAG_META and not meta_raw:
            meta_raw = raw
        elif tag == fmt.TAG_INDEX:
            index_raw, index_offset = raw, offset
        elif tag in (fmt.TAG_DATA, fmt.TAG_ZERO):
            entries.append(fmt.Entry(
                offset, fields["disk_offset"], fields["length"],
                fields["stored_size"], fields["codec"],
                fmt.KIND_ZERO if tag == fmt.TAG_ZERO else fmt.KIND_DATA,
                fields["area"], fields.get("digest", fields.get("checksum")),
                fields.get("stored_crc32") or 0))
        out.append(raw)
        offset += len(raw)
    digest = fmt.image_digest(out[0], meta_raw, index_raw)
    if rebuild and index_raw:
        out.append(fmt.pack_trailer(index_offset, offset + fmt.TRAILER.size,
                                    digest))
        return b"".join(out)
    trailer = data[end:end + fmt.TRAILER.size]
    if len(trailer) == fmt.TRAILER.size:
        fields = fmt.TRAILER.unpack(trailer, at=end)
        out.append(_crc_last(fmt.TRAILER.pack(**dict(fields,
                                                     digest=digest))))
        out.append(data[end + fmt.TRAILER.size:])
    else:
        out.append(data[end:])
    return b"".join(out)


def _write(path, data, split):
    folder = os.path.dirname(path)
    for name in os.listdir(folder):
        os.unlink(os.path.join(folder, name))
    pieces = [data[i:i + split] for i in range(0, len(data), split)] \
        if split else [data]
    for number, piece in enumerate(pieces or [b""]):
        with open(volume_name(path, number), "wb") as f:
            f.write(piece)


def _stream(source):
    stream = RecordStream(source)
    for record in stream.records():
        stream.decode(record)


def _random_access(path):
    """Every chunk, as imgx's views and rewrites read them (holes are not
    read: they need no bytes)."""
    with ImageReader(path) as reader:
        for number, entry in enumerate(reader.entries):
            if not entry.is_zero:
                reader.read_entry(number)


def _signed_stream(path, data):
    """What restore --require-signature reads: the index first (random
    access), then the stream held to it record by record (expected=)."""
    with ImageReader(path) as reader:
        entries = reader.entries
    stream = RecordStream(PipeInput(io.BytesIO(data)), expected=entries)
    for record in stream.records():
        stream.decode(record)


def _restore(data, existing):
    """rdeploy restore from a pipe: the plan (metadata against the target)
    and the restore itself, onto a new disk file, or onto an existing
    one of 1 MiB with no table; the target removed after."""
    target = os.path.join(_dir(), "target.disk")
    if os.path.exists(target):
        os.unlink(target)
    if existing:
        with open(target, "wb") as f:
            f.truncate(1 << 20)
    try:
        plan = plan_restore(RecordStream(PipeInput(io.BytesIO(data))),
                            target)
        run_restore(plan, threads=1)
    finally:
        if os.path.exists(target):
            os.unlink(target)


def _guarded(read, *args):
    try:
        read(*args)
    except DiskImageError:
        pass


def read_all(data):
    """Every reader over `data`: a pipe, one file, split volumes."""
    _guarded(_stream, PipeInput(io.BytesIO(data)))
    for existing in (False, True):
        _guarded(_restore, data, existing)
    for split in (0, SPLIT) if len(data) > SPLIT else (0,):
        folder = os.path.join(_dir(), "split" if split else "whole")
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, "img.rdi")
        _write(path, data, split)
        for read in (_random_access, image_info):
            _guarded(read, path)
        if not split:
            _guarded(_signed_stream, path, data)
        with VolumeInput(path) as source:
            _guarded(verify, source)


def one_input(data):
    read_all(data)
    again = resealed(data, rebuild=False)
    if again != data:
        read_all(again)
    rebuilt = resealed(data, rebuild=True)
    if rebuilt not in (data, again):
        read_all(rebuilt)
