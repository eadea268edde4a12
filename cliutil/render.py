"""Rendering that more than one command shows the same way: an image's
info (rdeploy info, imgx info), a verify line (rdeploy verify, imgx verify),
and the aligned tables and safe lines they are built of.

Much of it is text from an image's metadata (a description, labels, the
source's path and table), which came from anywhere: every line passes
through :func:`cliutil.text.safe`, so control characters are shown escaped;
``--json`` output keeps the exact text.
"""

from diskimage.sizes import format_size
from diskimage.words import counted

from .text import safe


def root_text(version, digest):
    """An image's trailer digest as rdeploy names it: the root digest of a
    format 1.1 image; the weaker whole-image digest of a 1.0 one."""
    if version == "1.0":
        return f"digest (1.0: over CRC-32 chunk checks) sha256:{digest}"
    return f"root digest sha256:{digest}"


def _root_line(version, digest):
    if version == "1.0":
        return (f"digest:       sha256:{digest} (format 1.0: over CRC-32 "
                f"chunk checks; cannot be signed)")
    return f"root digest:  sha256:{digest}"


def verify_line(image, s):
    version = s.get("format_version", "1.1")
    return (f"{image}: OK: format {version}, "
            f"{counted(s['chunks'], 'chunk')}, "
            f"{format_size(s['data_bytes'])} data, "
            f"{format_size(s['zero_bytes'])} holes, "
            f"{root_text(version, s['digest'])}")


def table_text(headers, rows):
    rows = [[safe(x) for x in row] for row in [headers] + rows]
    widths = [max(len(x) for x in column) for column in zip(*rows)]
    lines = []
    for row in rows:
        lines.append("  ".join(x.ljust(w)
                               for x, w in zip(row, widths)).rstrip())
    return "\n".join(lines)


def lines_text(lines):
    """The lines joined, each made safe (a line that already is stays as it
    is), so that no value can add a line or act on the terminal."""
    return "\n".join(safe(line) for line in lines)


def info_text(info):
    src, table = info["source"], info["table"]
    ratio = f"{info['ratio']:.2f}" if info["ratio"] is not None else "-"
    comp = info["compression"] or {}
    lines = [
        f"image:        {info['image']} ({len(info['volumes'])} volume(s), "
        f"{format_size(info['image_bytes'])}, format {info['format_version']}"
        f"{', encrypted' if info.get('encrypted') else ''})",
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
        _root_line(info['format_version'], info['root']),
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
    lines.extend(table_text(["PART", "AREA", "START", "SIZE", "FS",
                             "LABEL", "FS USED", "CAPTURE", "DATA",
                             "STORED"], rows).split("\n"))  # cells made safe
    for area in info["areas"]:
        place = where(area)
        if area.get("uuid") and not area.get("block_size"):
            lines.append(f"{place}: "
                         f"{area['filesystem']} uuid {area['uuid']}"
                         + (f", label {area['label']}" if area.get("label")
                            else ""))
        elif area.get("uuid") or area.get("block_size"):
            lines.append(f"{place}: "
                         f"{area['filesystem']} uuid {area.get('uuid') or '-'}"
                         f", {area.get('block_size')}-byte blocks, "
                         f"{format_size(area.get('used_bytes', 0))} used of "
                         f"{format_size(area.get('total_bytes', 0))}")
        lines.extend(_volume_lines(area, place))
        if area.get("fallback"):
            whole = "" if area["partition"] is None else \
                f" whole {area['kind']}"
            lines.append(f"{place}:{whole} copied ({area['method']}): "
                         f"{area['fallback']}")
    return lines_text(lines)


def _volume_lines(area, place):
    """An LVM PV's volume group and its logical volumes: name, size,
    filesystem, used bytes and how each was captured."""
    group = area.get("volume_group")
    if not group:
        return []
    lines = [f"{place}: volume group {group['name']} uuid {group['uuid']}, "
             f"{group['pe_count']} extents of "
             f"{format_size(group['extent_size'])}, "
             f"{group['free_extents']} free"]
    for lv in area.get("logical_volumes", []):
        how = "used blocks" if lv.get("stored") == "used-blocks" else \
            f"copied whole: {lv.get('reason')}"
        lines.append(f"{place}:   LV {lv['name']} "
                     f"{format_size(lv['size'])} "
                     f"{lv.get('filesystem') or '-'}"
                     + (f" label {lv['label']}" if lv.get("label") else "")
                     + f", {format_size(lv.get('used_bytes', 0))} used "
                     f"({how})")
    return lines


def where(area):
    """How a line about an area names it: its partition, or the whole disk
    (a disk with no table, or a --raw capture)."""
    if area["partition"] is not None:
        return f"partition {area['partition']}"
    return "whole disk" if area["kind"] == "disk" else f"{area['kind']} area"


def sealed_text(info):
    """rdeploy info / imgx info of an encrypted image without its
    passphrase (diskimage.image.sealed.sealed_info)."""
    return lines_text([
        f"image:        {info['image']} ({len(info['volumes'])} volume(s), "
        f"{format_size(info['image_bytes'])}, format "
        f"{info['format_version']})",
        f"encrypted:    {info['cipher']}, key from {info['kdf']}",
        f"chunks:       {format_size(info['chunk_size'])} each",
        _root_line(info["format_version"], info["root"]),
        "the rest is sealed: give --passphrase-file or --passphrase-env"])
