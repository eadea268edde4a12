"""Turning imgx's results into lines, tables and JSON."""

import json
import stat
from datetime import datetime, timezone

from cliutil.text import safe


def _time(seconds):
    if seconds is None:
        return "-"
    return datetime.fromtimestamp(seconds, timezone.utc).strftime(
        "%Y-%m-%d %H:%M")


def _iso(seconds):
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(
        timespec="seconds")


def json_text(value):
    """JSON of `value` as bytes for stdout: exact names; a byte that was
    not UTF-8 becomes the escape \\udcNN (Python's surrogateescape),
    which json.loads gives back."""
    return json.dumps(value, indent=2, ensure_ascii=False).encode(
        "utf-8", "backslashreplace") + b"\n"


def node_dict(node, path=None):
    return {"name": node.name, "path": path, "type": node.kind,
            "size": node.size, "mode": f"{stat.S_IMODE(node.mode):04o}",
            "uid": node.uid, "gid": node.gid, "mtime": _iso(node.mtime),
            "target": node.target}


def long_line(node, shown):
    """One `ls -l` line: mode, owner, size, time (UTC), name."""
    owner = "-" if node.uid is None else f"{node.uid}"
    group = "-" if node.gid is None else f"{node.gid}"
    link = f" -> {safe(node.target)}" if node.kind == "symlink" else ""
    return (f"{stat.filemode(node.mode)} {owner:>5} {group:>5} "
            f"{node.size:>12} {_time(node.mtime)} {safe(shown)}{link}")


def tree_lines(fs, node, prefix="", ancestors=frozenset(), at=""):
    """The lines of `imgx tree` below `node`, which is at path `at`
    ("/etc") in the filesystem (for messages)."""
    from diskimage.errors import CorruptImageError
    children = fs.children(node)
    ancestors = ancestors | {node.inode}
    for i, child in enumerate(children):
        last = i == len(children) - 1
        tail = "/" if child.is_dir else (f" -> {safe(child.target)}"
                                         if child.kind == "symlink" else "")
        yield f"{prefix}{'`-- ' if last else '|-- '}{safe(child.name)}{tail}"
        if child.is_dir:
            if fs.loop(child, ancestors):
                raise CorruptImageError(
                    f"{fs.where}{safe(at.rstrip('/'))}/{safe(child.name)}: "
                    f"damaged filesystem: a "
                    f"directory that is one of its own parents")
            yield from tree_lines(fs, child,
                                  prefix + ("    " if last else "|   "),
                                  ancestors, f"{at.rstrip('/')}/{child.name}")


def _count(number, kind):
    return f"{number} {kind}{'' if number == 1 else 's'}"


def get_warnings(report):
    """The lines `imgx get` says on stderr about what it did not write or
    could not keep (imgx.extract.Report)."""
    for where, name, why in report.refused:
        yield f"{where}: entry {name!r} not written: {why}"
    if report.skipped:
        kinds = ", ".join(_count(n, kind) for kind, n in
                          sorted(report.skipped.items()))
        yield (f"not copied: {kinds} (get copies files, directories and "
               f"symlinks)")
    for what, why in report.not_kept.items():
        yield f"not kept: {what} ({why})"
