"""What bwpart shows: the plan's lines, status, the store's table, what
remove would put back, a summary line.  Every value passes through
cliutil.text.safe (a name on the disk came from anywhere); --json output
keeps the exact text."""

import sys

from cliutil.render import lines_text, table_text
from cliutil.text import safe
from diskimage.sizes import format_size

#: status keys shown first, in this order, with their labels
STATUS_ORDER = (
    ("installed", "installed"), ("version", "environment"),
    ("slot", "slot"), ("partition", "partition"), ("size", "size"),
    ("free", "free"), ("store", "store"), ("job", "pending job"),
    ("armed", "armed"), ("last", "last result"),
)
SIZE_KEYS = {"size", "free", "start", "old_size", "new_size", "fs_size"}


def lines(items):
    return lines_text(items)


def _value(key, value):
    """One value of a status or summary dict as short text."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key in SIZE_KEYS and isinstance(value, int):
        return f"{format_size(value)} ({value} bytes)"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_value(k, v)}" for k, v in value.items()
                         if k != "text")
    if isinstance(value, (list, tuple)):
        if not value:
            return "none"
        return "; ".join(_value(key, v) for v in value)
    return str(value)


def status_text(disk, state):
    if not state.get("installed"):
        return f"{safe(disk)}: no service partition"
    rows = []
    shown = {"restore", "installed"}
    for key, label in STATUS_ORDER:
        if key in state and key != "installed":
            rows.append([f"{label}:", _value(key, state[key])])
            shown.add(key)
    for key, value in state.items():
        if key not in shown:
            rows.append([f"{key.replace('_', ' ')}:", _value(key, value)])
    out = [f"{safe(disk)}: service partition installed",
           table_text(["", ""], rows).split("\n", 1)[-1]]
    restore = state.get("restore")
    if restore:
        out.append("remove would restore:")
        out.extend(f"  {safe(line)}" for line in _restore_items(restore))
    return "\n".join(out)


def _restore_items(restore):
    if isinstance(restore, str):
        return [restore]
    if isinstance(restore, dict):
        return [f"{k}: {_value(k, v)}" for k, v in restore.items()]
    return [item if isinstance(item, str) else _value("", item)
            for item in restore]


def restore_lines(disk, state, grow):
    out = [f"remove {disk}: the service partition "
           f"{_value('partition', state.get('partition'))} goes, and back "
           f"as before install:"]
    out.extend(f"  {line}" for line in
               _restore_items(state.get("restore") or []))
    if grow:
        out.append(f"  then partition {grow} grows over the space")
    return out


def store_table(images):
    rows = []
    for image in images:
        if isinstance(image, str):
            image = {"name": image}
        rows.append([image.get("name", "?"),
                     format_size(image["size"]) if "size" in image else "-",
                     str(image.get("volumes", "-")),
                     str(image.get("created", "-"))])
    return table_text(["NAME", "SIZE", "VOLUMES", "CREATED"], rows)


def warnings(items):
    for text in items:
        print(f"bwpart: warning: {safe(text)}", file=sys.stderr)


def summary(what, disk, result):
    """One line on stderr on a terminal (silent in scripts)."""
    if not sys.stderr.isatty():
        return
    details = ""
    if isinstance(result, dict):
        details = ", ".join(f"{k} {_value(k, v)}" for k, v in result.items()
                            if not isinstance(v, (dict, list)))
    print(safe(f"bwpart: {disk}: {what}" + (f" ({details})" if details
                                            else "")), file=sys.stderr)
