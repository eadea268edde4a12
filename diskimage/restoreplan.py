"""The plan of a restore, decided before a byte is written.

:func:`plan_restore` reads the image's metadata and the target (its size,
sector size, table and protected partitions), lays the image's partitions
out on it (:mod:`diskimage.layout`) and refuses what cannot be carried out:
a target too small for the data (saying by how much), mounted or held, the
image itself, an unconvertible sector size, a slot that does not fit.
:class:`RestorePlan` is what :func:`diskimage.restore.run_restore` carries
out and what ``rdeploy restore --dry-run`` prints.
"""

import os
import shutil
import uuid
from dataclasses import dataclass, field

from . import layout, mbrlayout, plannotes, restoredelta, restoremark
from .fs import registry
from .host.device import open_source
from .host.links import refuse_dangling_link
from .host.identity import same_storage
from .host.sysfs import busy_reason, disk_model
from .errors import InputError, TargetError
from .tables.partitions import read_table
from .tables.protected import protected_partitions, why_protected
from .sizes import format_size

GUARD_SIZE = 1 << 20
TABLE_KINDS = ("head", "ebr", "gpt-backup")


@dataclass
class RestorePlan:
    stream: object
    target: str
    target_size: int
    create: bool
    write_table: bool
    areas: set                       # indexes of the image areas to write
    guards: list = field(default_factory=list)   # target (start, end)
    required_size: int = 0
    target_label: str = ""
    sector_size: int = 512           # the target's logical sector size
    placements: list = field(default_factory=list)  # layout.Placement
    rewrite_table: bool = False      # write a new table, not the image's
    kept: list = field(default_factory=list)     # (Partition, reason)
    new_ids: bool = False
    tmpdir: str = None
    notes: list = field(default_factory=list)
    #: --delta: write only the chunks the target does not hold already
    #: (diskimage.restoredelta)
    delta_restore: bool = False

    def describe(self):
        meta = self.stream.metadata
        parts = [a for i, a in enumerate(meta["areas"]) if i in self.areas
                 and a["kind"] == "partition"]
        what = ", ".join(f"partition {a['partition']}" for a in parts) \
            or "the whole disk"
        table = " and the partition table" if self.write_table and parts \
            else ""
        return f"{what}{table} onto {self.target_label}"

    def delta(self, area):
        """Where the bytes of image area *area* go, relative to where they
        were, or None when they go to a temporary file (a shrink)."""
        for p in self.placements:
            if p.area == area:
                return None if p.action == "shrink" else \
                    p.new_start - p.old_start
        return 0

    def to_dict(self):
        return {
            "target": self.target, "target_size": self.target_size,
            "sector_size": self.sector_size,
            "table": "none (the image is of a whole disk)"
                     if self.stream.metadata["table"]["kind"] == "none" else
                     "new" if self.rewrite_table else
                     ("image's" if self.write_table else "target's, kept"),
            "partitions": [p.to_dict() for p in self.placements],
            "kept": [dict(number=p.number, start=p.start, size=p.size,
                          reason=reason) for p, reason in self.kept],
            "new_ids": self.new_ids, "notes": self.notes,
            "delta": self.delta_restore,
        }


def _check_target(path, stream):
    if os.path.isdir(path):
        raise InputError(f"{path}: is a directory, not a disk or disk file")
    for volume in getattr(stream.source, "paths", []):
        if same_storage(path, volume):
            raise TargetError(f"{path}: is the image being restored")
    fd = _fileno(getattr(stream.source, "fileobj", None))
    if fd is not None and same_storage(path, fd):
        raise TargetError(f"{path}: is the image being restored (it is "
                          f"what stdin reads)")
    reason = busy_reason(path)
    if reason:
        raise TargetError(f"{path}: {reason}")


def _fileno(fileobj):
    """The file descriptor under an image read from a file object (stdin),
    or None (a BytesIO has none)."""
    try:
        return fileobj.fileno() if fileobj is not None else None
    except (AttributeError, OSError, ValueError):
        return None


def plan_restore(stream, target_path, *, partitions=None, into=None,
                 mode="keep", sizes=None, new_ids=False,
                 overwrite_protected=False, tmpdir=None, delta=False):
    """Decide what a restore of `stream` (a RecordStream, header and
    metadata read) onto `target_path` will do; refuse what cannot work.

    *partitions*: restore only these into the target's matching slots.
    *into*: restore the one chosen image partition into target slot *into*.
    *mode*, *sizes*: the layout (see :func:`layout.plan_layout`).
    *delta*: a delta restore (diskimage.restoredelta), refused with
    LayoutDiffersError unless the target holds the image's layout.
    """
    meta = stream.metadata
    areas = meta["areas"]
    image_parts = {a["partition"]: i for i, a in enumerate(areas)
                   if a["kind"] == "partition"}
    if partitions is not None:
        missing = [n for n in partitions if n not in image_parts]
        if missing:
            have = ", ".join(str(n) for n in sorted(image_parts)) or "none"
            raise InputError(f"{stream.name}: holds no partition {missing[0]}"
                             f" (partitions in the image: {have})")
    refuse_dangling_link(target_path)
    create = not os.path.exists(target_path)
    if delta:
        restoredelta.refuse_early(stream, target_path, create=create,
                                  into=into, mode=mode, sizes=sizes)
    if not create:
        _check_target(target_path, stream)
    # The sectors the image's table counts in (a GPT found with 4096-byte
    # sectors on a disk file); older images recorded 512 there.
    image_sector = meta["table"]["sector_size"] \
        if meta["table"]["kind"] != "none" \
        else meta["source"]["logical_sector_size"]
    plan = RestorePlan(stream, target_path, meta["source"]["size"], create,
                       True, set(range(len(areas))), sector_size=image_sector,
                       new_ids=new_ids, tmpdir=tmpdir, delta_restore=delta)
    target_table = wiped = None
    if create:
        if os.path.dirname(target_path) and \
                not os.path.isdir(os.path.dirname(target_path)):
            raise TargetError(f"{target_path}: its directory does not exist")
        if into is not None or partitions is not None:
            raise TargetError(f"{target_path}: does not exist, so it has no "
                              f"partitions to restore into")
        plan.target_label = f"{target_path} (new file)"
    else:
        with open_source(target_path) as disk:
            plan.target_size = disk.size
            if disk.is_block:
                plan.sector_size = disk.logical_sector_size
            model = disk_model(target_path)
            plan.target_label = f"{target_path} ({model + ', ' if model else ''}" \
                f"{format_size(disk.size)}, {disk.size} bytes)"
            target_table = read_table(disk.read, disk.size, plan.sector_size)
            if target_table.kind == "none" and into is None and \
                    partitions is None:
                # an interrupted whole-disk restore: the partitions it kept
                target_table = restoremark.kept_table(disk) or target_table
                wiped = restoredelta.wiped_marker(disk) if delta else None
    if delta:
        restoredelta.check_layout(stream, target_path, target_table,
                                  partitions, wiped, overwrite_protected)
    if into is not None:
        _plan_into(plan, target_table, into, partitions, image_parts,
                   overwrite_protected)
    elif partitions is not None:
        _plan_slots(plan, target_table, partitions, image_parts)
    else:
        _plan_disk(plan, target_table, mode, sizes, overwrite_protected)
    _check_sector_size(plan, image_sector)
    _check_tmpdir(plan)
    plannotes.copied_whole(plan, areas)
    if delta:
        restoredelta.check_plan(plan, partitions, wiped)
    return plan


def _plan_disk(plan, target_table, mode, sizes, overwrite_protected):
    """A whole-disk restore: the image's layout, fitted to the target."""
    meta = plan.stream.metadata
    kind = meta["table"]["kind"]
    mbrlayout.check_chain(meta)
    if target_table is not None and not overwrite_protected:
        plan.kept = protected_partitions(target_table)
    if kind == "none" or (target_table is None and mode == "keep"
                          and not sizes):
        plan.placements = layout.image_placements(meta)
    else:
        try:
            plan.placements = layout.plan_layout(
                meta, plan.target_size, plan.sector_size, mode=mode,
                sizes=sizes, kind=kind,
                protected=[(p.start, p.end) for p, _ in plan.kept])
        except TargetError as exc:
            raise TargetError(f"{plan.target}: {exc}") from None
    if kind == "none" and (mode != "keep" or sizes):
        raise TargetError("the image holds a disk with no partition table; "
                          "--grow, --resize and --size need partitions")
    moved = any((p.new_start, p.new_size) != (p.old_start, p.old_size)
                for p in plan.placements)
    plan.rewrite_table = kind != "none" and (
        moved or plan.kept != [] or plan.new_ids or
        plan.sector_size != meta["table"]["sector_size"] or
        (kind == "gpt" and plan.target_size != meta["table"]["disk_size"]))
    if plan.rewrite_table:
        skip = mbrlayout.replaced_ebrs(meta, plan.placements)
        plan.areas = {i for i, a in enumerate(meta["areas"])
                      if a["kind"] != "gpt-backup" and i not in skip}
        ends = [p.new_start + p.new_size for p in plan.placements]
        plan.required_size = max(ends, default=0)
    else:
        plan.required_size = max((a["start"] + a["size"]
                                  for a in meta["areas"]), default=0)
    _check_size(plan)
    if plan.rewrite_table:
        kept_numbers(plan)
    for start, end in plan_kept_overlaps(plan):
        raise TargetError(f"{plan.target}: the layout would overwrite a "
                          f"protected partition at bytes {start}-{end}")
    for i, area in enumerate(meta["areas"]):
        if area["kind"] == "head":
            plan.guards.append((area["start"], area["start"] +
                                min(area["size"], GUARD_SIZE)))
        elif area["kind"] == "disk":
            plan.guards.append((0, min(area["size"], GUARD_SIZE)))
        elif area["kind"] == "gpt-backup" and not plan.rewrite_table:
            plan.guards.append((area["start"], area["start"] + area["size"]))
    if plan.rewrite_table and kind == "gpt" and not plan.create:
        # The target's own backup GPT at its end goes first: a restore that
        # fails must not leave it to be found.
        tail = layout.usable("gpt", plan.target_size, plan.sector_size)[1]
        plan.guards.append((tail, plan.target_size))
    if plan.rewrite_table:
        plan.notes += mbrlayout.mbr_notes(meta, plan.placements)
    if plan.kept:
        plan.notes.append("kept: " + "; ".join(
            f"partition {p.number} ({reason})" for p, reason in plan.kept))
    for p in plan.placements:
        plannotes.resize(plan, p)


def kept_numbers(plan):
    """The table number each kept (protected) partition gets in the new
    table (see :func:`layout.kept_slots`)."""
    return layout.kept_slots(plan.stream.metadata["table"]["kind"],
                             plan.placements, [p for p, _ in plan.kept],
                             plan.target)


def plan_kept_overlaps(plan):
    for p, _ in plan.kept:
        for q in plan.placements:
            if q.new_start < p.end and p.start < q.new_start + q.new_size:
                yield p.start, p.end


def _check_size(plan):
    if plan.required_size > plan.target_size:
        short = plan.required_size - plan.target_size
        raise TargetError(
            f"{plan.target}: too small: {plan.target_size} bytes, the image "
            f"needs {plan.required_size} ({short} more)")


def _plan_slots(plan, target_table, partitions, image_parts):
    """--partitions: into the same slots of the target's table, or with the
    image's table when the target has none."""
    meta = plan.stream.metadata
    plan.placements = layout.image_placements(meta, set(partitions))
    plan.write_table = target_table is None or target_table.kind == "none"
    if not plan.write_table:
        theirs = {p.number: p for p in target_table.partitions}
        for p in plan.placements:
            slot = theirs.get(p.number)
            if slot is None or (slot.start, slot.size) != \
                    (p.old_start, p.old_size):
                raise TargetError(
                    f"{plan.target}: partition {p.number} is not where the "
                    f"image's is (start {p.old_start}, size {p.old_size} "
                    f"bytes); use --into={p.number}, or restore the whole "
                    f"disk")
            _refuse_protected(plan, target_table, slot, False)
    keep = {image_parts[n] for n in partitions}
    if plan.write_table:
        mbrlayout.check_chain(meta)
        keep |= {i for i, a in enumerate(meta["areas"])
                 if a["kind"] in TABLE_KINDS}
    plan.areas = keep
    chosen = [meta["areas"][i] for i in keep]
    plan.required_size = max(a["start"] + a["size"] for a in chosen)
    _check_size(plan)
    for area in chosen:
        if area["kind"] in ("partition", "head"):
            plan.guards.append((area["start"], area["start"] +
                                min(area["size"], GUARD_SIZE)))
        elif area["kind"] == "gpt-backup":
            plan.guards.append((area["start"], area["start"] + area["size"]))


def _refuse_protected(plan, table, slot, overwrite):
    reason = why_protected(table.kind, slot)
    if reason and not overwrite:
        raise TargetError(
            f"{plan.target}: partition {slot.number} is protected ({reason});"
            f" --overwrite-protected to write it anyway")


def _plan_into(plan, target_table, into, partitions, image_parts,
               overwrite_protected):
    """--into=N: one image partition into target partition N."""
    if partitions is None:
        if len(image_parts) != 1:
            raise InputError(
                f"{plan.stream.name}: holds {len(image_parts)} partitions; "
                f"choose one with --partitions=N for --into")
        partitions = list(image_parts)
    if len(partitions) != 1:
        raise InputError("--into takes exactly one image partition "
                         "(--partitions=N)")
    number = partitions[0]
    if target_table is None or target_table.kind == "none":
        raise TargetError(f"{plan.target}: has no partition table to "
                          f"restore into")
    slot = next((p for p in target_table.partitions
                 if p.number == into), None)
    if slot is None:
        have = ", ".join(str(p.number) for p in target_table.partitions)
        raise TargetError(f"{plan.target}: has no partition {into} "
                          f"(it has: {have or 'none'})")
    _refuse_protected(plan, target_table, slot, overwrite_protected)
    placement = layout.plan_into(plan.stream.metadata, number, slot.start,
                                 slot.size)
    plan.placements = [placement]
    plannotes.resize(plan, placement)
    plan.write_table = False
    plan.areas = {image_parts[number]}
    plan.required_size = slot.end
    plan.guards.append((slot.start, slot.start + min(slot.size, GUARD_SIZE)))


def _check_sector_size(plan, image_sector):
    if plan.sector_size == image_sector:
        return
    meta = plan.stream.metadata
    what = f"{plan.target}: has {plan.sector_size}-byte sectors, the image " \
        f"{image_sector}-byte sectors"
    if meta["table"]["kind"] != "gpt" or not plan.rewrite_table:
        raise TargetError(f"{what}; only GPT disks restored whole can be "
                          f"converted")
    for p in plan.placements:
        if p.fs not in registry.kinds(lambda r: r.sector_free):
            raise TargetError(
                f"{what}; partition {p.number} holds "
                f"{p.fs or 'an unknown filesystem'}, which records its "
                f"sector size (only "
                f"{registry.titles(lambda r: r.sector_free)} convert)")
        if p.new_start % plan.sector_size or p.new_size % plan.sector_size:
            raise TargetError(f"{what}; partition {p.number} is not aligned "
                              f"to {plan.sector_size} bytes")
    plan.notes.append(f"sector size converted from {image_sector} to "
                      f"{plan.sector_size} bytes")


def _check_tmpdir(plan):
    shrinking = [p for p in plan.placements if p.action == "shrink"]
    if not shrinking:
        return
    plan.tmpdir = plan.tmpdir or os.environ.get("TMPDIR") or "/tmp"
    if not os.path.isdir(plan.tmpdir):
        raise TargetError(f"--tmpdir {plan.tmpdir}: is not a directory")
    meta = plan.stream.metadata
    need = sum(meta["areas"][p.area].get("used_bytes") or p.old_size
               for p in shrinking)
    free = shutil.disk_usage(plan.tmpdir).free
    if free < need:
        raise TargetError(
            f"{plan.tmpdir}: shrinking needs {format_size(need)} of temporary"
            f" space there, {format_size(free)} is free (use --tmpdir)")
    plan.notes.append(f"shrinking works in {plan.tmpdir} "
                      f"(up to {format_size(need)})")


def new_guid():
    return str(uuid.uuid4())
