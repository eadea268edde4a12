"""The used map of an LVM2 physical volume: the label and metadata areas
(everything before the first extent, each metadata and bootloader area),
and for each logical volume on it either its filesystem's own used map
(read through the LV's segments, translated to offsets in the PV) or its
extents whole, with a warning that names the LV and the reason.  Free
extents are not stored."""

from .. import registry
from ..usedmap import LazyRuns, MapError, UsedMap, merged
from .label import read_label, read_metadata
from .volumes import volume_group

SECTOR = 512


def lv_reader(read, places):
    """read(offset, length) of an LV whose [(lv offset, pv offset, bytes)]
    pieces are `places`, from read(offset, length) of the PV."""
    places = sorted(places)

    def lv_read(offset, length):
        out = []
        for lv_offset, pv_offset, size in places:
            if length <= 0:
                break
            if lv_offset <= offset < lv_offset + size:
                take = min(length, lv_offset + size - offset)
                data = read(pv_offset + offset - lv_offset, take)
                out.append(data)
                if len(data) < take:
                    break
                offset += take
                length -= take
        return b"".join(out)
    return lv_read


def _translated(runs, lv_offset, pv_offset, size):
    end = lv_offset + size
    for offset, length in runs:
        if offset + length <= lv_offset:
            continue
        if offset >= end:
            return
        start = max(offset, lv_offset)
        yield pv_offset + start - lv_offset, min(offset + length, end) - start


def _too_short(lv, kind, claimed):
    return MapError(f"LVM2: LV {lv.name}'s {kind} of {claimed} bytes is "
                    f"larger than the LV of {lv.size} (an lvreduce before "
                    f"the filesystem shrank?): the extents after it may "
                    f"hold its data")


def _larger(read, size, lv, kind):
    """MapError when the LV's filesystem, whose map did not fit the LV,
    maps once the LV is taken to run on through the PV's bytes after its
    last extent, and is then larger than the LV: an LV cut shorter than
    its filesystem (lvreduce), whose tail lies in extents LVM now calls
    free.  Nothing when it does not map either way."""
    last = max(lv.places, key=lambda place: place[0] + place[2])
    lv_end, pv_end = last[0] + last[2], last[1] + last[2]
    if lv_end != lv.size or pv_end >= size:
        return
    longer = list(lv.places) + [(lv_end, pv_end, size - pv_end)]
    try:
        inner = registry.used_map(lv_reader(read, longer), 0,
                                  lv.size + size - pv_end, kind)
    except MapError:
        return
    if inner is not None and inner.total_bytes > lv.size:
        raise _too_short(lv, kind, inner.total_bytes)


def _inner(read, size, lv):
    """(UsedMap of the LV's filesystem or None, kind, why not); MapError
    for the whole PV when the filesystem is larger than the LV."""
    lv_read = lv_reader(read, lv.places)
    kind = registry.detect(lv_read, 0, lv.size)
    if kind is None:
        return None, None, "no filesystem recognised"
    if kind == "LVM2_member":
        return None, kind, "a PV inside an LV"
    try:
        inner = registry.used_map(lv_read, 0, lv.size, kind)
    except MapError as exc:
        _larger(read, size, lv, kind)
        return None, kind, f"its {kind} allocation maps cannot be " \
                           f"trusted ({exc})"
    if inner is None:
        return None, kind, f"no used-block map for {kind}"
    if inner.total_bytes > lv.size:
        raise _too_short(lv, kind, inner.total_bytes)
    last = 0
    for offset, length in inner.runs:
        if offset < last or length <= 0:
            return None, kind, f"its {kind} map is not sorted"
        last = offset + length
    if last > lv.size:
        return None, kind, f"its {kind} map runs past the LV"
    return inner, kind, None


def _group(label, metas, size):
    groups = [volume_group(m.text, label.pv_uuid, size)
              for m in metas]
    group = max(groups, key=lambda g: g.seqno)
    for other, meta in zip(groups, metas):
        if other.seqno == group.seqno and meta.text != metas[
                groups.index(group)].text:
            raise MapError(f"LVM2: two metadata areas hold different "
                           f"metadata of the same seqno {group.seqno}")
    data_offset = label.data_areas[0][0]
    if data_offset != group.pe_start:
        raise MapError(f"LVM2: the label's data area starts at "
                       f"{data_offset}, the metadata's pe_start at "
                       f"{group.pe_start}")
    return group


def read_group(read, size):
    """(Label, VolumeGroup) of the PV read by read(offset, length), `size`
    bytes; MapError when the label or metadata cannot be trusted."""
    label = read_label(read, size)
    metas = [m for m in (read_metadata(read, area)
                         for area in label.metadata_areas) if m]
    if not metas:
        raise MapError("LVM2: no metadata area holds metadata")
    return label, _group(label, metas, size)


def open_volume(read, size):
    """The UsedMap of the PV read by read(offset, length), `size` bytes;
    MapError when the label or metadata cannot be trusted."""
    label, group = read_group(read, size)
    fixed = [(0, group.pe_start)]
    fixed += list(label.metadata_areas) + list(label.bootloader_areas)
    streams, warnings, volumes = [], [], []
    for lv in group.lvs:
        entry = {"vg": group.name, "name": lv.name, "uuid": lv.uuid,
                 "size": lv.size, "filesystem": None,
                 "extents": [[o, p, n] for o, p, n in lv.places]}
        on_pv = sum(n for _, _, n in lv.places)
        inner, why = None, lv.whole
        if why is None:
            inner, entry["filesystem"], why = _inner(read, size, lv)
        if inner is None:
            fixed += [(p, n) for _, p, n in lv.places]
            entry.update(stored="whole", reason=why, used_bytes=on_pv)
            if on_pv:
                warnings.append(f"LV {lv.name} ({why}): its {on_pv} bytes "
                                f"on this PV copied whole")
        else:
            entry.update(stored="used-blocks", used_bytes=inner.used_bytes,
                         label=inner.label, fs_uuid=inner.uuid,
                         block_size=inner.block_size)
            warnings.extend(f"LV {lv.name}: {w}; its used-block map was "
                            f"still used" for w in inner.warnings)
            streams += [(inner.runs, o, p, n) for o, p, n in lv.places]
        volumes.append(entry)
    fixed = sorted((o, n) for o, n in fixed if n > 0)

    def factory():
        return merged(iter(fixed), *(_translated(*s) for s in streams))

    runs = LazyRuns(factory)
    used = 0
    for offset, length in runs:
        if offset + length > size:
            raise MapError(f"LVM2: used bytes at {offset} run past the "
                           f"volume of {size}")
        used += length
    allocated = sum(lv_size for lv in group.lvs
                    for _, _, lv_size in lv.places)
    vg = {"name": group.name, "uuid": group.uuid, "seqno": group.seqno,
          "extent_size": group.extent_size, "pe_start": group.pe_start,
          "pe_count": group.pe_count, "pv_count": group.pv_count,
          "free_extents": group.pe_count - allocated // group.extent_size}
    return UsedMap("LVM2_member", SECTOR, size, used, runs, "",
                   label.pv_uuid, warnings, volumes=volumes,
                   volume_group=vg)
