"""Turning library results into the lines and tables rdeploy prints.

Much of it is text from an image's metadata (a description, labels, the
source's path and table, what a restore changed), which came from anywhere:
every line passes through :func:`cliutil.text.safe`, so control characters
are shown escaped; ``--json`` output keeps the exact text.
"""

from cliutil.text import safe
from diskimage.sizes import format_size


def _rate(nbytes, seconds):
    return f"{format_size(nbytes / seconds)}/s" if seconds > 0 else "-"


def capture_line(source, image, s):
    stored = s["image_bytes"]
    found = f", {s['sector_size_found']}" if s.get("sector_size_found") \
        else ""
    return (f"rdeploy: captured {source} -> {image}{found}: "
            f"{format_size(s['read_bytes'])} read, "
            f"{format_size(s['data_bytes'])} data, "
            f"{format_size(s['zero_bytes'])} holes, "
            f"{format_size(stored)} image in {s['seconds']:.1f} s "
            f"({_rate(s['read_bytes'], s['seconds'])})")


def restore_line(image, target, s):
    checked = ", read back and verified" if s.get("verified") else ""
    return (f"rdeploy: restored {image} -> {target}: "
            f"{format_size(s['written_bytes'])} in {s['seconds']:.1f} s "
            f"({_rate(s['written_bytes'], s['seconds'])}){checked}")


def verify_line(image, s):
    return (f"{image}: OK: {s['chunks']} chunks, "
            f"{format_size(s['data_bytes'])} data, "
            f"{format_size(s['zero_bytes'])} holes, "
            f"digest sha256:{s['digest']}")


def _table(headers, rows):
    rows = [[safe(x) for x in row] for row in [headers] + rows]
    widths = [max(len(x) for x in column) for column in zip(*rows)]
    lines = []
    for row in rows:
        lines.append("  ".join(x.ljust(w)
                               for x, w in zip(row, widths)).rstrip())
    return "\n".join(lines)


def _text(lines):
    """The lines joined, each made safe (a line that already is stays as it
    is), so that no value can add a line or act on the terminal."""
    return "\n".join(safe(line) for line in lines)


def info_text(info):
    src, table = info["source"], info["table"]
    ratio = f"{info['ratio']:.2f}" if info["ratio"] is not None else "-"
    comp = info["compression"] or {}
    lines = [
        f"image:        {info['image']} ({len(info['volumes'])} volume(s), "
        f"{format_size(info['image_bytes'])}, format {info['format_version']})",
        f"created:      {info['created']} by {info['tool']}",
        f"description:  {info['description'] or '-'}",
        f"source disk:  {src['path']}, {format_size(src['size'])}, "
        f"{src['logical_sector_size']}/{src['physical_sector_size']}-byte "
        f"sectors, table {table['kind']}"
        + (f" (id {table['disk_id']})" if table.get("disk_id") else ""),
        f"capture:      {info['mode']}, {comp.get('codec')} level "
        f"{comp.get('level')}, {format_size(info['chunk_size'])} chunks",
        f"sizes:        {format_size(info['data_bytes'])} data + "
        f"{format_size(info['zero_bytes'])} holes, stored in "
        f"{format_size(info['stored_bytes'])} (ratio {ratio})",
    ]
    for warning in table.get("warnings", []):
        lines.append(f"warning:      {warning}")
    rows = []
    for area in info["areas"]:
        used = area.get("used_bytes")
        rows.append([area["partition"] or "-", area["kind"],
                     area["start"], format_size(area["size"]),
                     area["filesystem"] or "-", area.get("label") or "-",
                     format_size(used) if used is not None else "-",
                     area["method"], format_size(area["data_bytes"]),
                     format_size(area["stored_bytes"])])
    lines.append("")
    lines.extend(_table(["PART", "AREA", "START", "SIZE", "FS", "LABEL",
                         "FS USED", "CAPTURE", "DATA", "STORED"],
                        rows).split("\n"))     # cells made safe
    for area in info["areas"]:
        where = _where(area)
        if area.get("uuid") and not area.get("block_size"):
            lines.append(f"{where}: "
                         f"{area['filesystem']} uuid {area['uuid']}"
                         + (f", label {area['label']}" if area.get("label")
                            else ""))
        elif area.get("uuid") or area.get("block_size"):
            lines.append(f"{where}: "
                         f"{area['filesystem']} uuid {area.get('uuid') or '-'}"
                         f", {area.get('block_size')}-byte blocks, "
                         f"{format_size(area.get('used_bytes', 0))} used of "
                         f"{format_size(area.get('total_bytes', 0))}")
        if area.get("fallback"):
            whole = "" if area["partition"] is None else \
                f" whole {area['kind']}"
            lines.append(f"{where}:{whole} copied ({area['method']}): "
                         f"{area['fallback']}")
    return _text(lines)


def _where(area):
    """How a line about an area names it: its partition, or the whole disk
    (a disk with no table, or a --raw capture)."""
    if area["partition"] is not None:
        return f"partition {area['partition']}"
    return "whole disk" if area["kind"] == "disk" else f"{area['kind']} area"


def disks_table(disks):
    rows = []
    for d in disks:
        mounted = [m for p in d["partitions"] for m in p["mounted_at"]]
        mounted += d["mounted_at"]
        rows.append([d["path"], format_size(d["size"]), d["model"] or "-",
                     f"{d['logical_sector_size']}/"
                     f"{d['physical_sector_size']}",
                     len(d["partitions"]), ",".join(mounted) or "-"])
    return _table(["DISK", "SIZE", "MODEL", "SECTORS", "PARTS", "MOUNTED"],
                  rows)


def plan_text(plan):
    """`rdeploy restore --dry-run`: the plan, one row per partition."""
    rows = [[p["number"], p["filesystem"] or "-",
             p["old_start"], format_size(p["old_size"]),
             p["new_start"], format_size(p["new_size"]), p["action"]]
            for p in plan["partitions"]]
    rows += [[k["number"], "-", k["start"], format_size(k["size"]),
              k["start"], format_size(k["size"]), f"kept: {k['reason']}"]
             for k in plan["kept"]]
    lines = [f"plan: restore onto {plan['target']} "
             f"({format_size(plan['target_size'])}, "
             f"{plan['sector_size']}-byte sectors); partition table: "
             f"{plan['table']}" + ("; new identities" if plan["new_ids"]
                                   else ""),
             ""]
    if rows:
        lines += _table(["PART", "FS", "OLD START", "OLD SIZE", "NEW START",
                         "NEW SIZE", "ACTION"], rows).split("\n")
    else:
        lines.append(f"whole disk: {format_size(plan['target_size'])}, "
                     f"written as the image holds it")
    lines += [f"note: {note}" for note in plan["notes"]]
    lines.append("dry run: nothing was written")
    return _text(lines)


def actions_lines(actions):
    """What a restore did beyond copying, and the identities it changed."""
    if not actions:
        return []
    lines = [f"rdeploy: {step}" for step in actions["steps"]]
    lines += [f"rdeploy: new {what}: {old or '-'} -> {new}"
              for what, (old, new) in actions["ids"].items()]
    return [safe(line) for line in lines]
