"""The site file: the boot menu, the jobs, the machines and the per-server
overrides that a person edits (docs/pxeconf/site.md), read into a model
that every other part of network boot uses.

load(path) validates all of it: each value typed, unknown keys and
sections refused with their line, references to entries and jobs checked,
every file an entry or job names found inside the boot root (rootpath's
rules, and no absolute paths), MACs unique in any spelling.  Errors are
SiteError: "FILE:LINE: FIELD: problem".  The lines themselves are
sitefile.py's; the edits that keep them are siteedit.py's.
"""

import dataclasses
import difflib
import os
from dataclasses import dataclass

from . import rootpath
from .sitefile import HINTS, KEYS, KINDS, SiteError, decode, parse, read
from .sitetemplate import TEMPLATE

__all__ = ["SiteError", "Entry", "Job", "Host", "Settings", "Site", "load",
           "load_text", "new_site_text"]

@dataclass
class Entry:
    name: str
    label: str
    kernel: str = None
    initrd: str = None
    cmdline: str = ""
    bundle: str = None
    local: bool = False
    job: str = None
    line: int = 0

    @property
    def kernel_path(self):
        return f"{self.bundle}/vmlinuz" if self.bundle else self.kernel

    @property
    def initrd_path(self):
        return f"{self.bundle}/initrd.img" if self.bundle else self.initrd


@dataclass
class Job:
    name: str
    label: str
    script: str
    kernel: str = None
    initrd: str = None
    bundle: str = None
    cmdline: str = ""
    retries: int = None
    line: int = 0

    kernel_path = Entry.kernel_path
    initrd_path = Entry.initrd_path


@dataclass
class Host:
    mac: str
    name: str = ""
    job: str = None
    once: bool = True
    assigned: str = None
    menu: str = None
    fallback: str = None
    line: int = 0


@dataclass
class Settings:
    root: str
    timeout: int = 5
    default: str = None         # None: the menu's first entry
    retries: int = 2
    fallback: str = "local"     # None: the menu
    address: str = None
    http_port: int = 80
    entries: tuple = None       # None: every entry, in the file's order
    swarm_seed: tuple = ()      # torrents inside the root serve seeds
    swarm_port: int = 6881
    swarm_upload_rate: int = None   # Mbit/s; None: no cap
    swarm_tracker: int = None   # opentracker's port; None: none runs


@dataclass
class Site:
    path: str
    settings: Settings
    entries: dict
    jobs: dict
    hosts: dict
    servers: dict       # name -> {Settings field: value}

    def for_server(self, name):
        """This site with [server NAME]'s overrides applied."""
        if name not in self.servers:
            known = ", ".join(self.servers) or "none"
            raise SiteError(self.path, None, f"server {name}",
                            f"no [server {name}] in the site file (servers: "
                            f"{known})")
        settings = dataclasses.replace(self.settings, **self.servers[name])
        return dataclasses.replace(self, settings=settings)

    def menu(self):
        """The entries of the menu, in order (settings.entries, or all)."""
        names = self.settings.entries or tuple(self.entries)
        return [self.entries[name] for name in names]


def new_site_text():
    """The commented site file `pxeconf init` writes."""
    return TEMPLATE


def load(path):
    """The Site of the file at `path` (SiteError, exit 3, at its fault)."""
    return load_text(path, decode(path, read(path)))


def load_text(path, text):
    """The Site of `text`, as if read from `path` (the root is relative
    to its directory)."""
    path = os.fspath(path)
    _, sections = parse(path, text, KINDS)
    return _Builder(path, sections).site()


# A boot root may be none of these nor inside one (/lib* too) ...
_SYSTEM_TREES = ("/bin", "/boot", "/dev", "/etc", "/proc", "/root", "/run",
                 "/sbin", "/sys", "/usr")
# ... nor one of these itself (/var/lib/tftpboot, /srv/tftp, /tmp/x: fine).
_SYSTEM_DIRS = ("/", "/home", "/var", "/tmp")


def _system_dir(real):
    """The system directory that the resolved path `real` is or is inside,
    or None."""
    if real in _SYSTEM_DIRS:
        return real
    top = "/" + real.split("/")[1]
    if top in _SYSTEM_TREES or top.startswith("/lib"):
        return top
    return None


class _Builder:
    def __init__(self, path, sections):
        self.path = path
        self.sections = sections
        self.values = [self._typed(s) for s in sections]

    def error(self, section, key, problem, line=None):
        if line is None:
            line = section.keys[key].number if key in section.keys \
                else section.line
        field = f"{section.title}: {key}" if key else section.title
        return SiteError(self.path, line, field, problem)

    def _typed(self, section):
        table = KEYS[section.kind]
        typed = {}
        for key, line in section.keys.items():
            if key not in table:
                close = difflib.get_close_matches(key.lower(), table, 1)
                hint = HINTS.get((section.kind, key)) or (
                    f"did you mean {close[0]!r}?" if close else
                    f"keys of [{section.kind}]: {', '.join(table)}")
                raise self.error(section, key, f"unknown key ({hint})")
            try:
                typed[key] = table[key](line.value)
            except ValueError as exc:
                raise self.error(section, key, str(exc)) from None
        return typed

    def site(self):
        of = {}
        for section, typed in zip(self.sections, self.values):
            of.setdefault(section.kind, []).append((section, typed))
        site_section, site_values = (of.get("site") or [(None, {})])[0]
        self.root = self._root(site_section, site_values.get("root", "boot"))
        jobs, entries = {}, {}      # files checked in the file's order
        for section, values in zip(self.sections, self.values):
            if section.kind == "job":
                jobs[section.name] = self._job(section, values)
            elif section.kind == "menu":
                entries[section.name] = self._entry(section, values)
        self.jobs, self.entries = jobs, entries
        for section, values in of.get("menu", []):
            if values.get("job") is not None:
                self._known(section, "job", values["job"], jobs, "job")
        settings = Settings(self.root, **{
            k.replace("-", "_"): v for k, v in site_values.items()
            if k != "root"})
        if "fallback" not in site_values:
            settings.fallback = "local" if "local" in entries else None
        if site_section is not None:
            self._check_settings(site_section, site_values)
        servers = {}
        for section, values in of.get("server", []):
            self._check_settings(section, values, settings)
            servers[section.name] = {k.replace("-", "_"): v
                                     for k, v in values.items()}
        hosts, names = {}, {}
        for section, values in of.get("host", []):
            host = self._host(section, values)
            if host.name and host.name in names:
                raise self.error(section, "name", f"{host.name!r} is "
                                 f"already the name of host "
                                 f"{names[host.name]}")
            names[host.name] = host.mac
            hosts[host.mac] = host
        return Site(self.path, settings, entries, jobs, hosts, servers)

    def _root(self, section, value):
        base = os.path.dirname(os.path.abspath(self.path))
        root = os.path.normpath(os.path.join(base, value))
        if not os.path.isdir(root):
            what = "no such directory" if not os.path.lexists(root) \
                else "not a directory"
            problem = f"{root}: {what} (the boot root; pxeconf init makes it)"
            if section is None or "root" not in section.keys:
                raise SiteError(self.path, None, "site: root",
                                f"{problem}; the default is 'boot'")
            raise self.error(section, "root", problem)
        real, home = os.path.realpath(root), os.path.realpath(base)
        if os.path.commonpath([real, home]) == real:
            # The servers would hand out the site file and DIR/state: the
            # journal and the console's token.
            problem = (f"{root}: holds the site file's own directory, so "
                       f"its state (the console token) would be served; "
                       f"give a directory of its own, such as 'boot'")
            if section is None or "root" not in section.keys:
                raise SiteError(self.path, None, "site: root", problem)
            raise self.error(section, "root", problem)
        system = _system_dir(real)
        if system:
            # The servers publish the root to anyone on the boot network
            # and pxeconf writes boot.ipxe, grub/ and pxelinux.cfg/ into it.
            problem = (f"{root}: {system} is a system directory (the root "
                       f"is published to the boot network and written "
                       f"into); give a directory of its own, such as "
                       f"'boot' or /srv/tftp")
            if section is None or "root" not in section.keys:
                raise SiteError(self.path, None, "site: root", problem)
            raise self.error(section, "root", problem)
        return root

    def _file(self, section, key, value, bundle=False):
        """`value` as a clean root-relative name of a file (or, `bundle`,
        of a bootdisk PXE directory) that is there inside the root."""
        if value.startswith("/"):
            raise self.error(section, key, f"{value}: an absolute path; "
                             f"give it relative to the boot root {self.root}")
        try:
            rel = rootpath.relative(value)
            for name in (f"{rel}/vmlinuz", f"{rel}/initrd.img") if bundle \
                    else (rel,):
                try:
                    rootpath.resolve(self.root, name)
                except FileNotFoundError:
                    more = " (a bundle is a `bootdisk pxe` directory)" \
                        if bundle else ""
                    raise self.error(section, key, f"{name}: no such file "
                                     f"in the boot root {self.root}{more}"
                                     ) from None
                except rootpath.Refused as exc:
                    raise rootpath.Refused(f"{name}: {exc}") from None
        except rootpath.Refused as exc:
            raise self.error(section, key, f"{exc} (files must be inside "
                             f"the boot root {self.root})") from None
        return rel

    def _boot(self, section, values):
        """kernel, initrd, bundle of an entry or a job: one of them."""
        kernel, initrd, bundle = (values.get(k) for k in
                                  ("kernel", "initrd", "bundle"))
        if bundle is not None and (kernel or initrd):
            raise self.error(section, "bundle", "give a bundle or a kernel "
                             "and an initrd, not both")
        if (kernel is None) != (initrd is None):
            have, lack = ("kernel", "initrd") if initrd is None \
                else ("initrd", "kernel")
            raise self.error(section, have, f"without {lack} (a kernel "
                             f"boots with its initrd)")
        if kernel is not None:
            return (self._file(section, "kernel", kernel),
                    self._file(section, "initrd", initrd), None)
        if bundle is not None:
            return None, None, self._file(section, "bundle", bundle, True)
        return None, None, None

    def _entry(self, section, values):
        kernel, initrd, bundle = self._boot(section, values)
        ways = [k for k in ("kernel", "bundle", "job") if values.get(k)]
        if values.get("local"):
            ways.append("local")
        if not ways:
            raise self.error(section, None, "boots nothing: give kernel + "
                             "initrd, bundle, local = yes or job")
        if len(ways) > 1:
            raise self.error(section, ways[1], f"and {ways[0]}: an entry "
                             f"boots one of kernel + initrd, bundle, "
                             f"local = yes or job")
        if values.get("local") and values.get("cmdline"):
            raise self.error(section, "cmdline", "a local entry boots no "
                             "kernel to give it to")
        job = values.get("job")
        return Entry(section.name, values.get("label") or section.name,
                     kernel, initrd, values.get("cmdline", ""), bundle,
                     bool(values.get("local")), job, section.line)

    def _job(self, section, values):
        if "script" not in values:
            raise self.error(section, "script", "missing (the shell script "
                             "the imaging environment runs)")
        kernel, initrd, bundle = self._boot(section, values)
        if kernel is None and bundle is None:
            raise self.error(section, None, "boots nothing: give bundle, or "
                             "kernel + initrd (the imaging environment)")
        script = self._file(section, "script", values["script"])
        return Job(section.name, values.get("label") or section.name, script,
                   kernel, initrd, bundle, values.get("cmdline", ""),
                   values.get("retries"), section.line)

    def _torrent(self, section, name):
        """A torrent of swarm-seed: NAME.torrent inside the root, with the
        NAME.raw that `rdeploy swarm prepare` wrote beside it."""
        if not name.endswith(".torrent") or name == ".torrent":
            raise self.error(section, "swarm-seed", f"{name}: not a "
                             f".torrent file (rdeploy swarm prepare writes "
                             f"NAME.torrent and NAME.raw beside it)")
        self._file(section, "swarm-seed", name)
        self._file(section, "swarm-seed", name[:-len(".torrent")] + ".raw")

    def _known(self, section, key, name, table, what):
        if name not in table:
            known = ", ".join(table) or "none"
            plural = "entries" if what == "entry" else f"{what}s"
            raise self.error(section, key, f"no {what} named {name!r} "
                             f"({plural}: {known})")

    def _check_settings(self, section, values, base=None):
        for torrent in values.get("swarm-seed") or ():
            self._torrent(section, torrent)
        for key in ("default", "fallback"):
            if values.get(key):
                self._known(section, key, values[key], self.entries, "entry")
        entries = values.get("entries")
        for name in entries or ():
            self._known(section, "entries", name, self.entries, "entry")
        if entries is None and base is not None:
            entries = base.entries
        default = values.get("default") or (base.default if base else None)
        if entries and default and default not in entries:
            key = "default" if values.get("default") else "entries"
            raise self.error(section, key, f"the default entry {default!r} "
                             f"is not in the entries of this menu "
                             f"({', '.join(entries)})")

    def _host(self, section, values):
        job, menu = values.get("job"), values.get("menu")
        if job and menu:
            raise self.error(section, "menu", "and job: a machine runs a "
                             "job or boots a menu entry, not both")
        if job:
            self._known(section, "job", job, self.jobs, "job")
        else:
            for key in ("once", "assigned"):
                if key in values:
                    raise self.error(section, key, "set without job (remove "
                                     "it, or add job = NAME)")
        if menu:
            self._known(section, "menu", menu, self.entries, "entry")
        if values.get("fallback"):
            self._known(section, "fallback", values["fallback"],
                        self.entries, "entry")
        return Host(section.name, values.get("name", ""), job,
                    values.get("once", True), values.get("assigned"), menu,
                    values.get("fallback"), section.line)
