"""What an encrypted image shows without its passphrase: that it is
encrypted, its format, chunk size, its size and volumes, the cipher and
KDF, and its root digest (checked: it is over the sealed bytes, so it
names the image without telling anything of the disk in it).  Nothing
else is plain: the metadata (source, table, partitions, labels, sizes of
the disk) and the index (how many chunks, where, their digests) are
sealed.  Also `is_encrypted`, for the commands that refuse such images
before they ask for a passphrase."""

from . import format as fmt
from .seal import describe_kdf, read_envelope
from .volumecheck import check_volume_sizes, locating, read_trailer
from .volumes import opened, shown_name
from ..errors import CorruptImageError, InputError


def _header(source):
    raw = source.read_at(0, fmt.FILE_HEADER.size)
    if not raw:
        raise InputError(f"{source.name}: is empty, not an image")
    return raw, fmt.unpack_file_header(raw, source.name)


def is_encrypted(path):
    """Whether the image at `path` (a file, or the first volume) has the
    ENCRYPTED flag; a pipe ("-") is not looked into (False)."""
    if path == "-":
        return False
    source, owned = opened(path)
    try:
        return bool(_header(source)[1]["flags"] & fmt.FLAG_ENCRYPTED)
    finally:
        if owned:
            source.close()


def _record(source, offset, tag, what, layout):
    size = layout.record.size
    raw = source.read_at(offset, size)
    fields = fmt.unpack_record(raw, offset, layout=layout)
    if fields["tag"] != tag:
        raise CorruptImageError(f"{what} record missing", offset=offset)
    payload = source.read_at(offset + size, fields["stored_size"])
    if len(payload) != fields["stored_size"] or \
            not fmt.payload_ok(fields, payload, layout):
        raise CorruptImageError(f"{what} checksum mismatch", offset=offset)
    return raw + payload, payload


def sealed_info(path):
    """The plain facts of the encrypted image at `path` (a dict, "encrypted":
    True); header, trailer, META and INDX records and the root digest are
    checked as ImageReader checks them.  `path` may be a source already
    open (an HttpInput): the caller closes it."""
    source, owned = opened(path)
    try:
        if not source.seekable:
            raise InputError(f"{source.name}: " + getattr(
                source, "unseekable", "needs a regular file, not a pipe"))
        check_volume_sizes(source)
        with locating(source):      # faults named by volume, as ImageReader
            return _sealed_info(shown_name(path), source)
    finally:
        if owned:
            source.close()


def _sealed_info(path, source):
    """sealed_info of the open `source`."""
    header_raw, header = _header(source)
    if not header["flags"] & fmt.FLAG_ENCRYPTED:
        raise InputError(f"{source.name}: is not encrypted")
    layout = fmt.layout(header)
    at = source.size - fmt.TRAILER.size
    if at < fmt.FILE_HEADER.size:
        raise CorruptImageError("image ends early: too short to hold an "
                                "index and trailer", offset=source.size)
    trailer = read_trailer(source)
    meta_raw, meta = _record(source, fmt.FILE_HEADER.size, fmt.TAG_META,
                             "metadata", layout)
    index_raw, _ = _record(source, trailer["index_offset"],
                           fmt.TAG_INDEX, "index", layout)
    if fmt.image_digest(header_raw, meta_raw, index_raw) != \
            trailer["digest"]:
        raise CorruptImageError("whole-image digest mismatch", offset=at)
    envelope = read_envelope(meta)
    return {"image": path, "encrypted": True,
            "volumes": source.paths, "image_bytes": source.size,
            "format_version": layout.version,
            "chunk_size": header["chunk_size"],
            "cipher": envelope["cipher"],
            "kdf": describe_kdf(envelope["kdf"]),
            "root": trailer["digest"].hex(), "root_strong": True}

