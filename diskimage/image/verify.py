"""Checking a whole image without writing anything."""

import time

from ..pipeline import ordered_map
from .reader import RecordStream


def verify(source, *, threads=1, progress=None, passphrase=None):
    """Read `source` (a VolumeInput or PipeInput) front to back and check
    every record, the index, the trailer and the digest.  Raises
    CorruptImageError at the first fault; returns the stream's summary.
    `passphrase`: see RecordStream."""
    started = time.monotonic()
    stream = RecordStream(source, passphrase=passphrase)
    total = sum(area["size"] for area in stream.metadata["areas"])
    done = 0
    for _, fields, _, _ in ordered_map(stream.decode, stream.records(),
                                       threads):
        done += fields["length"]
        if progress:
            progress(done, total)
    return dict(stream.summary, seconds=time.monotonic() - started,
                metadata=stream.metadata)
