"""Service records for tests: a minimal valid one for a Service (what
the reader's field checks accept), and the ways a hostile disk forges
them (written with tail.py's own encoder, or as raw bytes)."""

import zlib

from diskimage.service import tail


def minimal_record(service, **fields):
    """A record with every field the reader checks, for *service* (a
    partition.Service), no areas: *fields* laid over it."""
    record = {
        "format": 1, "tool": "test", "installed": "2026-12-01T00:00:00+00:00",
        "disk": {"size": 1 << 30, "sector_size": 512,
                 "table": service.table_kind, "disk_id": None},
        "partition": {"number": service.number, "start": service.start,
                      "size": service.size, "part_id": service.part_id,
                      "type": "test"},
        "shrunk": None, "areas": [], "nvram": [], "bios": None}
    record.update(fields)
    return record


def raw_record(service, body):
    """*body* (bytes) written as the tail's record copy with a valid
    header and crc: what a forger with the format's description makes."""
    head = tail.RECORD_HEADER.pack(magic=tail.RECORD_MAGIC, format=1,
                                   length=len(body), crc32=zlib.crc32(body))
    tail._write(service, service.tail_offset, head + body)
