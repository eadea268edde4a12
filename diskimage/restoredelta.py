"""Delta restore (``rdeploy restore --delta``): write only the chunks whose
bytes the target does not hold already.

:func:`refuse_early` and :func:`check_plan` run in
:func:`diskimage.restoreplan.plan_restore` with ``delta=True``, before
anything is written: the image must be format 1.1 (its chunks carry a
strong digest), the target must exist and hold the image's layout (table
kind, sector size, every partition's number, start, size and type), and
nothing may move or change size; otherwise
LayoutDiffersError names the first difference.

During :func:`diskimage.restore.run_restore` every record of the stream is
still read, decoded and checked against its digest, as in a full restore.
For each data chunk a :class:`Comparer` reads the target's bytes at the
chunk's disk offset and compares them with the chunk's checked bytes (byte
for byte: the same answer as comparing the target's BLAKE3 digest with the
chunk's, since the chunk's bytes were just checked against that digest,
for a memcmp instead of a hash); a hole is compared with zeros.  Only a
chunk that differs is written, and of it only the 64 KiB blocks that
differ (of a hole, the blocks that do not read as zeros are zeroed).
Everything else a full restore does (the guard zones zeroed first and
written last, the restore marker and its checkpoints, the finishing steps,
the table, new identities) happens the same way, so a delta leaves the
target byte for byte as a full restore of the same target would.  The
guard zones (the table's first MiB, a --partitions restore's partition
starts, the GPT backup) are always written; they count in `written`.
"""

import threading

from .errors import (IncompleteTargetError, LayoutDiffersError,
                     UnsupportedError)
from .host.device import write_all, zero_range
from .tables.protected import protected_partitions

_ZEROS = bytes(4 << 20)
#: Within a chunk that differs, only its BLOCK-sized blocks that differ are
#: written (a file changed in a 4 MiB chunk rarely changes all of it).
BLOCK = 64 << 10


def refuse_early(stream, target, *, create, into, mode, sizes):
    """What is refused before the target is even read: a 1.0 image, a
    target that does not exist, an option that changes the layout."""
    if not stream.layout.strong:
        raise UnsupportedError(
            f"{stream.name}: is a format {stream.version} image, whose "
            f"chunks carry only a CRC-32; --delta compares format 1.1's "
            f"strong digests: rewrite it as 1.1 with imgx recompress, or "
            f"restore without --delta")
    if create:
        raise LayoutDiffersError(
            f"{target}: does not exist, so there is nothing to compare "
            f"with; restore without --delta")
    for given, option in ((into is not None, "--into"),
                          (mode == "grow", "--grow"),
                          (mode not in ("keep", "grow"), "--resize"),
                          (bool(sizes), "--size")):
        if given:
            raise LayoutDiffersError(
                f"{option} lays the image out anew; --delta writes it in "
                f"place over the same layout; restore without --delta")


def check_layout(stream, target, target_table, partitions=None,
                 marker=None, overwrite_protected=False):
    """Refuse (LayoutDiffersError) a target whose layout is not the
    image's, before the layout is planned (so a target that differs is
    refused as such, not as too small).  *target_table*: the target's
    table as read; *partitions*: the --partitions chosen (None: the whole
    disk); *marker*: the restore marker at byte 0 of a target whose table
    an interrupted restore wiped (checked by :func:`check_plan`)."""
    table = stream.metadata["table"]
    if table["kind"] == "none" or (marker is not None and partitions is None):
        return
    kept = [] if overwrite_protected or partitions is not None or \
        target_table is None else protected_partitions(target_table)
    _same_table(stream.name, target, table, target_table, partitions,
                {(k.number, k.start, k.size) for k, _ in kept})


def check_plan(plan, partitions=None, marker=None):
    """Refuse (LayoutDiffersError) a delta plan that moves or resizes a
    partition, or whose target's table an interrupted restore with another
    plan wiped (*marker*: its restore marker; the same plan is accepted:
    that restore laid the image's layout out)."""
    target = plan.target
    if marker is not None and partitions is None and \
            plan.stream.metadata["table"]["kind"] != "none":
        from .restoremark import plan_fingerprint
        if marker.plan != plan_fingerprint(plan):
            raise LayoutDiffersError(
                f"{target}: holds an interrupted restore with another "
                f"layout (its table is wiped); restore without --delta")
        plan.notes.append("delta: the target holds an interrupted restore "
                          "of this layout; its bytes are compared")
    for p in plan.placements:
        if (p.new_start, p.new_size) != (p.old_start, p.old_size):
            raise LayoutDiffersError(
                f"{target}: partition {p.number} would be laid out at "
                f"{p.new_start} ({p.new_size} bytes), the image has it at "
                f"{p.old_start} ({p.old_size} bytes); restore without "
                f"--delta")
    plan.notes.append("delta: only the chunks whose bytes differ from the "
                      "target's are written (every chunk is still read and "
                      "checked)")


def _same_table(name, target, table, target_table, partitions, kept):
    have = target_table.kind if target_table is not None else "none"
    if have != table["kind"]:
        what = "no partition table" if have == "none" else \
            f"an {have.upper()} table"
        raise LayoutDiffersError(
            f"{target}: has {what}, {name} a {table['kind'].upper()} table;"
            f" restore without --delta")
    if target_table.sector_size != table["sector_size"]:
        raise LayoutDiffersError(
            f"{target}: its table counts {target_table.sector_size}-byte "
            f"sectors, {name}'s {table['sector_size']}-byte sectors; restore "
            f"without --delta")
    ss = table["sector_size"]
    theirs = {p.number: p for p in target_table.partitions}
    chosen = [p for p in table["partitions"]
              if partitions is None or p["number"] in partitions]
    for p in sorted(chosen, key=lambda p: p["number"]):
        n, slot = p["number"], theirs.get(p["number"])
        if slot is None:
            raise LayoutDiffersError(
                f"{target}: has no partition {n}, {name} has it at sector "
                f"{p['start'] // ss}; restore without --delta")
        for what, mine, image in (
                ("starts at sector", slot.start // ss, p["start"] // ss),
                ("has a size of", f"{slot.size // ss} sectors",
                 f"{p['size'] // ss} sectors"),
                ("has the type", slot.type, p["type"])):
            if mine != image:
                raise LayoutDiffersError(
                    f"partition {n} {what} {mine} on {target}, {image} in "
                    f"{name}; restore without --delta")
    if partitions is None:
        image_numbers = {p["number"] for p in table["partitions"]}
        for slot in target_table.partitions:
            if slot.number not in image_numbers and \
                    (slot.number, slot.start, slot.size) not in kept:
                raise LayoutDiffersError(
                    f"{target}: has a partition {slot.number} (at sector "
                    f"{slot.start // ss}) that {name} does not; restore "
                    f"without --delta")


def wiped_marker(disk):
    """The restore marker at byte 0 of a target whose table an interrupted
    restore wiped, or None (a damaged one too: the layout is not known)."""
    from . import restoremark
    try:
        return restoremark.read_at(disk, 0)
    except IncompleteTargetError:
        return None


class Comparer:
    """Compares and writes the chunks of one delta restore; called from
    the restore's worker threads (the counts under a lock).

    Where the target differs almost everywhere (another disk's content
    under the same table), reading it only costs: after STREAK chunks in a
    row of which more than half differed, chunks are written without
    reading the target, as a full restore writes them, but every PROBE-th
    one is still compared; a probe that finds the target mostly the same
    ends the stretch.  So a delta is not much slower than a full restore
    where most differs, and writes at most PROBE chunks it need not have
    where a stretch of differences ends."""

    STREAK = 4
    PROBE = 8

    def __init__(self, disk, guards):
        self.disk = disk
        self.lock = threading.Lock()
        self.read = self.compared = 0
        # the guard zones: zeroed first, their bytes written last
        self.written = sum(end - start for start, end in guards)
        self.chunks_written = self.chunks_same = self.chunks_unread = 0
        self.streak = self.passed = 0

    def data(self, pieces):
        """*pieces*: (target offset, bytes) of one chunk, outside the guard
        zones; the blocks that differ from the target written."""
        size = written = 0
        unread = self._unread()
        for start, piece in pieces:
            size += len(piece)
            if unread:
                write_all(self.disk, start, piece)
                continue
            have = self.disk.read(start, len(piece))
            if have != piece:
                written += self._blocks(start, piece, have)
        self._count(size, size if unread else written, unread)

    def _blocks(self, start, piece, have, zero=False):
        """Write the BLOCK-sized blocks of *piece* that differ from *have*
        (runs of them at once; *zero*: *piece* is zeros, the runs are
        zeroed); returns the bytes written."""
        written, run, size = 0, None, len(piece)
        for at in range(0, size + BLOCK, BLOCK):
            differs = at < size and \
                have[at:at + BLOCK] != piece[at:at + BLOCK]
            if differs and run is None:
                run = at
            elif not differs and run is not None:
                end = min(at, size)
                if zero:
                    zero_range(self.disk, start + run, end - run)
                else:
                    write_all(self.disk, start + run, piece[run:end])
                written += end - run
                run = None
        return written

    def hole(self, ranges):
        """*ranges*: (start, end) of one hole outside the guard zones; the
        blocks of it that do not read as zeros are zeroed."""
        size = written = 0
        unread = self._unread()
        for start, end in ranges:
            if unread:
                zero_range(self.disk, start, end - start)
                size += end - start
                continue
            while start < end:      # a hole may be longer than _ZEROS
                n = min(end - start, len(_ZEROS))
                have = self.disk.read(start, n)
                zeros = _ZEROS[:n]    # (bytes: compared by memcmp)
                if have != zeros:
                    written += self._blocks(start, zeros, have, zero=True)
                size += n
                start += n
        self._count(size, size if unread else written, unread)

    def prefetched(self, records, plan):
        """The records, the target's bytes under each one asked for (a
        read-ahead hint) as the feeder takes it, some records before a
        worker reads them: more than one read in flight on the device."""
        for record in records:
            fields = record[1]
            shift = plan.delta(fields["area"]) \
                if fields["area"] in plan.areas else None
            if shift is not None and self.streak < self.STREAK:
                self.disk.prefetch(fields["disk_offset"] + shift,
                                   fields["length"])
            yield record

    def _unread(self):
        """Whether this chunk is written without reading the target."""
        with self.lock:
            if self.streak < self.STREAK:
                return False
            self.passed += 1
            return self.passed % self.PROBE != 0

    def _count(self, size, written, unread):
        if not size:
            return
        with self.lock:
            self.written += written
            if unread:
                self.chunks_unread += 1
                self.chunks_written += 1
                return
            self.read += size
            self.compared += size
            self.streak = self.streak + 1 if 2 * written > size else 0
            if written:
                self.chunks_written += 1
            else:
                self.chunks_same += 1

    def summary(self):
        """The counts: bytes read and compared (the same), bytes written
        (the guard zones too), chunks written (some of them, where the
        target differed almost everywhere, unread) and chunks the same."""
        return {"read": self.read, "compared": self.compared,
                "written": self.written,
                "chunks_written": self.chunks_written,
                "chunks_same": self.chunks_same,
                "chunks_unread": self.chunks_unread}
