"""Where each partition of an image goes on a target disk: the layout half of
a restore plan, decided from the image's metadata and the target alone.

Rules, in the order they apply:

1. The image partitions keep their order, their numbers and the gaps between
   them; the first keeps its start unless protected partitions on the target
   sit there, in which case the layout moves into the largest free stretch
   between the protected partitions.
2. ``sizes`` (``--size N=SIZE``) sets partitions' sizes; ``proportional``
   scales every resizable partition by target span / image span.
3. When the result does not fit, resizable filesystems (see
   :mod:`diskimage.fs.resize`) shrink in proportion to their free space, never
   below :func:`fsresize.min_size`; when even that does not fit, the error
   says by how many bytes.
4. ``grow`` extends the last partition to the end of the usable space.

Starts are aligned to 1 MiB when they move; a GPT's backup always lands at
the target's end.

MBR logical partitions move and resize like primaries, each keeping the
distance from its extended boot record (EBR) to its start (its *lead*).
When any of them moves or resizes, :func:`diskimage.mbrlayout.chain` gives
each its new EBR offset (``Placement.ebr``) for the table writer, or
refuses (TargetError) a chain that cannot be kept as it was.
"""

from dataclasses import dataclass

from . import mbrlayout
from .fs import resize as fsresize
from .errors import InputError, TargetError
from .sizes import format_size
from .tables.partitions import extended_said

ALIGN = 1 << 20
GPT_ARRAY_BYTES = 128 * 128
FIRST_LOGICAL = mbrlayout.FIRST_LOGICAL
MODES = ("keep", "grow", "proportional")


@dataclass
class Placement:
    number: int            # partition number, in the image and on the target
    area: int              # index of the image area
    fs: str                # filesystem name, or None
    old_start: int
    old_size: int
    new_start: int
    new_size: int
    min_size: int          # the least it may shrink to
    #: MBR logical: bytes from its EBR to its start in the image (0: none)
    lead: int = 0
    #: MBR logical whose chain is rewritten: its EBR's new byte offset
    ebr: int = None

    @property
    def resized(self):
        return self.new_size != self.old_size

    @property
    def fs_resized(self):
        if self.new_size > self.old_size:
            return fsresize.can_grow(self.fs, self.new_size)
        return self.resized and fsresize.can_shrink(self.fs)

    @property
    def action(self):
        if not self.resized:
            return "copy" if self.new_start == self.old_start else "move"
        if self.fs_resized:
            return "grow" if self.new_size > self.old_size else "shrink"
        return "copy, partition grows, filesystem keeps its size"

    def to_dict(self):
        return dict(number=self.number, filesystem=self.fs,
                    old_start=self.old_start, old_size=self.old_size,
                    new_start=self.new_start, new_size=self.new_size,
                    action=self.action)


def usable(kind, disk_size, sector_size):
    """[first, end) bytes a table of *kind* lets partitions use."""
    if kind == "gpt":
        array = -(-GPT_ARRAY_BYTES // sector_size) * sector_size
        return (2 * sector_size + array,
                disk_size - array - sector_size)
    if kind == "mbr":
        return sector_size, min(disk_size, (1 << 32) * sector_size)
    return 0, disk_size


def _up(n, align=ALIGN):
    return -(-n // align) * align


def _down(n, align=ALIGN):
    return n // align * align


def image_placements(meta, numbers=None):
    """A Placement per image partition (or per chosen number), unmoved."""
    leads = mbrlayout.leads(meta)
    out = []
    for index, area in enumerate(meta["areas"]):
        if area["kind"] != "partition":
            continue
        if numbers is not None and area["partition"] not in numbers:
            continue
        fs = area.get("filesystem")
        used = area.get("used_bytes") if area.get("method") == "used-blocks" \
            else None
        out.append(Placement(area["partition"], index, fs, area["start"],
                             area["size"], area["start"], area["size"],
                             fsresize.min_size(fs, used, area["size"],
                                               area.get("block_size")),
                             leads.get(area["start"], 0)
                             if area["partition"] >= FIRST_LOGICAL else 0))
    return sorted(out, key=lambda p: p.old_start)


def _window(first, end, protected, origin):
    """The stretch of [first, end) the layout goes into: all of it, or the
    largest free stretch between protected (start, end) ranges."""
    if not protected:
        return max(first, origin), end
    stretches, cursor = [], first
    for p_start, p_end in sorted(protected):
        if p_start > cursor:
            stretches.append((cursor, p_start))
        cursor = max(cursor, p_end)
    if cursor < end:
        stretches.append((cursor, end))
    if not stretches:
        raise TargetError("no free space is left between the protected "
                          "partitions")
    lo, hi = max(stretches, key=lambda s: s[1] - s[0])
    return max(_up(lo), origin) if lo <= origin < hi else _up(lo), hi


def plan_layout(meta, target_size, target_sector, *, mode="keep", sizes=None,
                protected=(), kind=None):
    """Placements of every image partition on a target of *target_size*
    bytes; raises TargetError (too small, by how much; MBR logical
    partitions that would move but whose EBR chain cannot be kept) or
    InputError (--size of a partition the image does not hold).
    *protected* lists (start, end) byte ranges that must stay untouched."""
    if mode not in MODES:
        raise ValueError(mode)
    table = meta["table"]
    kind = kind or table["kind"]
    places = image_placements(meta)
    if not places:
        return places
    sizes = dict(sizes or {})
    unknown = sorted(set(sizes) - {p.number for p in places})
    if unknown:
        raise InputError("--size: " + (
            extended_said(table, unknown[0]) or
            f"the image has no partition {unknown[0]}"))
    first, end = usable(kind, target_size, target_sector)
    img_first, img_end = usable(kind, table["disk_size"], table["sector_size"])
    origin = places[0].old_start - places[0].lead    # an EBR before it
    lo, hi = _window(first, end, protected, origin)

    if mode == "proportional":
        factor = (hi - lo) / max(1, img_end - origin)
        for p in places:
            if p.number in sizes:
                continue
            scaled = _down(int(p.old_size * factor))
            # min_size is the old size for a filesystem that cannot shrink:
            # its partition may grow, never shrink.
            p.new_size = max(p.min_size, scaled)
    for number, size in sizes.items():
        p = next(p for p in places if p.number == number)
        if size < p.min_size:
            raise TargetError(
                f"--size {number}={size}: partition {number} ({p.fs}) needs "
                f"at least {format_size(p.min_size)}")
        p.new_size = size
    _pack(places, lo)
    overflow = places[-1].new_start + places[-1].new_size - hi
    if overflow > 0:
        _shrink(places, lo, hi, set(sizes), target_size)
    if mode == "grow":
        last = places[-1]
        last.new_size = _down(hi - last.new_start, target_sector)
    mbrlayout.chain(places, kind)
    return places


def _pack(places, lo):
    """Starts from sizes: the image's gaps kept, moved starts aligned."""
    cursor = None
    for p, prev in zip(places, [None] + places[:-1]):
        if prev is None:        # an MBR logical's EBR must fit too
            p.new_start = p.old_start if p.old_start - p.lead >= lo \
                else _up(lo + p.lead)
        else:
            gap = p.old_start - (prev.old_start + prev.old_size)
            p.new_start = max(cursor + gap, 0)
            if p.new_start != p.old_start:
                p.new_start = _up(p.new_start)
        cursor = p.new_start + p.new_size


def _shrink(places, lo, hi, fixed, target_size):
    """Take *overflow* bytes from the shrinkable partitions, in proportion
    to what each can give, or say by how much the disk is too small."""
    can = [p for p in places
           if fsresize.can_shrink(p.fs) and p.number not in fixed]
    wanted = {p.number: p.new_size for p in places}
    for p in can:
        p.new_size = p.min_size
    _pack(places, lo)
    least = places[-1].new_start + places[-1].new_size
    if least > hi:
        short = least - hi
        shrunk = ", ".join(f"partition {p.number} ({p.fs})" for p in can)
        # filesystems that grow but never shrink keep their size (one that
        # --size grows is named as a grow, never as one that cannot shrink)
        kept = "".join(
            f"; {fsresize.title(p.fs)} cannot shrink: partition {p.number} "
            f"needs {format_size(p.new_size)}" if p.new_size <= p.old_size
            else f"; partition {p.number} ({p.fs}) grows to "
            f"{format_size(p.new_size)} as --size asks" for p in places
            if fsresize.can_grow(p.fs) and not fsresize.can_shrink(p.fs)
            or p.number in fixed and p.new_size > p.old_size)
        raise TargetError(
            f"target too small: {target_size} bytes, the image's data needs "
            f"{target_size + short} ({short} more, {format_size(short)})"
            + (f" with {shrunk} shrunk as far as safe" if can else "")
            + kept)
    # From the least layout, hand back the room that is left, in proportion
    # to what each partition gave up.
    room = hi - least
    gave = {p.number: wanted[p.number] - p.new_size for p in can}
    total = sum(gave.values()) or 1
    for p in can:
        p.new_size += _down(room * gave[p.number] // total)
    _pack(places, lo)


def plan_into(meta, number, slot_start, slot_size):
    """The placement of image partition *number* into a target slot."""
    places = image_placements(meta, {number})
    if not places:
        raise InputError(extended_said(meta["table"], number) or
                         f"the image has no partition {number}")
    p = places[0]
    if slot_size < p.old_size and slot_size < p.min_size:
        short = p.min_size - slot_size
        raise TargetError(
            f"target partition is too small by {format_size(short)} for "
            f"partition {number} ({p.fs or 'unknown filesystem'}, "
            f"{format_size(p.old_size)})")
    if slot_size < p.old_size and not fsresize.can_shrink(p.fs):
        raise TargetError(
            f"target partition is smaller than partition {number} and its "
            f"filesystem ({p.fs or 'unknown'}) cannot be shrunk")
    p.new_start, p.new_size = slot_start, slot_size
    return p


def kept_slots(kind, places, kept, where):
    """The table number each of *kept* (protected partitions of the
    target, kept) gets in the new table: its own, or a free one when an
    image partition has it or, on an MBR, when it was a logical partition
    (only the image's logicals are in the EBR chain written).  On an MBR
    the free numbers keep sector 0's records in disk order where they can
    (fdisk warns otherwise): those after the image's partitions take the
    last free slots.  TargetError (naming *where*) when no slot is left,
    on an MBR with logicals one for the extended partition included."""
    used = {p.number for p in places}
    mbr = kind == "mbr"
    numbers, needs = {}, []
    for i, part in enumerate(kept):
        if part.number in used or (mbr and part.number >= FIRST_LOGICAL):
            needs.append(i)
        else:
            numbers[i] = part.number
            used.add(part.number)
    free = [n for n in range(1, 129 if kind == "gpt" else 5)
            if n not in used]
    if len(free) < len(needs):
        raise TargetError(f"{where}: no free table slot for protected "
                          f"partition {kept[needs[len(free)]].number}")
    end = max((p.new_start + p.new_size for p in places), default=0)
    after = sorted((i for i in needs if mbr and kept[i].start >= end),
                   key=lambda i: kept[i].start)
    before = [i for i in needs if i not in after]
    numbers.update(zip(before, free))
    numbers.update(zip(after, free[len(free) - len(after):]))
    used |= set(numbers.values())
    if mbr and len([n for n in used if n < FIRST_LOGICAL]) > 3 and \
            any(p.number >= FIRST_LOGICAL for p in places):
        raise TargetError(f"{where}: no MBR slot is left for the extended "
                          f"partition beside the protected partitions kept")
    return [numbers[i] for i in range(len(kept))]
