"""The skeleton of an image, carried in a swarm descriptor's info dict:
its file header, whole META record, whole INDX record and trailer, as the
image stores them (docs/swarm.md, "The skeleton").

:func:`parse` reads one from hostile bytes (every record checked, the root
recomputed and equal to the trailer's); :func:`build` makes one from an
image read to its end; :func:`parts` and :func:`front` give what the root
and the restore marker are taken over.
"""

import hashlib
import zlib

from ..errors import CorruptImageError, InputError, UnsupportedError
from ..image import format as fmt
from ..image.metacheck import check_chunk, check_metadata


def parts(skeleton):
    """(file header, META record, INDX record) of a parsed skeleton."""
    head = fmt.FILE_HEADER.size
    meta_len = fmt.RECORD_HEADER.size + \
        fmt.RECORD_HEADER.unpack(skeleton, head)["stored_size"]
    index_at = head + meta_len
    return skeleton[:head], skeleton[head:index_at], \
        skeleton[index_at:len(skeleton) - fmt.TRAILER.size]


def front(skeleton):
    """SHA-256 of the file header and the META record (the restore
    marker's `front`)."""
    header, meta_raw, _ = parts(skeleton)
    return hashlib.sha256(header + meta_raw).digest()


def build(stream, index_payload, index_offset):
    """The skeleton of a RecordStream read to its end: file header, META
    record, INDX record (as rdeploy's writer writes it) and trailer; the
    root it gives must be the one the reader checked."""
    index_raw = fmt.pack_payload_record(fmt.TAG_INDEX, index_payload)
    root = fmt.image_digest(stream.header_raw, stream.meta_raw, index_raw)
    if root != stream.root:
        raise UnsupportedError(f"{stream.name}: its index record is not "
                               f"stored as rdeploy writes it; rewrite the "
                               f"image with imgx recompress")
    trailer = fmt.pack_trailer(index_offset, stream.position, root)
    return stream.header_raw + stream.meta_raw + index_raw + trailer


def _payload_record(skeleton, at, image_at, tag, what):
    """(record, payload) of the META or INDX record at skeleton byte `at`
    (image offset `image_at`, which errors name), checked."""
    layout = fmt.LAYOUT_11
    size = layout.record.size
    if at + size > len(skeleton):
        raise CorruptImageError(f"ends in the {what} record header",
                                offset=image_at)
    fields = fmt.unpack_record(skeleton[at:at + size], image_at,
                               layout=layout)
    if fields["tag"] != tag:
        raise CorruptImageError(f"has no {what} record", offset=image_at)
    end = at + size + fields["stored_size"]
    if end > len(skeleton):
        raise CorruptImageError(f"ends in the {what}", offset=image_at)
    payload = skeleton[at + size:end]
    if not fmt.payload_ok(fields, payload, layout):
        raise CorruptImageError(f"its {what} fails its check",
                                offset=image_at)
    return skeleton[at:end], payload


def parse(skeleton, where):
    """(root, metadata, entries) of a skeleton: file header | META record |
    INDX record | trailer, as the image stores them; the root recomputed
    and equal to the trailer's.  Any fault: CorruptImageError (exit 4),
    "WHERE: damaged or altered skeleton: ..." with the image offset."""
    try:
        return _parse(skeleton, where)
    except CorruptImageError as exc:
        raise CorruptImageError(f"{where}: damaged or altered skeleton: "
                                f"{exc}") from None


def _parse(skeleton, where):
    head, tail = fmt.FILE_HEADER.size, fmt.TRAILER.size
    if len(skeleton) < head + tail:
        raise CorruptImageError(f"{len(skeleton)} bytes is too short")
    if zlib.crc32(skeleton[:head - 4]) != \
            int.from_bytes(skeleton[head - 4:head], "little"):
        # before any field is believed: a changed magic or version byte
        # is a damaged skeleton, not another kind of file
        raise CorruptImageError("file header checksum mismatch", offset=0)
    header = fmt.unpack_file_header(skeleton[:head], f"{where}: skeleton")
    if header["version_minor"] < 1:
        raise UnsupportedError(f"{where}: holds a format 1.0 image (no "
                               f"BLAKE3 chunk digests); convert it with "
                               f"imgx recompress and prepare it again")
    if header["flags"] & fmt.FLAG_ENCRYPTED:
        raise InputError(f"{where}: holds an encrypted image; rdeploy swarm "
                         f"carries only plain images")
    meta_raw, meta_payload = _payload_record(skeleton, head, head,
                                             fmt.TAG_META, "metadata")
    index_at = head + len(meta_raw)
    body = skeleton[:len(skeleton) - tail]
    trailer = fmt.unpack_trailer(skeleton[len(body):], len(body))
    image_index = trailer["index_offset"]
    if image_index < index_at:
        raise CorruptImageError("the trailer's index offset is inside the "
                                "metadata", offset=image_index)
    index_raw, index_payload = _payload_record(body, index_at, image_index,
                                               fmt.TAG_INDEX, "index")
    if index_at + len(index_raw) != len(body):
        raise CorruptImageError("bytes between its index and trailer",
                                offset=image_index)
    if fmt.image_digest(skeleton[:head], meta_raw, index_raw) != \
            trailer["digest"]:
        raise CorruptImageError("its root digest differs from its "
                                "trailer's")
    if trailer["stream_length"] != image_index + len(index_raw) + tail:
        raise CorruptImageError("the trailer does not match its index",
                                offset=image_index)
    meta = check_metadata(fmt.decode_metadata(meta_payload, head), head)
    return trailer["digest"], meta, _entries(index_payload, meta, header,
                                             image_index)


def _entries(payload, meta, header, index_at):
    found, end = [], 0
    for number, e in enumerate(fmt.unpack_index(payload, index_at)):
        check_chunk(meta, e.area, e.disk_offset, e.length,
                    e.record_offset, number)
        if e.kind not in (fmt.KIND_DATA, fmt.KIND_ZERO) or (
                e.kind == fmt.KIND_DATA and
                e.length > header["chunk_size"]):
            raise CorruptImageError("index entry with an impossible kind "
                                    "or length", offset=e.record_offset,
                                    chunk=number)
        if e.disk_offset < end:
            raise CorruptImageError("index entries out of disk order or "
                                    "overlapping", offset=e.record_offset,
                                    chunk=number)
        end = e.disk_offset + e.length
        found.append({"disk_offset": e.disk_offset, "length": e.length,
                      "kind": e.kind, "digest": e.checksum,
                      "area": e.area})
    return found
