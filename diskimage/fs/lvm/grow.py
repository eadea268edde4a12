"""Growing an LVM2 PV after restore onto a larger partition (``--grow``),
with lvm2's own tools (tools.py: no device-mapper, a private
configuration):

1. ``pvresize`` makes the PV fill its partition (new extents, free);
2. when the LV holding the PV's last allocated extent is a plain linear
   LV of one segment whose filesystem grows, ``lvextend`` gives it every
   extent after its segment (named as a PE range, so it stays one
   contiguous segment), and its filesystem is grown through a loop device
   over the LV's bytes (registry grow: resize2fs, xfs_growfs ...).

Otherwise the PV alone grows and the new extents stay free.  A volume
group spanning several PVs is left as it is (lvm2 would need them all).
"""

from ...host.loop import loop_device
from .. import registry
from .. import resize as fsresize
from ..tooling import ResizeError
from .tools import lvm_on


def _last_lv(group):
    """(LV, its last PE + 1) of the LV holding the last allocated extent."""
    last, found = 0, None
    for lv in group.lvs:
        for _, pv_offset, size in lv.places:
            end = (pv_offset + size - group.pe_start) // group.extent_size
            if end > last:
                last, found = end, lv
    return found, last


def grow(path, size, what):
    """Grow the PV at *path* (a partition's loop device, or a file) to
    `size` bytes, and its last LV and filesystem when they can: the size
    reached."""
    with lvm_on(path, what) as lvm:
        label, group = lvm.group()
        if group.pv_count > 1:
            return label.device_size
        lvm("pvresize", "-q", lvm.dev)
        _, grown = lvm.group()
        lv, end = _last_lv(grown)
        if lv is None or lv.whole or len(lv.places) != 1 or \
                end >= grown.pe_count:
            return size
        inner, kind, _ = lvm.inner(lv)
        record = registry.lookup(kind) if inner else None
        (_, _, lv_size), = lv.places
        new_lv_size = lv_size + (grown.pe_count - end) * grown.extent_size
        if record is None or not fsresize.can_grow(kind, new_lv_size):
            return size         # below a grow floor too (btrfs: 256 MiB)
        lvm("lvextend", "-q", "-l", f"+{grown.pe_count - end}",
            f"{grown.name}/{lv.name}", f"{lvm.dev}:{end}-{grown.pe_count - 1}")
        _, final = lvm.group()
        lv = next(v for v in final.lvs if v.name == lv.name)
        if len(lv.places) != 1:
            raise ResizeError(f"{what}: LV {lv.name} is no longer one "
                              f"segment after lvextend")
        (_, offset, lv_size), = lv.places
        with loop_device(lvm.dev, offset, lv_size, read_only=False) as dev:
            record.grow(dev, lv_size, f"{what} LV {lv.name} ({kind})")
    return size


def plan_note(area):
    """What `grow` will do with the PV the image metadata `area` (its
    `volume_group` and `logical_volumes`) describes, for the plan: the
    LV and filesystem grown, or why only the PV grows."""
    group = area.get("volume_group") or {}
    if group.get("pv_count", 1) > 1:
        return (f"left as it is: volume group {group.get('name')} spans "
                f"{group['pv_count']} PVs")
    last, found = 0, None
    for lv in area.get("logical_volumes") or []:
        for _, pv_offset, size in lv["extents"]:
            if pv_offset + size > last:
                last, found = pv_offset + size, lv
    only = "PV grown by pvresize (metadata only); the new extents stay free"
    if found is None:
        return only
    name, kind = found["name"], found.get("filesystem")
    if found["stored"] != "used-blocks":
        return f"{only}: its last LV {name} is {found['reason']}"
    if len(found["extents"]) != 1:
        return (f"{only}: its last LV {name} is {len(found['extents'])} "
                f"segments, so it and its {kind} keep their size (a "
                f"filesystem is grown through one loop device over one "
                f"segment)")
    record = registry.lookup(kind)
    if record is None or record.grow is None:
        return f"{only}: the {kind} of its last LV {name} cannot grow"
    if record.grow_floor:
        return (f"PV grown by pvresize (metadata only), then its last LV "
                f"{name} by lvextend and its {kind}, if the LV reaches "
                f"{record.grow_floor >> 20} MiB ({record.grow_floor_why}); "
                f"else the new extents stay free")
    return (f"PV grown by pvresize (metadata only), then its last LV "
            f"{name} by lvextend and its {kind}")
