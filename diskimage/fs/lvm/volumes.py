"""The volume group a PV's text metadata describes, and where each logical
volume's extents lie in this PV, in bytes.  Everything is checked against
itself and the PV before it is used: this PV found by its UUID, extents
inside the PV, segments that do not overlap and cover each LV from its
first extent on, counts that agree (segment_count, stripe_count)."""

from dataclasses import dataclass, field

from ..usedmap import MapError
from .metadata import parse

SECTOR = 512
#: The one segment type whose data lies plainly in the PV's extents: a
#: "striped" segment with one stripe (lvs calls it "linear").
LINEAR = "striped"


@dataclass
class Segment:
    start_extent: int           # first logical extent of the LV
    extent_count: int
    type: str
    stripes: list               # [(pv name, first physical extent)]
    stripe_count: int
    #: the names its other string fields give (other LVs it is made of)
    refs: frozenset = frozenset()
    #: a mirror's areas [(pv or LV name, first extent)], each of
    #: extent_count extents (pvmove writes PVs there, lvconvert LVs)
    mirrors: list = field(default_factory=list)

    @property
    def plain(self):
        return self.type == LINEAR and self.stripe_count == 1


@dataclass
class LogicalVolume:
    name: str
    uuid: str
    status: list
    segments: list
    #: [(lv byte offset, pv byte offset, bytes)] of the pieces on this PV
    places: list = field(default_factory=list)
    #: why its data cannot be read plainly from this PV (None: it can)
    whole: str = None
    size: int = 0

    @property
    def visible(self):
        return "VISIBLE" in self.status


@dataclass
class VolumeGroup:
    name: str
    uuid: str
    seqno: int
    extent_size: int            # bytes
    pv_name: str                # this PV's name in the metadata ("pv0")
    pe_start: int               # bytes
    pe_count: int
    pv_count: int
    lvs: list


def _get(section, key, kind, where):
    value = section.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise MapError(f"LVM2 metadata: {where}: {key} missing or not "
                       f"{'a number' if kind is int else 'text'}")
    if kind is int and value < 0:
        raise MapError(f"LVM2 metadata: {where}: {key} = {value}")
    return value


def _sections(section, where=None):
    """The subsections of `section`; with `where`, the section
    `section[where]` (MapError when it is there and no section)."""
    if where is not None:
        value = section.get(where, {})
        if not isinstance(value, dict):
            raise MapError(f"LVM2 metadata: {where} is not a section")
        section = value
    return {k: v for k, v in section.items() if isinstance(v, dict)}


def _vg_section(tree):
    if tree.get("contents") != "Text Format Volume Group" or \
            tree.get("version") != 1:
        raise MapError("LVM2 metadata: not Text Format Volume Group "
                       "version 1")
    groups = _sections(tree)
    if len(groups) != 1:
        raise MapError(f"LVM2 metadata: {len(groups)} volume groups in one "
                       f"metadata text")
    return next(iter(groups.items()))


def _pairs(value):
    """[(name, extent)] of an area list ["name", 12, ...], else []."""
    if not isinstance(value, list) or len(value) % 2:
        return []
    pairs = list(zip(value[::2], value[1::2]))
    if all(isinstance(n, str) and isinstance(e, int) and
           not isinstance(e, bool) and e >= 0 for n, e in pairs):
        return pairs
    return []


def _segments(name, section):
    count = _get(section, "segment_count", int, f"LV {name}")
    segments = []
    for number in range(1, count + 1):
        where = f"LV {name} segment{number}"
        seg = section.get(f"segment{number}")
        if not isinstance(seg, dict):
            raise MapError(f"LVM2 metadata: {where} missing "
                           f"(segment_count = {count})")
        kind = _get(seg, "type", str, where)
        stripes, stripe_count = [], 0
        if "stripes" in seg:
            raw = seg["stripes"]
            stripe_count = _get(seg, "stripe_count", int, where)
            if not isinstance(raw, list) or len(raw) != 2 * stripe_count \
                    or stripe_count == 0:
                raise MapError(f"LVM2 metadata: {where}: stripes do not "
                               f"match stripe_count = {stripe_count}")
            for pv, pe in zip(raw[::2], raw[1::2]):
                if not isinstance(pv, str) or not isinstance(pe, int) or \
                        isinstance(pe, bool) or pe < 0:
                    raise MapError(f"LVM2 metadata: {where}: bad stripe "
                                   f"{pv!r}, {pe!r}")
                stripes.append((pv, pe))
        mirrors = _pairs(seg.get("mirrors"))
        refs = set()
        for key, value in seg.items():
            # an origin too: a cache's may be stale, and a snapshot's
            # holds blocks the snapshot still reads that the origin's
            # own filesystem has freed since
            if key not in ("type", "stripes"):
                refs.update(v for v in (value if isinstance(value, list)
                                        else [value]) if isinstance(v, str))
        segments.append(Segment(_get(seg, "start_extent", int, where),
                                _get(seg, "extent_count", int, where),
                                kind, stripes, stripe_count,
                                frozenset(refs), mirrors))
    extent = 0
    for number, seg in enumerate(segments, start=1):
        if seg.start_extent != extent or seg.extent_count == 0:
            raise MapError(f"LVM2 metadata: LV {name} segment{number} "
                           f"starts at extent {seg.start_extent}, not "
                           f"{extent}, or is empty")
        extent += seg.extent_count
    return segments


def volume_group(text, pv_uuid, pv_bytes):
    """The VolumeGroup of the metadata `text` as seen from the PV whose
    UUID is `pv_uuid` and whose data may reach `pv_bytes`; MapError when
    the metadata is inconsistent with itself or with the PV."""
    vg_name, vg = _vg_section(parse(text))
    where = f"VG {vg_name}"
    extent = _get(vg, "extent_size", int, where) * SECTOR
    if extent == 0:
        raise MapError(f"LVM2 metadata: {where}: extent_size 0")
    pvs = _sections(vg, "physical_volumes")
    mine = [n for n, pv in pvs.items() if pv.get("id") == pv_uuid]
    if len(mine) != 1:
        raise MapError(f"LVM2 metadata: {where} lists this PV {pv_uuid} "
                       f"{len(mine)} times")
    pv = pvs[mine[0]]
    pe_start = _get(pv, "pe_start", int, f"{where} {mine[0]}") * SECTOR
    pe_count = _get(pv, "pe_count", int, f"{where} {mine[0]}")
    if pe_start + pe_count * extent > pv_bytes:
        raise MapError(f"LVM2 metadata: {where}: {pe_count} extents of "
                       f"{extent} bytes from {pe_start} run past the PV "
                       f"of {pv_bytes} bytes")
    lvs = []
    for name, section in _sections(vg, "logical_volumes").items():
        status = section.get("status", [])
        lvs.append(LogicalVolume(
            name, _get(section, "id", str, f"LV {name}"),
            status if isinstance(status, list) else [],
            _segments(name, section)))
    group = VolumeGroup(vg_name, _get(vg, "id", str, where),
                        _get(vg, "seqno", int, where), extent, mine[0],
                        pe_start, pe_count, len(pvs), lvs)
    _place(group, set(pvs))
    return group


def _place(group, pv_names):
    used = []                   # (first pe, count, lv name)
    for lv in group.lvs:
        offset = 0
        for seg in lv.segments:
            part = seg.extent_count // max(seg.stripe_count, 1)
            if seg.stripes and seg.extent_count % seg.stripe_count:
                raise MapError(f"LVM2 metadata: LV {lv.name}: "
                               f"{seg.extent_count} extents in "
                               f"{seg.stripe_count} stripes")
            mirrored = [(pv, pe) for pv, pe in seg.mirrors
                         if pv in pv_names]
            stray = seg.refs & pv_names - {pv for pv, _ in mirrored}
            if stray:
                raise MapError(f"LVM2 metadata: LV {lv.name}: a "
                               f"{seg.type} segment names PV "
                               f"{sorted(stray)[0]!r} outside its stripes "
                               f"and mirrors")
            areas = [(pv, pe, part) for pv, pe in seg.stripes]
            areas += [(pv, pe, seg.extent_count) for pv, pe in mirrored]
            for pv, pe, part in areas:
                if pv not in pv_names:
                    raise MapError(f"LVM2 metadata: LV {lv.name} names an "
                                   f"unknown PV {pv!r}")
                if pv != group.pv_name:
                    continue
                if pe + part > group.pe_count:
                    raise MapError(f"LVM2 metadata: LV {lv.name}: extents "
                                   f"{pe}-{pe + part - 1} outside the "
                                   f"PV's {group.pe_count}")
                used.append((pe, part, lv.name))
                lv.places.append((offset if seg.plain else None,
                                  group.pe_start + pe * group.extent_size,
                                  part * group.extent_size))
            offset += seg.extent_count * group.extent_size
        lv.size = offset
    used.sort()
    for (pe, count, name), (next_pe, _, other) in zip(used, used[1:]):
        if pe + count > next_pe:
            raise MapError(f"LVM2 metadata: extents of LV {name} and LV "
                           f"{other} overlap at extent {next_pe}")
    _judge(group)


def _judge(group):
    """Say of each LV why it is copied whole, when it is."""
    named = {}
    names = {lv.name for lv in group.lvs}      # one pass: many LVs stay fast
    for lv in group.lvs:
        for seg in lv.segments:
            if seg.type != LINEAR:
                for other in sorted((seg.refs & names) - {lv.name}):
                    named.setdefault(other, (lv.name, seg.type))
    for lv in group.lvs:
        kinds = sorted({s.type if s.plain or s.type != LINEAR else
                        f"striped x{s.stripe_count}" for s in lv.segments})
        if group.pv_count > 1:
            lv.whole = (f"volume group {group.name} spans {group.pv_count} "
                        f"PVs")
        elif lv.name in named:
            owner, kind = named[lv.name]
            lv.whole = f"part of {kind} LV {owner}"
        elif any(not s.plain for s in lv.segments):
            lv.whole = f"a {', '.join(kinds)} LV"
        elif not lv.visible:
            lv.whole = "a hidden LV (" + ", ".join(lv.status) + ")"

