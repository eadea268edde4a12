"""What bwpart shows: the plan's lines, status, the store's table, what
remove would put back, a summary line.  Every value passes through
cliutil.text.safe (a name on the disk came from anywhere); --json output
keeps the exact text.  The dicts are the library's:
diskimage.service.status (status), store.ls, install, update, remove,
bootnext (summaries)."""

import sys

from cliutil.render import lines_text, table_text
from cliutil.text import safe
from diskimage.sizes import format_size

#: an area's state in status["remove"] -> what remove does with it
AREA_ACTIONS = {
    "installed": "put back as before install",
    "before": "already as before install",
    "changed": "CHANGED since install: remove refuses",
}


def lines(items):
    return lines_text(items)


def _size(n):
    return "-" if n is None else format_size(n)


def _partition(p):
    return (f"partition {p['number']} ({p['table'].upper()}, id "
            f"{p['part_id']}), {_size(p['size'])} at byte {p['start']}")


def _store(images):
    if not images:
        return "empty"
    return "; ".join(f"{i['name']} ({_size(i['size'])}, {i['volumes']} "
                     f"volume{'s' if i['volumes'] != 1 else ''})"
                     for i in images)


def _job(job):
    if not job:
        return "none"
    return (f"{job['name']} (sha256 {job['sha256'][:12]}...), "
            f"{job['used']} of {job['tries']} tries used, {job['left']} "
            f"left")


def _armed(armed):
    if not armed:
        return "no"
    fw = armed.get("firmware")
    if fw == "uefi":
        entry = (armed.get("uefi") or {}).get("entry")
        return f"uefi: {entry} is BootNext and first in BootOrder"
    method = (armed.get("bios") or {}).get("method")
    how = {"active-flag": "the active flag",
           "legacy-attr": "the legacy BIOS bootable attribute"}.get(
        method, method or "its flags")
    return f"bios: {how} is on the service partition"


def _last(last):
    if not last:
        return "-"
    return (f"{last.get('result')}, exit {last.get('exit')}, try "
            f"{last.get('try')}, at {last.get('at')}")


def remove_items(view, grow=None):
    """What remove does with each area, NVRAM variable and shrink, from
    status["remove"]."""
    out = []
    for area in view.get("areas", []):
        out.append(f"{area['what']} (bytes {area['offset']} to "
                   f"{area['offset'] + area['size']}): "
                   f"{AREA_ACTIONS.get(area['state'], area['state'])}")
    for var in view.get("nvram", []):
        out.append(f"NVRAM {var['name']}-{var['guid']}: {var['action']}")
    shrunk = view.get("shrunk")
    if shrunk:
        out.append(f"partition {shrunk['number']} ({shrunk['fs']}) "
                   f"grows back from {_size(shrunk['new_size'])} to "
                   f"{_size(shrunk['old_size'])}")
    if grow:
        out.append(f"partition {grow} grows over the freed space")
    if not view.get("can_remove", True):
        out.append("remove would refuse: an area was changed since install")
    return out


def status_text(disk, st):
    if not st.get("installed"):
        return f"{safe(disk)}: no service partition"
    env = st.get("env") or {}
    rows = [
        ["partition:", _partition(st["partition"])],
        ["installed:", f"{st.get('installed_at') or '-'} by bwpart "
                       f"{st.get('tool') or '?'}"],
        ["environment:", f"{env.get('version') or '?'} (slot "
                         f"{env.get('slot') or '?'})" if env else "-"],
        ["bundle:", safe(f"{env.get('id') or '?'}, built "
                         f"{env.get('built') or '?'}") if env else "-"],
        ["free:", _size(st.get("free"))],
        ["store:", _store(st.get("store"))],
        ["job:", _job(st.get("job"))],
        ["armed:", _armed(st.get("armed"))],
        ["last result:", _last(st.get("last"))],
    ]
    out = [f"{safe(disk)}: service partition installed",
           table_text(["", ""], rows).split("\n", 1)[1]]
    if st.get("remove"):
        out.append("remove would restore:")
        out += [f"  {safe(line)}" for line in remove_items(st["remove"])]
    out += [f"note: {safe(note)}" for note in st.get("notes", [])]
    return "\n".join(out)


def remove_lines(disk, st, grow):
    out = [f"remove: the service partition of {disk} goes: "
           f"{_partition(st['partition'])}"]
    if st.get("armed"):
        out.append(f"  disarmed first ({_armed(st['armed'])})")
    return out + [f"  {line}" for line in
                  remove_items(st.get("remove") or {}, grow)]


def store_table(images):
    rows = [[i["name"], _size(i["size"]), str(i["volumes"])]
            for i in images]
    return table_text(["NAME", "SIZE", "VOLUMES"], rows)


def warnings(items):
    for text in items:
        print(f"bwpart: warning: {safe(text)}", file=sys.stderr)


def summary(line):
    """One line on stderr, on a terminal only (silent in scripts)."""
    if sys.stderr.isatty():
        print(f"bwpart: {safe(line)}", file=sys.stderr)
