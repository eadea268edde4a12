"""Turning library results into the lines and tables rdeploy prints
(what imgx shows the same way, info and verify, is in cliutil/render.py).

Much of it is text from an image's metadata (a description, labels, the
source's path and table, what a restore changed), which came from anywhere:
every line passes through :func:`cliutil.text.safe`, so control characters
are shown escaped; ``--json`` output keeps the exact text.
"""

from cliutil.render import lines_text as _text, table_text as _table
from cliutil.text import safe
from diskimage.sizes import format_size
from diskimage.words import counted


def _rate(nbytes, seconds):
    return f"{format_size(nbytes / seconds)}/s" if seconds > 0 else "-"


def capture_line(source, image, s):
    stored = s["image_bytes"]
    found = f", {s['sector_size_found']}" if s.get("sector_size_found") \
        else ""
    found += ", encrypted" if s.get("encrypted") else ""
    return (f"rdeploy: captured {source} -> {image}{found}: "
            f"{format_size(s['read_bytes'])} read, "
            f"{format_size(s['data_bytes'])} data, "
            f"{format_size(s['zero_bytes'])} holes, "
            f"{format_size(stored)} image in {s['seconds']:.1f} s "
            f"({_rate(s['read_bytes'], s['seconds'])})")


def restore_line(image, target, s):
    checked = ", read back and verified" if s.get("verified") else ""
    if s.get("resumed_at") is not None:     # restore --resume
        checked += f"; resumed at chunk {s['resumed_at']}"
    if s.get("delta"):                      # restore --delta
        checked += f"; {delta_text(s)}"
    restored = s.get("restored_bytes", s["written_bytes"])
    written = f" ({format_size(s['written_bytes'])} written)" \
        if s["written_bytes"] != restored else ""
    return (f"rdeploy: restored {image} -> {target}: "
            f"{format_size(restored)}{written} in {s['seconds']:.1f} s "
            f"({_rate(restored, s['seconds'])}){checked}")


def delta_text(s):
    """restore --delta's counts: "delta: read X, compared N chunks, wrote
    Y (P %)", P the share of what a full restore writes; and how many
    chunks were written without reading the target."""
    d = s["delta"]
    full = d.get("full", s["written_bytes"])
    share = 100 * d["written"] / full if full else 0
    unread = d.get("chunks_unread", 0)
    compared = d["chunks_written"] + d["chunks_same"] - unread
    unread = f"; {counted(unread, 'chunk')} written unread (the target " \
        f"differed almost everywhere there)" if unread else ""
    return (f"delta: read {format_size(d['read'])}, compared "
            f"{counted(compared, 'chunk')}, wrote "
            f"{format_size(d['written'])} ({share:.1f} % of a full "
            f"restore's)" + unread)


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
