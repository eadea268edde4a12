"""The restore marker: 512 bytes on a target that say "a restore of this
image, with this plan, is under way; every record before the checkpoint is
written and synced".

A restore writes it at the start of its first guard zone (sector 0 for a
whole-disk restore) right after the guard zones are zeroed, and rewrites it
at every checkpoint (the target synced first, then the marker, then synced
again), so whatever stops the restore (SIGKILL, power loss, an error) leaves
a target that says it is incomplete and how far it got.  The table written
last overwrites it; a restore whose last bytes do not cover it clears it.

The image is named by its root digest (the trailer's digest: in format 1.1
the root over every chunk's BLAKE3 digest; in 1.0 the digest over the CRC-32
chunk checks) when it is read from a file.  From a pipe the root is known
only at the end, so the marker holds, besides, the SHA-256 of the file
header and META record ("front") and a SHA-256 over the record headers
before the checkpoint ("prefix"): a resume must match the front before it
starts and the prefix when it reaches the checkpoint, before it writes
anything.  A whole-disk restore that keeps protected partitions lists
them after the marker (the KEPT block): the zeroed table held their
entries, and a resume or a restore that starts over must keep them too.
docs/FORMAT.md, "The restore marker", gives the bytes.
"""

import hashlib
import json
import os
import time
import zlib
from dataclasses import dataclass, replace

from .errors import IncompleteTargetError
from .image import format as fmt
from .image.volumecheck import locating, read_trailer
from .structs import Struct
from .words import counted

MAGIC = b"RDI-RESTORING\n"
VERSION = 1
SIZE = 512
NAME_SIZE = 256

PHASE_RECORDS = 1     # the records of the image are being written
PHASE_FINISHING = 2   # filesystem actions (grow, shrink, new ids) begun

FLAG_ROOT_KNOWN = 1   # `root` holds the image's root digest
FLAG_IN_PLACE = 2     # every area is written at its own image offset
FLAG_KEPT = 4         # the kept partitions follow the marker (KEPT below)

#: After a marker with FLAG_KEPT, at its offset + 512: the protected
#: partitions the plan keeps, whose table entries the zeroed table no
#: longer holds (so a resume, or a restore that starts over, keeps them):
#: magic | length (4) | CRC-32 of the JSON (4) | JSON.
KEPT_MAGIC = b"RDI-KEPT\n\0\0\0"
KEPT_MAX = 64 << 10

#: A checkpoint every CHECKPOINT_BYTES of written image data or
#: CHECKPOINT_SECONDS, whichever comes first.  RDEPLOY_CHECKPOINT_BYTES
#: sets a smaller byte step (the tests use it to checkpoint a small disk).
CHECKPOINT_BYTES = 256 << 20
CHECKPOINT_SECONDS = 5.0

MARKER = Struct("restore marker", [
    ("14s", "magic"),
    ("B", "version"),
    ("B", "phase"),
    ("I", "flags"),
    ("I", "reserved0"),
    ("Q", "marker_offset"),
    ("32s", "root"),
    ("32s", "front"),
    ("32s", "plan"),
    ("32s", "prefix"),
    ("Q", "chunks"),
    ("Q", "checkpoint"),
    ("Q", "done_bytes"),
    ("Q", "total_bytes"),
    ("Q", "started"),
    ("Q", "updated"),
    ("Q", "stream_offset"),
    ("H", "name_length"),
    (f"{NAME_SIZE}s", "name"),
    ("30s", "reserved1"),
    ("I", "marker_crc32"),
    ("4s", "zero"),       # never 55 AA at 510: never taken for an MBR
], size=SIZE, as_dict=True)


@dataclass
class Marker:
    """The marker's fields, as Python values."""
    offset: int
    front: bytes
    plan: bytes
    name: str = ""
    root: bytes = None          # None: not known (an image from a pipe)
    chunks: int = 0             # 0: not known
    checkpoint: int = 0
    prefix: bytes = hashlib.sha256().digest()
    done_bytes: int = 0
    total_bytes: int = 0
    stream_offset: int = 0
    phase: int = PHASE_RECORDS
    in_place: bool = True
    kept: bool = False
    started: int = 0
    updated: int = 0

    def pack(self):
        name = self.name.encode("utf-8", "replace")[:NAME_SIZE]
        flags = (FLAG_ROOT_KNOWN if self.root else 0) | \
            (FLAG_IN_PLACE if self.in_place else 0) | \
            (FLAG_KEPT if self.kept else 0)
        raw = MARKER.pack(
            magic=MAGIC, version=VERSION, phase=self.phase, flags=flags,
            marker_offset=self.offset, root=self.root or bytes(32),
            front=self.front, plan=self.plan, prefix=self.prefix,
            chunks=self.chunks, checkpoint=self.checkpoint,
            done_bytes=self.done_bytes, total_bytes=self.total_bytes,
            started=self.started, updated=self.updated,
            stream_offset=self.stream_offset, name_length=len(name),
            name=name)
        crc = zlib.crc32(raw[:504])
        return raw[:504] + crc.to_bytes(4, "little") + bytes(4)

    @property
    def image_id(self):
        """The image as a hex string: its root, or its front digest."""
        return self.root.hex() if self.root else \
            f"{self.front.hex()} (the digest of its front: the root of an " \
            f"image read as a stream is known at its end)"

    def progress_text(self):
        if self.name.startswith("swarm:"):      # markername.SWARM_PREFIX
            return f"{self.done_bytes} of {self.total_bytes} bytes received"
        if self.chunks:
            return f"{self.checkpoint} of {self.chunks} chunks done"
        return f"{counted(self.checkpoint, 'chunk')} done"


def unpack(raw, where, name="target"):
    """A Marker from 512 bytes read at byte *where* of *name*, or None when
    they do not start with the magic.  A marker that fails its CRC or names
    another place is IncompleteTargetError: the target cannot be trusted."""
    if len(raw) < SIZE or not raw.startswith(MAGIC):
        return None
    f = MARKER.unpack(raw, at=where)
    if zlib.crc32(raw[:504]) != f["marker_crc32"] or \
            f["version"] != VERSION or f["marker_offset"] != where or \
            f["name_length"] > NAME_SIZE:
        raise IncompleteTargetError(
            f"{name}: holds a damaged restore marker at byte {where}: an "
            f"interrupted restore; restore it again (without --resume)")
    return Marker(
        offset=where, front=f["front"], plan=f["plan"],
        name=f["name"][:f["name_length"]].decode("utf-8", "replace"),
        root=f["root"] if f["flags"] & FLAG_ROOT_KNOWN else None,
        chunks=f["chunks"], checkpoint=f["checkpoint"], prefix=f["prefix"],
        done_bytes=f["done_bytes"], total_bytes=f["total_bytes"],
        stream_offset=f["stream_offset"], phase=f["phase"],
        in_place=bool(f["flags"] & FLAG_IN_PLACE),
        kept=bool(f["flags"] & FLAG_KEPT), started=f["started"],
        updated=f["updated"])


# --- what names the image and the plan ---------------------------------------
def image_identity(stream):
    """(root or None, chunk count or 0) of the image `stream` (a
    RecordStream) reads, from its trailer and index when its source is a
    seekable file; (None, 0) from a pipe (the root comes at the end).

    The one place that knows where the root is (part A's reader.root when
    it is there)."""
    root = getattr(stream, "root", None)
    source = stream.source
    if not getattr(source, "seekable", False):
        return root, 0
    with locating(source):      # a fault here is named as the reader does
        trailer = read_trailer(source)  # a volume gone: named
        index_offset = trailer["index_offset"]
        record = _record_struct(stream)
        fields = record.unpack(source.read_at(index_offset, record.size),
                               at=index_offset)
    entry = _entry_struct(stream)
    return root or trailer["digest"], fields["stored_size"] // entry.size


def _record_struct(stream):
    layout = getattr(stream, "layout", None)
    return layout.record if layout is not None else fmt.RECORD_HEADER


def _entry_struct(stream):
    layout = getattr(stream, "layout", None)
    return layout.entry if layout is not None else fmt.INDEX_ENTRY


def front_digest(stream):
    """SHA-256 of the image's file header and its whole META record."""
    return hashlib.sha256(stream.header_raw + stream.meta_raw).digest()


def record_bytes(stream, fields):
    """A record header as it is stored (packed back from its fields, the
    header CRC as read), for the prefix digest."""
    return _record_struct(stream).pack(**fields)


def plan_fingerprint(plan):
    """SHA-256 of what decides where every byte lands: the target's size
    and sector size, the areas written, the placements, the table, the kept
    partitions, --new-ids.  Not whether the target file was created by the
    restore (a resume finds it there), nor the guards (derived)."""
    doc = {"target_size": plan.target_size, "sector_size": plan.sector_size,
           "areas": sorted(plan.areas), "write_table": plan.write_table,
           "rewrite_table": plan.rewrite_table, "new_ids": plan.new_ids,
           "placements": [p.to_dict() for p in plan.placements],
           "kept": [[p.start, p.size] for p, _ in plan.kept]}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).digest()


def marker_offset(plan):
    """Where the plan's marker goes: the start of its first guard zone."""
    return min((start for start, _ in plan.guards), default=0)


def new_marker(plan, stream, name, total):
    root, chunks = image_identity(stream)
    now = int(time.time())
    return Marker(offset=marker_offset(plan), front=front_digest(stream),
                  plan=plan_fingerprint(plan), name=name, root=root,
                  chunks=chunks, total_bytes=total,
                  in_place=all(plan.delta(a) == 0 for a in plan.areas),
                  started=now, updated=now)


def checkpoint_bytes():
    text = os.environ.get("RDEPLOY_CHECKPOINT_BYTES", "")
    return int(text) if text.isdigit() and int(text) > 0 \
        else CHECKPOINT_BYTES


# --- on the target -----------------------------------------------------------
def read_at(disk, offset):
    """The marker at byte *offset* of the open *disk*, or None."""
    if offset + SIZE > disk.size:
        return None
    return unpack(disk.read(offset, SIZE), offset, disk.path)


def find(disk):
    """The marker of an interrupted restore on *disk*: at sector 0 (a whole
    disk), else at the start of one of the partitions of its table (a
    --partitions or --into restore keeps the table); None when there is
    none."""
    from .tables.partitions import read_table
    from .errors import DiskImageError
    found = read_at(disk, 0)
    if found is not None:
        return found
    try:
        table = read_table(disk.read, disk.size, disk.logical_sector_size)
    except DiskImageError:
        return None
    for part in table.partitions:
        found = read_at(disk, part.start)
        if found is not None:
            return found
    return None


def write(disk, marker, *, synced=True):
    """Write the marker in place: the target synced before (so everything
    the checkpoint counts is on it) and after."""
    from .host.device import sync, write_all
    if synced:
        sync(disk)
    marker.updated = int(time.time())
    write_all(disk, marker.offset, marker.pack())
    sync(disk)


def kept_bytes(plan):
    """The KEPT block for the plan's kept partitions (b"" when none, or
    when it does not fit in the first guard zone)."""
    if not plan.kept:
        return b""
    doc = json.dumps({"partitions": [p.to_dict() for p, _ in plan.kept]},
                     sort_keys=True).encode()
    raw = KEPT_MAGIC + len(doc).to_bytes(4, "little") + \
        zlib.crc32(doc).to_bytes(4, "little") + doc
    start, end = min(plan.guards)
    return raw if SIZE + len(raw) <= min(end - start, KEPT_MAX) else b""


def kept_table(disk):
    """The kept partitions of an interrupted whole-disk restore (its marker
    at byte 0 and its KEPT block), as a PartitionTable holding only them,
    or None."""
    from .tables.partitions import Partition, PartitionTable
    marker = read_at(disk, 0)
    if marker is None or not marker.kept:
        return None
    head = disk.read(SIZE, len(KEPT_MAGIC) + 8)
    size = int.from_bytes(head[-8:-4], "little")
    if not head.startswith(KEPT_MAGIC) or size > KEPT_MAX:
        raise IncompleteTargetError(
            f"{disk.path}: its restore marker's list of kept partitions is "
            f"damaged; restore with --overwrite-protected, or mend the "
            f"table")
    doc = disk.read(SIZE + len(head), size)
    if zlib.crc32(doc) != int.from_bytes(head[-4:], "little"):
        raise IncompleteTargetError(
            f"{disk.path}: its restore marker's list of kept partitions "
            f"fails its CRC; restore with --overwrite-protected, or mend "
            f"the table")
    parts = [Partition(**p) for p in json.loads(doc)["partitions"]]
    kind = "gpt" if any("-" in p.type for p in parts) else "mbr"
    return PartitionTable(kind, disk.logical_sector_size, disk.size, "",
                          parts)


def check_resume(plan, stream, marker, target):
    """Refuse a --resume that cannot be one: no marker, another image,
    another plan, a shrink (its temporary file is gone), a restore that had
    begun changing filesystems.  Raises TargetError; nothing is written."""
    from .errors import TargetError
    again = "restore without --resume to start over"
    if marker is None:
        raise TargetError(f"{target}: has no interrupted restore to resume; "
                          f"{again}")
    if marker.front != front_digest(stream):
        raise TargetError(f"{target}: the interrupted restore was of another "
                          f"image ({marker.name or '?'}, {marker.image_id}); "
                          f"{again}")
    root, _ = image_identity(stream)
    if root and marker.root and root != marker.root:
        raise TargetError(f"{target}: the interrupted restore was of another "
                          f"image (root {marker.root.hex()}, this one is "
                          f"{root.hex()}); {again}")
    if marker.plan != plan_fingerprint(plan) or \
            marker.offset != marker_offset(plan):
        raise TargetError(f"{target}: the interrupted restore had another "
                          f"plan (other options, or a target that changed); "
                          f"give the same options, or {again}")
    if any(p.action == "shrink" for p in plan.placements):
        raise TargetError(f"{target}: a restore that shrinks a partition "
                          f"cannot resume (its temporary file is gone); "
                          f"{again}")
    if marker.phase != PHASE_RECORDS:
        raise TargetError(f"{target}: the interrupted restore had begun "
                          f"changing filesystems (grow, new identities); "
                          f"{again}")


def prefix_differs(target, marker):
    from .errors import TargetError
    return TargetError(
        f"{target}: the image differs from the one whose restore was "
        f"interrupted (in its first {marker.checkpoint} records); nothing "
        f"written; restore without --resume to start over")


def checked_prefix(stream, records, marker, target):
    """The records, with those before the marker's checkpoint checked to be
    the ones the interrupted restore wrote (the SHA-256 of their headers)
    before any record after it goes on (this runs on the feeder, in
    order, so no worker writes a record past the checkpoint first); and
    the root, at the end, when the marker knows it.

    The marker as found is copied first: the restore's own checkpoints
    rewrite the run's marker from the consumer thread while this runs
    ahead of it, and a check against a checkpoint that moved under it
    refused the very image (issue 17's trial: "the image differs")."""
    marker = replace(marker)
    prefix = hashlib.sha256()
    number = -1
    for record in records:
        number = record[0]
        if number == marker.checkpoint and \
                prefix.digest() != marker.prefix:
            raise prefix_differs(target, marker)
        if number < marker.checkpoint:
            prefix.update(record_bytes(stream, record[1]))
        yield record
    if number + 1 < marker.checkpoint or (
            number + 1 == marker.checkpoint and
            prefix.digest() != marker.prefix):
        raise prefix_differs(target, marker)
    root = bytes.fromhex(stream.summary["digest"])
    if marker.root and root != marker.root:
        from .errors import TargetError
        raise TargetError(f"{target}: the image differs from the one whose "
                          f"restore was interrupted (root {root.hex()}, "
                          f"the marker's {marker.root.hex()})")
