"""The edits of the site file that `pxeconf menu|job|host` make.

Each edit holds an exclusive flock on the site file for its whole course
(another holder: BusyError at once, never a wait), reads the file, changes
only the lines it must (a value rewritten in place keeps its line's
comment; a new section goes after the last one of its kind), validates the
whole result as load() would, and puts it in place atomically
(FILE.partial, fsync, rename: diskimage.host.partial).  Every other line
stays byte for byte.  An edit that would leave a broken file changes
nothing and says why (with the line of the file that is at fault).

The lock is taken on the file's inode, as an image's is (both through
diskimage.host.partial.lock_named); an edit ends by renaming a new file
over it, so a process that opened the old inode and then got its lock sees
the name hold another inode and tries again on the new one.
"""

import contextlib
import dataclasses
import fcntl
import os
import stat
from datetime import datetime, timedelta, timezone

from ..errors import BusyError
from ..host.partial import lock_named, partial_file
from . import macaddr
from .site import Entry, Host, Job, load_text
from .sitefile import (KINDS, NAME, SiteError, decode, format_value, missing,
                       parse, read)

_BOM = "\ufeff"
_PLURAL = {"entry": "entries", "job": "jobs", "host": "hosts"}


@contextlib.contextmanager
def locked(path):
    """Hold the site file at `path` locked exclusively; yields its fd."""
    path = os.fspath(path)
    try:
        fd = lock_named(path, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except FileNotFoundError:
        raise missing(path) from None
    except BlockingIOError:
        raise BusyError(f"{path}: another pxeconf is editing this site "
                        f"file; nothing changed (try again when it is "
                        f"done)") from None
    try:
        yield fd
    finally:
        os.close(fd)


class _Lines:
    """The parsed lines and the changes of one edit, applied at the end
    so that every index stays the original's."""

    def __init__(self, path, text):
        self.path = path
        self.lines, self.sections = parse(path, text, KINDS)
        first = self.lines[0].text if self.lines else ""
        self.newline = "\r\n" if first.endswith("\r\n") else "\n"
        self.dropped, self.changed, self.after = set(), {}, {}

    def find(self, kind, name=None):
        for section in self.sections:
            if section.kind == kind and section.name == name:
                return section
        return None

    def names(self, kind):
        return ", ".join(s.name for s in self.sections if s.kind == kind) \
            or "none"

    def _kind(self, index):
        return self.lines[index].kind if 0 <= index < len(self.lines) \
            else None

    def _end(self, section):
        """Index of the section's last line of its own: its last key, and
        the comments right after it unless they lead into the next
        header (they are its comment then)."""
        last = max([section.index] + [l.number - 1
                                      for l in section.keys.values()])
        j = last + 1
        while self._kind(j) == "comment":
            j += 1
        return last if self._kind(j) == "section" else j - 1

    def _lead(self, section):
        i = section.index
        while self._kind(i - 1) == "comment":
            i -= 1
        return i

    def key_line(self, key, value):
        return f"{key} = {self.value(key, value)}{self.newline}"

    def value(self, key, value):
        try:
            return format_value(value)
        except ValueError as exc:
            raise SiteError(self.path, None, key, str(exc)) from None

    def set_keys(self, section, pairs):
        """Set (value) or remove (None) the keys of `section`; a new key
        goes after its last key line."""
        last = max([section.index] + [l.number - 1
                                      for l in section.keys.values()])
        for key, value in pairs:
            line = section.keys.get(key)
            if line is None:
                if value is not None:
                    self.after.setdefault(last, []).append(
                        self.key_line(key, value))
            elif value is None:
                self.dropped.add(line.number - 1)
            elif value != line.value:
                body, (a, b) = line.body, line.span
                prefix, suffix = body[:a], body[b:]
                if prefix.endswith("="):
                    prefix += " "
                new = self.value(key, value)
                if suffix and not suffix[0].isspace():
                    suffix = " " + suffix
                elif suffix.strip():    # keep the comment's column
                    pad = len(suffix) - len(suffix.lstrip())
                    pad = max(1, pad + (b - a) - len(new))
                    suffix = " " * pad + suffix.lstrip()
                self.changed[line.number - 1] = \
                    prefix + new + suffix + line.ending

    def remove(self, section):
        start, end = self._lead(section), self._end(section)
        if start == 0 or self._kind(start - 1) == "blank":
            while self._kind(end + 1) == "blank":
                end += 1
        if end == len(self.lines) - 1:      # the last: no blank lines left
            while self._kind(start - 1) == "blank":
                start -= 1
        self.dropped.update(range(start, end + 1))

    def add(self, header, pairs, kind=None, top=False):
        """A new section: after the last of its `kind`, at the top
        (before the first section) or at the end."""
        same = [s for s in self.sections if s.kind == kind]
        if same:
            at = self._end(same[-1])
        elif top and self.sections:
            at = self._lead(self.sections[0]) - 1
        else:
            at = len(self.lines) - 1
        nl = self.newline
        block = [f"[{header}]{nl}"] + [self.key_line(k, v)
                                       for k, v in pairs if v is not None]
        if at >= 0 and self._kind(at) != "blank":
            block.insert(0, nl)
        if self._kind(at + 1) not in (None, "blank"):
            block.append(nl)
        if at >= 0 and not self.lines[at].text.endswith("\n"):
            self.changed[at] = self.changed.get(at, self.lines[at].text) + nl
        self.after.setdefault(at, []).extend(block)

    def render(self):
        """[(old line number or None, text)] of the edited file."""
        rows = [(None, text) for text in self.after.get(-1, [])]
        for index, line in enumerate(self.lines):
            if index not in self.dropped:
                rows.append((line.number, self.changed.get(index, line.text)))
            rows.extend((None, text) for text in self.after.get(index, []))
        return rows


def _edit(path, change):
    """Run change(lines) on the site file under its lock; validate and
    write the result.  Returns the warnings (a stale FILE.partial
    replaced)."""
    path = os.fspath(path)
    with locked(path) as fd:
        data = read(path, fd)
        raw = decode(path, data)
        bom = _BOM if data.startswith(_BOM.encode()) else ""
        lines = _Lines(path, raw)
        change(lines)
        rows = lines.render()
        text = "".join(text for _, text in rows)
        if text == raw:
            return []
        try:
            load_text(path, text)
        except SiteError as exc:
            old = rows[exc.line - 1][0] if exc.line else None
            raise SiteError(path, old, exc.field,
                            f"{exc.problem}; nothing changed") from None
        warnings = []
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        with partial_file(path, replace=True, warnings=warnings,
                          mode=mode) as f:
            f.write((bom + text).encode("utf-8"))
        return warnings


def _check_name(path, kind, name):
    if not NAME.match(str(name)):
        raise SiteError(path, None, f"{kind} {name}", "not a name (letters, "
                        "digits, '.', '_', '-', at most 64, starting with a "
                        "letter or digit)")


def _boot_pairs(thing):
    return [("label", thing.label or None), ("kernel", thing.kernel),
            ("initrd", thing.initrd), ("bundle", thing.bundle)]


def _add(path, kind, name, pairs, replace, what):
    _check_name(path, kind, name)

    def change(lines):
        section = lines.find(kind, name)
        if section is None:
            lines.add(f"{kind} {name}", pairs, kind)
        elif not replace:
            raise SiteError(path, section.line, f"{kind} {name}",
                            f"exists; remove it first (pxeconf {kind} rm "
                            f"{name})")
        else:
            lines.set_keys(section, pairs)
    return _edit(path, change)


# kind removed -> (section kind, key, what it is there, how to change it)
_USES = {
    "menu": [
        (("site", "server"), "default", "the default entry",
         "make another the default first (pxeconf menu default NAME)"),
        (("site", "server", "host"), "fallback", "the fallback entry",
         "set another fallback there first"),
        (("site", "server"), "entries", "in the menu's entries",
         "take it out of them first"),
        (("host",), "menu", "the menu entry of a machine",
         "give the machine another first (pxeconf host add MAC --menu=NAME)")],
    "job": [
        (("menu",), "job", "run by a menu entry",
         "remove that entry first (pxeconf menu rm NAME)"),
        (("host",), "job", "the job of a machine",
         "give the machine another first (pxeconf host add MAC --job=NAME "
         "or --menu=NAME)")],
}


def _used(path, lines, kind, name):
    """SiteError when another section names the `kind` section `name`."""
    for kinds, key, what, how in _USES.get(kind, ()):
        for section in lines.sections:
            line = section.keys.get(key)
            if section.kind not in kinds or line is None:
                continue
            if name in line.value.replace(",", " ").split():
                raise SiteError(path, line.number, f"{kind} {name}",
                                f"{name!r} is {what} ([{section.title}] "
                                f"{key}, line {line.number}): {how}")


def _remove(path, kind, name, what):
    def change(lines):
        section = lines.find(kind, name)
        if section is None:
            raise SiteError(path, None, f"{kind} {name}", f"no such {what} "
                            f"({_PLURAL[what]}: {lines.names(kind)})")
        _used(path, lines, kind, name)
        lines.remove(section)
    return _edit(path, change)


def add_entry(path, entry, replace=False):
    """Add the menu Entry (or, `replace`, rewrite the one of its name)."""
    pairs = _boot_pairs(entry) + [("local", "yes" if entry.local else None),
                                  ("job", entry.job),
                                  ("cmdline", entry.cmdline or None)]
    return _add(path, "menu", entry.name, pairs, replace, "entry")


def remove_entry(path, name):
    return _remove(path, "menu", name, "entry")


def add_job(path, job, replace=False):
    pairs = _boot_pairs(job) + [
        ("script", job.script), ("cmdline", job.cmdline or None),
        ("retries", None if job.retries is None else str(job.retries))]
    return _add(path, "job", job.name, pairs, replace, "job")


def remove_job(path, name):
    return _remove(path, "job", name, "job")


def set_default(path, name, timeout=None):
    """[site] default = NAME (an existing entry), and its timeout."""
    def change(lines):
        if lines.find("menu", name) is None:
            raise SiteError(path, None, f"menu {name}", f"no such entry "
                            f"(entries: {lines.names('menu')})")
        pairs = [("default", name)]
        if timeout is not None:
            pairs.append(("timeout", str(timeout)))
        section = lines.find("site")
        if section is None:
            lines.add("site", pairs, "site", top=True)
        else:
            lines.set_keys(section, pairs)
    return _edit(path, change)


def _now():
    return datetime.now(timezone.utc).replace(microsecond=0)


def _stamp(when):
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def add_host(path, host, keep=False, rejob=False):
    """Add the Host, replacing one of the same MAC (in any spelling).
    With a job, assigned = now (later than the one it replaces: a new
    lease) unless host.assigned is given.  `keep`: what `host` leaves
    unset is kept from the machine's section (its name, fallback, and its
    job or menu when neither is given).  `rejob`: host.job is the job the
    machine has (SiteError when it has none), given host.once and a new
    lease."""
    mac = macaddr.normalise(host.mac)

    def change(lines):
        nonlocal host
        section = lines.find("host", mac)
        old = {k: l.value for k, l in section.keys.items()} if section \
            else {}
        if rejob:
            if not old.get("job"):
                raise SiteError(path, section.line if section else None,
                                f"host {mac}", "has no job: --once and "
                                "--always are for a job (give --job=NAME)")
            host = dataclasses.replace(host, job=old["job"])
        pairs = [("name", host.name or (old.get("name") if keep else None)),
                 ("fallback", host.fallback or
                  (old.get("fallback") if keep else None))]
        if host.job or host.menu or not keep:
            assigned = host.assigned
            if host.job and assigned is None:
                when = _now()
                try:
                    before = datetime.strptime(old.get("assigned", ""),
                                               "%Y-%m-%dT%H:%M:%SZ")
                    before = before.replace(tzinfo=timezone.utc)
                    when = max(when, before + timedelta(seconds=1))
                except ValueError:
                    pass
                except OverflowError:       # 9999-12-31T23:59:59Z
                    line = section.keys["assigned"].number
                    raise SiteError(path, line, f"host {mac}: assigned",
                                    f"{old['assigned']}: no later time "
                                    f"can follow it (a new lease needs "
                                    f"one); fix it by hand") from None
                assigned = _stamp(when)
            pairs += [("job", host.job),
                      ("once", ("yes" if host.once else "no")
                       if host.job else None),
                      ("assigned", assigned if host.job else None),
                      ("menu", host.menu)]
        order = ("name", "job", "once", "assigned", "menu", "fallback")
        pairs.sort(key=lambda pair: order.index(pair[0]))
        if section is None:
            lines.add(f"host {mac}", pairs, "host")
        else:
            lines.set_keys(section, pairs)
    return _edit(path, change)


def remove_host(path, mac):
    return _remove(path, "host", macaddr.normalise(mac), "host")


__all__ = ["locked", "add_entry", "remove_entry", "set_default", "add_job",
           "remove_job", "add_host", "remove_host", "Entry", "Job", "Host"]
