"""`pxeconf init DIR`: a site directory with a boot root that holds the
loaders, copied from the installed Debian packages.

    DIR/pxeconf.site        the site file (a commented template)
    DIR/boot/               the served root: the loaders below, loaders.json
        grub/ pxelinux.cfg/ ipxe/   (the configs `pxeconf build` writes)
    DIR/state/              the journal and the console token (serve)

Each loader is copied as a whole file (NAME.partial, fsync, rename), never
through a symlink; boot/loaders.json records its package, the package's
version (dpkg-query), its sha256 and the file it came from.  A package
that is not installed is MissingToolError naming it (exit 10).
"""

import hashlib
import json
import os

from ..errors import InputError, MissingToolError
from ..host import tools
from ..host.partial import partial_file
from . import site as sitemodel
from .rootwrite import own_directory

SITE_FILE = "pxeconf.site"
ROOT = "boot"
STATE = "state"
CONFIG_DIRS = ("pxelinux.cfg", "grub", "ipxe")

_OWN = "the site's folders must be directories of their own"
_BIOS = "/usr/lib/syslinux/modules/bios/"
_GRUBNET = "/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed"

#: name in the boot root -> (Debian package, installed file, why it is here)
LOADERS = {
    "pxelinux.0": ("pxelinux", "/usr/lib/PXELINUX/pxelinux.0",
                   "BIOS PXE: the menu loader; reads pxelinux.cfg/01-<mac>, "
                   "then pxelinux.cfg/default"),
    "ldlinux.c32": ("syslinux-common", _BIOS + "ldlinux.c32",
                    "pxelinux's core module, loaded by pxelinux.0"),
    "menu.c32": ("syslinux-common", _BIOS + "menu.c32",
                 "the text menu (UI menu.c32)"),
    "vesamenu.c32": ("syslinux-common", _BIOS + "vesamenu.c32",
                     "the graphical menu, for sites that switch to it"),
    "libutil.c32": ("syslinux-common", _BIOS + "libutil.c32",
                    "library of menu.c32 and chain.c32"),
    "libcom32.c32": ("syslinux-common", _BIOS + "libcom32.c32",
                     "library of menu.c32 and chain.c32"),
    "chain.c32": ("syslinux-common", _BIOS + "chain.c32",
                  "pxelinux's local boot: chain-loads the first disk"),
    "undionly.kpxe": ("ipxe", "/usr/lib/ipxe/undionly.kpxe",
                      "iPXE for BIOS PXE clients (through the NIC's UNDI)"),
    "ipxe.efi": ("ipxe", "/usr/lib/ipxe/ipxe.efi",
                 "iPXE for UEFI with its own NIC drivers (where SNP is "
                 "broken)"),
    "snponly.efi": ("ipxe", "/usr/lib/ipxe/snponly.efi",
                    "iPXE for UEFI through the firmware's network stack "
                    "(SNP): what UEFI PXE and HTTP boot clients get"),
    "shimx64.efi": ("shim-signed", "/usr/lib/shim/shimx64.efi.signed",
                    "Secure Boot: the Microsoft-signed first stage; "
                    "loads grubx64.efi beside it"),
    "grubnetx64.efi": ("grub-efi-amd64-signed", _GRUBNET,
                       "Debian's signed GRUB network image, under its own "
                       "name"),
    "grubx64.efi": ("grub-efi-amd64-signed", _GRUBNET,
                    "the same GRUB under the name shim chain-loads; it "
                    "reads grub/grub.cfg (prefix /grub)"),
}

def package_version(package):
    """The installed version of a Debian package, or MissingToolError."""
    proc = tools.run(["dpkg-query", "-W", "-f=${db:Status-Abbrev} ${Version}",
                      package], check=False, package="dpkg",
                     what="pxeconf init")
    words = proc.stdout.split()
    if proc.returncode != 0 or len(words) < 2 or words[0] != "ii":
        raise MissingToolError(package, package, what="pxeconf init")
    return words[1]


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _is_empty(directory):
    with os.scandir(directory) as entries:
        return next(entries, None) is None


def check_target(directory, force=False):
    """Refuse a DIR init cannot use, before anything is copied."""
    if os.path.lexists(directory) and not os.path.isdir(directory):
        raise InputError(f"{directory}: not a directory")
    if os.path.islink(directory):
        raise InputError(f"{directory}: a symlink; give the directory "
                         f"itself")
    if os.path.isdir(directory) and not force and not _is_empty(directory):
        raise InputError(f"{directory}: not empty (give --force to write "
                         f"the loaders into it)")
    parent = os.path.dirname(os.path.abspath(directory))
    if not os.path.isdir(parent):
        raise InputError(f"{parent}: no such directory")


def sources(loaders=None):
    """{name: (package, version, source)} of every loader (`loaders`: a
    table like LOADERS, which is the default), or MissingToolError for the
    first package (or file) that is missing."""
    versions = {}
    found = {}
    for name, (package, source, _why) in (loaders or LOADERS).items():
        if package not in versions:
            versions[package] = package_version(package)
        if not os.path.isfile(source):
            raise MissingToolError(source, package, what="pxeconf init")
        found[name] = (package, versions[package], source)
    return found


def _copy(source, path):
    if os.path.islink(path):
        raise InputError(f"{path}: a symlink; init never writes through one")
    with open(source, "rb") as src, partial_file(path, replace=True,
                                                 mode=0o644) as out:
        while block := src.read(1 << 20):
            out.write(block)


def init(directory, force=False, loaders=None):
    """Make `directory` a site (module docstring).  Returns the loaders
    record ({name: {package, version, sha256, source}}).  With `force`
    into a directory that is not empty: the loaders and loaders.json are
    replaced, an existing site file is kept (it is the admin's)."""
    directory = os.fspath(directory)
    check_target(directory, force)
    found = sources(loaders)    # every package checked before a write
    if not os.path.isdir(directory):
        os.mkdir(directory, 0o755)
    root = os.path.join(directory, ROOT)
    own_directory(root, _OWN)
    for sub in CONFIG_DIRS:
        own_directory(os.path.join(root, sub), _OWN)
    own_directory(os.path.join(directory, STATE), _OWN)
    record = {}
    for name, (package, version, source) in found.items():
        path = os.path.join(root, name)
        _copy(source, path)
        record[name] = {"package": package, "version": version,
                        "sha256": sha256(path), "source": source}
    listing = os.path.join(root, "loaders.json")
    if os.path.islink(listing):
        raise InputError(f"{listing}: a symlink; init never writes "
                         f"through one")
    with partial_file(listing, replace=True, mode=0o644) as out:
        out.write((json.dumps(record, indent=2, sort_keys=True) + "\n")
                  .encode())
    site_path = os.path.join(directory, SITE_FILE)
    if not os.path.lexists(site_path):
        with partial_file(site_path, mode=0o644) as out:
            out.write(sitemodel.new_site_text().encode())
    return record
