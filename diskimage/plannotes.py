"""The notes of a restore plan that say what the table of placements
cannot: a partition the image holds whole and why, how a filesystem is
resized (a temporary mount, an LVM2 PV's last volume) or why it keeps its
size (a grow below its floor)."""

from .fs import registry
from .fs import resize as fsresize


def copied_whole(plan, areas):
    """A note for each restored area the image holds whole, and why (its
    capture's `fallback`: "encrypted (LUKS2)", "no filesystem recognised")."""
    for i in sorted(plan.areas):
        area = areas[i]
        if area.get("fallback") and area["kind"] in ("partition", "disk"):
            what = f"partition {area['partition']}" \
                if area["partition"] is not None else "whole disk"
            plan.notes.append(f"{what}: copied whole: {area['fallback']}")


def resize(plan, p):
    """The note on how *p*'s filesystem is resized (disk and --into), or
    why it keeps its size (a grow below its floor)."""
    floor = p.new_size > p.old_size and \
        fsresize.grow_floor_note(p.fs, p.new_size)
    if floor:
        plan.notes.append(f"partition {p.number} ({p.fs}): {floor}")
    record = registry.lookup(p.fs)
    note = record and p.fs_resized and (
        record.plan_note(plan.stream.metadata["areas"][p.area])
        if record.plan_note else record.resize_note)
    if note:
        plan.notes.append(f"partition {p.number} ({p.fs}): {note}")
