"""The MBR logical partitions' part of a restore layout: where each one's
extended boot record (EBR) goes when they move, what cannot be moved, and
what a rewritten MBR table leaves out of the image's areas.

Each logical keeps its *lead*, the distance from its EBR to its start in
the image (the image's "ebr" area that ends at its start: one MiB on a disk
laid out since 2010, 63 sectors on older ones), so the gap before it still
holds its EBR.  :mod:`diskimage.tables.write` writes the chain from the
offsets given here; docs/filesystems/mbr-logical.md has the rules.
"""

from .errors import InputError, TargetError

FIRST_LOGICAL = 5


def leads(meta):
    """{start of an MBR logical partition: bytes from the EBR before it},
    from the image's "ebr" areas (each runs from an EBR to its logical)."""
    if meta["table"]["kind"] != "mbr":
        return {}
    return {a["start"] + a["size"]: a["size"] for a in meta["areas"]
            if a["kind"] == "ebr"}


def covered(area, places):
    """True when the image area lies in a partition's new place."""
    return any(p.new_start < area["start"] + area["size"] and
               area["start"] < p.new_start + p.new_size for p in places)


def check_chain(meta):
    """InputError when the image's MBR logical partitions cannot be laid
    down again whatever the layout: one whose EBR the image does not hold
    (it lay inside another partition, whose used blocks left it out), so
    a table written from the image would end its chain there and lose that
    partition and every one after it.  An EBR inside a partition the image
    holds is copied with its data (``ebr_inside``): restored in place, the
    chain is whole again; :func:`chain` refuses to move it."""
    if meta["table"]["kind"] != "mbr":
        return
    found = leads(meta)
    for area in meta["areas"]:
        if area["kind"] == "partition" and \
                area["partition"] >= FIRST_LOGICAL and \
                area["start"] not in found and \
                not area.get("ebr_inside"):     # held in that one's data
            number = area["partition"]
            raise InputError(
                f"the image's EBR chain cannot be written again: it "
                f"holds no EBR just before logical partition {number} "
                f"(the EBR lay inside another partition: their records "
                f"overlap, see the capture's warnings), so the restored "
                f"table would lose partition {number} and those after "
                f"it; restore its partitions into a table made for them "
                f"(--partitions, --into)")


def chain(places, kind):
    """When an MBR logical partition moves or resizes, the new EBR offset
    of each (``Placement.ebr``), or TargetError when the image's chain
    cannot be rewritten as it was: the chain order (the partition numbers)
    must be the disk order, the logicals next to each other with no
    primary between, none overlapping another, each with its EBR in the
    gap before it."""
    if kind != "mbr":
        return
    logical = [p for p in places if p.number >= FIRST_LOGICAL]
    if not any((p.new_start, p.new_size) != (p.old_start, p.old_size)
               for p in logical):
        return

    def refuse(why):
        raise TargetError(
            f"the MBR logical partitions would move or resize, but {why}; "
            f"their EBR chain is rewritten only when it can be kept as it "
            f"was (restore onto a disk of the same size without --grow, "
            f"--resize or --size to keep them where they were)")

    numbers = sorted(p.number for p in logical)
    if numbers != list(range(FIRST_LOGICAL, FIRST_LOGICAL + len(logical))):
        refuse(f"the image holds logical partitions {numbers} only "
               f"(captured with --partitions): a chain of them would "
               f"renumber them")
    for a, b in zip(places, places[1:]):
        if b.old_start < a.old_start + a.old_size:
            refuse(f"partitions {a.number} and {b.number} overlap in the "
                   f"image")
    if [p.number for p in logical] != sorted(p.number for p in logical):
        refuse("their chain order (" + ", ".join(
            str(p.number) for p in logical) + " on the disk) is not their "
            "disk order")
    first = places.index(logical[0])
    between = places[first:first + len(logical)]
    if between != logical:
        stray = next(p for p in between if p.number < FIRST_LOGICAL)
        refuse(f"primary partition {stray.number} lies between them")
    for p in logical:
        if p.lead <= 0:
            refuse(f"partition {p.number} has no EBR in the gap just "
                   f"before it in the image")
    for prev, p in zip(places, places[1:]):    # a bug of _pack, not input
        if p.new_start - p.lead < prev.new_start + prev.new_size:
            refuse(f"the EBR of partition {p.number} would overlap the "
                   f"partition before it")
    for p in logical:
        p.ebr = p.new_start - p.lead



def replaced_ebrs(meta, places):
    """Indexes of the image's "ebr" areas a rewritten table does not write:
    all of them when the chain is written anew (they would land at their
    old places, inside partitions that moved), and any that lies in a
    partition's new place (the EBR of an empty extended partition that a
    primary grew over).  TargetError when that would lose the rest of an
    extended partition past an EBR capture could not read (an "ebr" area
    longer than a sector that ends at no partition's start)."""
    chain = any(p.ebr is not None for p in places)
    starts = {p.old_start for p in places}
    for a in meta["areas"]:
        if a["kind"] == "ebr" and (chain or covered(a, places)) and \
                a["size"] > meta["table"]["sector_size"] and \
                a["start"] + a["size"] not in starts:
            raise TargetError(
                f"the MBR logical partitions would move or resize, but the "
                f"image holds the rest of their extended partition past an "
                f"EBR it could not read (bytes {a['start']} to "
                f"{a['start'] + a['size']}, copied whole) that a new chain "
                f"would lose; restore onto a disk of the same size without "
                f"--grow, --resize or --size")
    return {i for i, a in enumerate(meta["areas"]) if a["kind"] == "ebr"
            and (chain or covered(a, places))}


def mbr_notes(meta, places):
    """What the plan says of an MBR table rewritten for *places*."""
    notes = []
    dropped = [a for a in meta["areas"] if a["kind"] == "ebr" and
               covered(a, places)]
    if dropped and all(p.number < FIRST_LOGICAL for p in places):
        notes.append(f"the empty extended partition (EBR at byte "
                     f"{dropped[0]['start']}) is dropped: the new layout "
                     f"covers it")
    logical = [p for p in places if p.ebr is not None]
    if logical:
        end = logical[-1].new_start + logical[-1].new_size
        notes.append(f"EBR chain rewritten: extended partition at bytes "
                     f"{logical[0].ebr}-{end}, EBRs at " +
                     ", ".join(str(p.ebr) for p in logical))
    return notes
