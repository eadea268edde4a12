"""A bootdisk bundle: the directory `bootdisk bundle -o DIR` (or `bootdisk
pxe -o DIR`) writes, which bwpart installs into an environment slot.

    vmlinuz        the kernel (a bzImage: "HdrS" at byte 0x202)
    initrd.img     the initramfs with the toolkit
    bundle.json    {"format": 1, "version", "id", "built",
                    "kernel_release", "cmdline", "files": {name: sha256},
                    "secure_boot": bool}
    shimx64.efi, grubx64.efi, mmx64.efi   (optional; with --secure-boot)

:func:`load` checks it whole before anything is written: bundle.json
present and of format 1, its fields of the right kinds, vmlinuz and
initrd.img listed, every listed file present with the sha256 it lists.
"""

import hashlib
import json
import os
import re
import stat

from ..errors import InputError
from . import fields as f

FORMAT = 1
KERNEL, INITRD, INFO = "vmlinuz", "initrd.img", "bundle.json"
#: The signed UEFI chain a --secure-boot bundle carries.
EFI_FILES = ("shimx64.efi", "grubx64.efi", "mmx64.efi")
_FIELDS = {"format": int, "version": str, "id": str, "built": str,
           "kernel_release": str, "cmdline": str, "files": dict,
           "secure_boot": bool}
MiB = 1 << 20
#: The biggest file of each kind a bundle may hold (a FAT32 file is
#: below 4 GiB; a kernel of today is about 10 MiB, an EFI loader 2).
LIMITS = {KERNEL: 128 * MiB, INITRD: 2048 * MiB, INFO: 1 * MiB}
OTHER_LIMIT = 32 * MiB
#: The command line goes into syslinux.cfg and grub.cfg: one line, and
#: nothing GRUB's parser reads as more than words (; $ ` quotes \ {}).
CMDLINE = re.compile(r"[A-Za-z0-9 ._,:=/+@%~^*#!?()\[\]-]*\Z")
_SPEC = f.obj({"version": f.text(64), "id": f.text(128, f.FILE_NAME),
               "built": f.text(64), "kernel_release": f.text(128),
               "cmdline": f.text(2048, CMDLINE),
               "files": f.mapping(f.FILE_NAME, f.text(64, f.HEX64), 16)})


class Bundle:
    """A checked bundle: `dir`, `kernel` and `initrd` (paths), `info` (the
    bundle.json dict), `files` ({name: path} of every listed file)."""

    def __init__(self, directory, info, info_bytes=None):
        self.dir = directory
        self.info = info
        self._info_bytes = info_bytes
        self.files = {name: os.path.join(directory, name)
                      for name in info["files"]}
        self.kernel = self.files[KERNEL]
        self.initrd = self.files[INITRD]

    @property
    def id(self):
        return self.info["id"]

    @property
    def version(self):
        return self.info["version"]

    @property
    def cmdline(self):
        return self.info["cmdline"]

    def efi_file(self, name):
        """Path of `name` (shimx64.efi ...) in the bundle, or None."""
        return self.files.get(name)

    def info_bytes(self):
        """bundle.json as load() read and checked it (copied into the
        slot: not read again, a file changed since is not taken)."""
        if self._info_bytes is None:
            with open(os.path.join(self.dir, INFO), "rb") as fp:
                self._info_bytes = fp.read()
        return self._info_bytes

    def sha256(self, name):
        """The sha256 bundle.json lists for *name*: what a copy of the
        file must read back with (the file may change after load)."""
        return self.info["files"][name]


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load(directory):
    """The :class:`Bundle` in `directory`, checked; InputError naming the
    directory and what is wrong."""
    directory = os.fspath(directory)
    where = f"{directory}: bundle"
    path = os.path.join(directory, INFO)
    if not os.path.isdir(directory):
        raise InputError(f"{directory}: no such directory (the bundle is "
                         f"what `bootdisk bundle -o DIR` writes)")
    if not os.path.lexists(path):
        raise InputError(f"{directory}: no bundle.json; not a bundle "
                         f"(`bootdisk bundle -o DIR` makes one)")
    try:
        _regular(directory, INFO, where)
        with open(path, "rb") as fp:
            raw = fp.read(LIMITS[INFO] + 1)
        if len(raw) > LIMITS[INFO]:
            raise InputError(f"{path}: more than {LIMITS[INFO]} bytes")
        info = json.loads(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InputError(f"{path}: not readable JSON ({exc})") from None
    check_info(info, where)
    for name, digest in info["files"].items():
        if os.path.basename(name) != name or name in (".", "..", INFO):
            raise InputError(f"{where}: bundle.json lists a bad file name "
                             f"{name!r}")
        file = _regular(directory, name, where)
        got = sha256_file(file)
        if got != digest:
            raise InputError(f"{where}: {name} has sha256 {got[:16]}..., "
                             f"bundle.json says {str(digest)[:16]}...: the "
                             f"bundle is damaged or was changed")
    with open(os.path.join(directory, KERNEL), "rb") as fp:
        fp.seek(0x202)
        if fp.read(4) != b"HdrS":
            raise InputError(f"{where}: {KERNEL} is not a Linux kernel "
                             f"(no \"HdrS\" at byte 0x202)")
    return Bundle(directory, info, raw)


def _regular(directory, name, where):
    """The path of *name* in the bundle when it is a regular file inside
    the bundle directory (a symlink only to a file inside it) and within
    its size limit; InputError otherwise."""
    path = os.path.join(directory, name)
    try:
        real = os.path.realpath(path)
        inside = os.path.commonpath([os.path.realpath(directory), real]) \
            == os.path.realpath(directory)
        st = os.stat(real)
    except (OSError, ValueError):
        raise InputError(f"{where}: {name} is listed in bundle.json but "
                         f"missing") from None
    if not inside:
        raise InputError(f"{where}: {name} is a link to {real}, outside "
                         f"the bundle directory")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{where}: {name} is not a regular file")
    limit = LIMITS.get(name, OTHER_LIMIT)
    if st.st_size > limit:
        raise InputError(f"{where}: {name} is {st.st_size} bytes, more "
                         f"than the {limit} a bundle's {name} may have")
    return real


def check_info(info, where="bundle"):
    """InputError unless `info` has every bundle.json field, of its kind."""
    if not isinstance(info, dict):
        raise InputError(f"{where}: bundle.json is not a JSON object")
    if info.get("format") != FORMAT:
        raise InputError(f"{where}: bundle.json format "
                         f"{info.get('format')!r}, this bwpart reads "
                         f"{FORMAT}")
    for field, kind in _FIELDS.items():
        if field not in info:
            raise InputError(f"{where}: bundle.json has no {field!r}")
        if not isinstance(info[field], kind) or \
                (kind is int and isinstance(info[field], bool)):
            raise InputError(f"{where}: bundle.json {field!r} is not a "
                             f"{kind.__name__}")
    for name in (KERNEL, INITRD):
        if name not in info["files"]:
            raise InputError(f"{where}: bundle.json does not list {name}")
    if not info["id"] or "/" in info["id"]:
        raise InputError(f"{where}: bundle.json id {info['id']!r} is not "
                         f"a name")
    f.run(_SPEC, info, f"{where}: bundle.json", "bundle.json")
