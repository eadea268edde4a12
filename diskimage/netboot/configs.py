"""Every loader's configs, from the site and each machine's next boot.

Which loader asks for what (all names inside the boot root):

    pxelinux.0 (BIOS)   pxelinux.cfg/01-<mac-dashes>, else pxelinux.cfg/default
    GRUB (UEFI, shim)   grub/grub.cfg (its prefix is /grub), which looks for
                        grub/grub.cfg-01-<mac-dashes>, then
                        grub/grub.cfg-<mac:colons> (both written)
    iPXE                boot.ipxe (HTTP), which chains ipxe/<mac-dashes>.ipxe
                        and shows the menu when there is none

A per-machine file says what that machine boots now (a jobs.Boot): the
menu, one entry, its job (with the lease on the kernel command line) or
the local disk.  Local boot per loader: pxelinux chain-loads the first
disk (chain.c32 hd0, independent of what the BIOS does after PXE);
GRUB (UEFI only) chain-loads the first disk's /EFI/BOOT/BOOTX64.EFI it
finds, and `exit`s when there is none; iPXE `exit`s to the firmware,
which boots the next device (boot.ipxe with `exit 1`: a boot option that
returns success makes OVMF stop in its menu).

Quoting: GRUB words are single-quoted (nothing expands inside); pxelinux
and iPXE read a line to its end, so labels lose their control characters
(and, for iPXE, the characters its parser acts on: $ | & ; # { } \\);
a command line word or path that a loader would act on is refused
(InputError naming the entry), never rewritten.
"""

import re
import urllib.parse
from dataclasses import dataclass, field

from ..errors import InputError
from . import macaddr
from .rootwrite import prune, write  # noqa: F401 - the interface's names

HEADER = "written by pxeconf build from the site file: edit that, not this"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_HOST = re.compile(r"^[A-Za-z0-9.:\[\]-]+$")
_IPXE_LABEL_OK = set(" .,:+-_/()[]<>@%!?*=^~'\"")


@dataclass
class Item:
    """One thing a loader boots: a kernel with its initrd and arguments,
    or the local disk."""
    name: str
    label: str
    local: bool = False
    kernel: str = None
    initrd: str = None
    args: list = field(default_factory=list)


# ---- words, names, labels ---------------------------------------------

def split_words(text):
    """A kernel command line into words, as the kernel splits it:
    whitespace outside double quotes."""
    words, word, quoted, started = [], [], False, False
    for char in text or "":
        if char == '"':
            quoted = not quoted
        if char.isspace() and not quoted:
            if started:
                words.append("".join(word))
            word, started = [], False
            continue
        word.append(char)
        started = True
    if started:
        words.append("".join(word))
    return words


def _check_word(word, where):
    if any(ord(c) < 0x20 or ord(c) == 0x7f for c in word):
        raise InputError(f"{where}: {word!r}: a control character (newline, "
                         f"tab ...) cannot go on a kernel command line")
    if "${" in word or word in ("||", "&&", ";") or word.startswith("#"):
        raise InputError(f"{word!r} in {where}: iPXE would act on it "
                         f"(a setting, a command separator or a comment); "
                         f"not passed to the kernel")


def _words(text, where):
    words = split_words(text)
    for word in words:
        _check_word(word, where)
    return words


def _path(path, where):
    if path is None:
        raise InputError(f"{where}: no kernel or initrd")
    path = str(path).lstrip("/")
    if not path or any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7f
                       or c in "'\"\\$;|&#{}" for c in path):
        raise InputError(f"{where}: {path!r}: a boot file's path must not "
                         f"hold spaces, quotes or $;|&#{{}}\\ (the loaders "
                         f"read it as words)")
    return path


def _label(text, name):
    text = "".join(" " if ord(c) < 0x20 or ord(c) == 0x7f else c
                   for c in str(text or name)).strip()
    return text or name


def _check_name(name, what):
    if not _NAME.match(name or ""):
        raise InputError(f"{what} {name!r}: a name must be letters, digits, "
                         f"'_', '.' or '-' (it becomes a loader's label)")
    return name


def _grub_quote(text):
    return "'" + str(text).replace("'", "'\\''") + "'"


def _ipxe_label(text):
    return "".join(c if c.isalnum() or c in _IPXE_LABEL_OK else "_"
                   for c in text)


def check_server(server_url, tftp_address):
    """Refuse a server URL or address a loader cannot be given as is."""
    parts = urllib.parse.urlsplit(server_url or "")
    if parts.scheme != "http" or not parts.hostname or \
            not _HOST.match(parts.netloc) or parts.path != "/" or \
            server_url != f"http://{parts.netloc}/":
        raise InputError(f"{server_url!r}: the server URL must be "
                         f"http://ADDR:PORT/")
    if not _HOST.match(tftp_address or ""):
        raise InputError(f"{tftp_address!r}: not an address the loaders can "
                         f"be given")


# ---- what each entry and boot means -----------------------------------

def _job_item(name, label, job, server_url, extra="", lease=None):
    where = f"job {job.name}"
    args = _words(job.cmdline, where) + _words(extra, f"entry {name}")
    script = urllib.parse.quote(str(job.script).lstrip("/"))
    args.append(f"rd.job={server_url}{script}")
    if lease is not None:
        args += [f"rd.pxeconf={server_url}", f"rd.pxeconf.lease={lease}"]
    for word in args[-3:]:
        _check_word(word, where)
    return Item(name, _label(label or job.label, name),
                kernel=_path(job.kernel_path, where),
                initrd=_path(job.initrd_path, where), args=args)


def entry_item(site, entry, server_url):
    name = _check_name(entry.name, "menu entry")
    label = _label(entry.label, name)
    if entry.local:
        return Item(name, label, local=True)
    if entry.job:
        job = site.jobs.get(entry.job)
        if job is None:
            raise InputError(f"menu entry {name}: no job {entry.job!r}")
        return _job_item(name, label, job, server_url, entry.cmdline)
    where = f"menu entry {name}"
    return Item(name, label, kernel=_path(entry.kernel_path, where),
                initrd=_path(entry.initrd_path, where),
                args=_words(entry.cmdline, where))


def boot_item(site, boot, server_url):
    """The Item a machine boots straight away, or None for the menu."""
    if boot is None or boot.kind == "menu":
        return None
    if boot.kind == "local":
        entry = boot.entry
        return Item(_check_name(entry.name, "menu entry") if entry else
                    "local", _label(entry.label if entry else None,
                                    "Boot from the local disk"), local=True)
    if boot.kind == "entry":
        return entry_item(site, boot.entry, server_url)
    if boot.kind == "job":
        if not re.match(r"^[A-Za-z0-9_.:-]+$", str(boot.lease or "")):
            raise InputError(f"job {boot.job.name}: lease {boot.lease!r} "
                             f"cannot go on a command line")
        return _job_item(_check_name(boot.job.name, "job"), boot.job.label,
                         boot.job, server_url, lease=boot.lease)
    raise ValueError(f"unknown boot kind {boot.kind!r}")


def menu_items(site, server_url):
    """(items, default name, timeout seconds) of the menu."""
    settings = site.settings
    entries = site.menu()
    if not entries:
        raise InputError(f"{site.path}: the menu has no entries (add one "
                         f"with pxeconf menu add)")
    items = [entry_item(site, e, server_url) for e in entries]
    names = [item.name for item in items]
    default = settings.default if settings.default in names else names[0]
    return items, default, max(0, int(settings.timeout or 0))


# ---- pxelinux ---------------------------------------------------------

def _pxelinux_item(item):
    lines = [f"LABEL {item.name}", f"  MENU LABEL {item.label}"]
    if item.local:
        lines += ["  COM32 chain.c32", "  APPEND hd0"]
    else:
        lines += [f"  KERNEL {item.kernel}", f"  INITRD {item.initrd}"]
        if item.args:
            lines.append("  APPEND " + " ".join(item.args))
    return lines


def pxelinux_menu(items, default, timeout):
    lines = [f"# {HEADER}", "SERIAL 0 115200", "UI menu.c32", "PROMPT 0",
             "MENU TITLE Network boot",
             # 0 means "wait for ever" to pxelinux; the site's 0 means now
             f"TIMEOUT {max(1, timeout * 10)}", f"DEFAULT {default}", ""]
    for item in items:
        lines += _pxelinux_item(item) + [""]
    return "\n".join(lines)


def pxelinux_one(item):
    lines = [f"# {HEADER}", "SERIAL 0 115200", "PROMPT 0", "TIMEOUT 1",
             f"DEFAULT {item.name}", ""] + _pxelinux_item(item) + [""]
    return "\n".join(lines)


# ---- GRUB -------------------------------------------------------------

def _grub_item(item, server):
    head = f"menuentry {_grub_quote(item.label)} --id {_grub_quote(item.name)} {{"
    if item.local:
        body = _GRUB_LOCAL
    else:
        body = [f"  echo {_grub_quote('Loading ' + item.label)}",
                "  linux " + " ".join(
                    [_grub_quote(f"(tftp,{server})/{item.kernel}")] +
                    [_grub_quote(a) for a in item.args]),
                f"  initrd {_grub_quote(f'(tftp,{server})/{item.initrd}')}"]
    return [head] + body + ["}", ""]


#: GRUB's local boot: the disk's own UEFI loader (the removable-media
#: path every ESP may hold), found by file and chain-loaded; `exit` to
#: the firmware only when there is none, or it fails (GRUB 2.06's `exit`
#: returns success, and OVMF then stops in its menu).
EFI_LOADER = "/EFI/BOOT/BOOTX64.EFI"
_GRUB_LOCAL = [
    f"  if search --no-floppy --file --set=pxeconf_disk {EFI_LOADER}; then",
    f"    if chainloader \"($pxeconf_disk){EFI_LOADER}\"; then",
    "      boot",
    "    fi",
    "  fi",
    "  exit"]


def _grub_per_mac(server):
    """grub.cfg's look-up of the machine's own file, by both names, from
    the boot server named explicitly (beside a plain DHCP server GRUB's
    $net_default_server is the site's DHCP server).  `test -f` cannot
    see files over TFTP (it lists a directory), so each name is simply
    tried: a machine without a file gets a "not found" line and the
    menu below."""
    base = f"(tftp,{server})/grub/grub.cfg-"
    groups = ":".join(["([0-9a-f][0-9a-f])"] * 6)
    sets = " ".join(f"--set={i}:pxeconf_m{i}" for i in range(1, 7))
    dashed = "-".join(f"${{pxeconf_m{i}}}" for i in range(1, 7))
    return [
        "if [ -n \"$net_default_mac\" ]; then",
        f"  if regexp {sets} '^{groups}$' \"$net_default_mac\"; then",
        f"    configfile \"{base}01-{dashed}\"",
        "  fi",
        f"  configfile \"{base}$net_default_mac\"",
        "fi", ""]


def grub_menu(items, default, timeout, server, per_mac=True):
    lines = [f"# {HEADER}"]
    if per_mac:
        lines += _grub_per_mac(server)
    lines += [f"set timeout={timeout}", f"set default={_grub_quote(default)}",
              ""]
    for item in items:
        lines += _grub_item(item, server)
    return "\n".join(lines)


def grub_one(item, server):
    lines = [f"# {HEADER}", "set timeout=0",
             f"set default={_grub_quote(item.name)}", ""]
    return "\n".join(lines + _grub_item(item, server))


# ---- iPXE -------------------------------------------------------------

def _ipxe_boot(item, server_url, top=False):
    """`top`: in boot.ipxe itself, whose `exit` goes to the firmware: with
    a failure status, or OVMF (UEFI says: a boot option that returned
    success is done) stops in its boot menu instead of trying the disk;
    Debian's 2019 iPXE returns success from a plain `exit`."""
    if item.local:
        return ["exit 1" if top else "exit"]
    kernel = server_url + urllib.parse.quote(item.kernel)
    initrd = server_url + urllib.parse.quote(item.initrd)
    args = " ".join(item.args)
    return [
        # Debian's iPXE (2019) under UEFI: the kernel finds its initrd only
        # by name on the command line
        "iseq ${platform} efi && set pxeconf-initrd initrd=initrd.img || "
        "clear pxeconf-initrd",
        f"kernel {kernel} ${{pxeconf-initrd}} {args}".rstrip(),
        f"initrd --name initrd.img {initrd}",
        "boot"]


def ipxe_menu(items, default, timeout, server_url, per_mac=True):
    lines = ["#!ipxe", f"# {HEADER}"]
    if per_mac:
        # the machine's own script; its `exit` (local boot) ends this
        # script too, with a failure status, so the firmware tries its
        # next boot device (see _ipxe_boot)
        lines += [f"chain --autofree {server_url}ipxe/${{mac:hexhyp}}.ipxe"
                  f"?platform=${{platform}} && exit 1 || echo No file for "
                  f"this machine: the menu", ""]
    lines += [":pxeconf-menu", "menu Network boot"]
    for item in items:
        lines.append(f"item {item.name} {_ipxe_label(item.label)}")
    # iPXE reads --timeout 0 as "wait for ever"; the site's 0 is "now"
    lines += [f"choose --default {default} --timeout {max(1, timeout * 1000)} "
              f"pxeconf-choice || goto pxeconf-menu",
              "goto pxeconf-${pxeconf-choice}", ""]
    for item in items:
        lines += [f":pxeconf-{item.name}"] + \
            _ipxe_boot(item, server_url, top=per_mac) + \
            ["goto pxeconf-menu", ""]
    return "\n".join(lines)


def ipxe_one(item, server_url):
    lines = ["#!ipxe", f"# {HEADER}", f"echo {_ipxe_label(item.label)}"]
    return "\n".join(lines + _ipxe_boot(item, server_url) + [""])


# ---- the files --------------------------------------------------------

def host_files(site, mac, boot, server_url, tftp_address):
    """{relpath: bytes} of one machine's files, under every name its
    loaders ask for."""
    check_server(server_url, tftp_address)
    item = boot_item(site, boot, server_url)
    if item is None:
        items, default, timeout = menu_items(site, server_url)
        texts = (pxelinux_menu(items, default, timeout),
                 grub_menu(items, default, timeout, tftp_address,
                           per_mac=False),
                 ipxe_menu(items, default, timeout, server_url,
                           per_mac=False))
    else:
        texts = (pxelinux_one(item), grub_one(item, tftp_address),
                 ipxe_one(item, server_url))
    pxe, grub, ipxe = (t.encode() for t in texts)
    files = {macaddr.pxelinux_name(mac): pxe, macaddr.ipxe_name(mac): ipxe}
    for name in macaddr.grub_names(mac):
        files[name] = grub
    return files


def build(site, boots, server_url, tftp_address):
    """{relpath: bytes}: the menu files and every machine's own files."""
    check_server(server_url, tftp_address)
    items, default, timeout = menu_items(site, server_url)
    files = {
        "pxelinux.cfg/default":
            pxelinux_menu(items, default, timeout).encode(),
        "grub/grub.cfg":
            grub_menu(items, default, timeout, tftp_address).encode(),
        "boot.ipxe": ipxe_menu(items, default, timeout, server_url).encode(),
    }
    for mac, boot in boots.items():
        files.update(host_files(site, mac, boot, server_url, tftp_address))
    return files
