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


def _payload_record(skeleton, at, tag, what, where):
    layout = fmt.LAYOUT_11
    size = layout.record.size
    if at + size > len(skeleton):
        raise CorruptImageError(f"{where}: skeleton ends in the {what} "
                                f"record header", offset=at)
    fields = fmt.unpack_record(skeleton[at:at + size], at, layout=layout)
    if fields["tag"] != tag:
        raise CorruptImageError(f"{where}: skeleton has no {what} record",
                                offset=at)
    end = at + size + fields["stored_size"]
    if end > len(skeleton):
        raise CorruptImageError(f"{where}: skeleton ends in the {what}",
                                offset=at)
    payload = skeleton[at + size:end]
    if not fmt.payload_ok(fields, payload, layout):
        raise CorruptImageError(f"{where}: skeleton's {what} fails its "
                                f"check", offset=at)
    return skeleton[at:end], payload


def parse(skeleton, where):
    """(root, metadata, entries) of a skeleton: file header | META record |
    INDX record | trailer, as the image stores them; the root recomputed
    and equal to the trailer's (else CorruptImageError, exit 4)."""
    head = fmt.FILE_HEADER.size
    if len(skeleton) < head + fmt.TRAILER.size:
        raise CorruptImageError(f"{where}: skeleton of {len(skeleton)} bytes "
                                f"is too short")
    if zlib.crc32(skeleton[:head - 4]) != \
            int.from_bytes(skeleton[head - 4:head], "little"):
        # before any field is believed: a changed magic or version byte
        # is a damaged skeleton, not another kind of file
        raise CorruptImageError(f"{where}: skeleton's file header fails "
                                f"its CRC (a damaged or altered skeleton)",
                                offset=0)
    header = fmt.unpack_file_header(skeleton[:head], f"{where}: skeleton")
    if header["version_minor"] < 1:
        raise UnsupportedError(f"{where}: holds a format 1.0 image (no "
                               f"BLAKE3 chunk digests); convert it with "
                               f"imgx recompress and prepare it again")
    if header["flags"] & fmt.FLAG_ENCRYPTED:
        raise InputError(f"{where}: holds an encrypted image; rdeploy swarm "
                         f"carries only plain images")
    meta_raw, meta_payload = _payload_record(skeleton, head, fmt.TAG_META,
                                             "metadata", where)
    index_at = head + len(meta_raw)
    body = skeleton[:len(skeleton) - fmt.TRAILER.size]
    index_raw, index_payload = _payload_record(body, index_at, fmt.TAG_INDEX,
                                               "index", where)
    if index_at + len(index_raw) != len(body):
        raise CorruptImageError(f"{where}: skeleton has bytes between its "
                                f"index and trailer", offset=index_at)
    trailer_at = len(body)
    trailer = fmt.unpack_trailer(skeleton[trailer_at:], trailer_at)
    root = fmt.image_digest(skeleton[:head], meta_raw, index_raw)
    if root != trailer["digest"]:
        raise CorruptImageError(f"{where}: skeleton's root digest differs "
                                f"from its trailer's (a damaged or altered "
                                f"skeleton)")
    if trailer["stream_length"] != trailer["index_offset"] + \
            len(index_raw) + fmt.TRAILER.size or \
            trailer["index_offset"] < index_at:
        raise CorruptImageError(f"{where}: skeleton's trailer does not match "
                                f"its index")
    meta = check_metadata(fmt.decode_metadata(meta_payload, head), head)
    entries = _entries(index_payload, meta, header, trailer, where)
    return root, meta, entries


def _entries(payload, meta, header, trailer, where):
    index_at = trailer["index_offset"]
    found, end = [], 0
    for number, e in enumerate(fmt.unpack_index(payload, index_at)):
        check_chunk(meta, e.area, e.disk_offset, e.length,
                    e.record_offset, number)
        if e.kind not in (fmt.KIND_DATA, fmt.KIND_ZERO) or (
                e.kind == fmt.KIND_DATA and
                e.length > header["chunk_size"]):
            raise CorruptImageError(f"{where}: skeleton index entry {number} "
                                    f"has an impossible kind or length",
                                    offset=index_at)
        if e.disk_offset < end:
            raise CorruptImageError(f"{where}: skeleton index entry {number} "
                                    f"is not in disk order", offset=index_at)
        end = e.disk_offset + e.length
        found.append({"disk_offset": e.disk_offset, "length": e.length,
                      "kind": e.kind, "digest": e.checksum,
                      "area": e.area})
    return found
