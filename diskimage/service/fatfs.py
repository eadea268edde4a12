"""Files on the service partition's FAT32: through mtools on the disk at
the partition's offset (the running OS, and this host, where vfat does not
mount), or through a temporary vfat mount of a loop device over the FAT
area (the imaging environment, which has no mtools).

One API, :class:`Fat`, over both: put, get, get_to, ls, rm, mkdir, rename
(over an existing name), free, exists.  Names read back as both
backends show them: an upper-case 8.3 name without a long name in lower
case (MTOOLS_LOWER_CASE, vfat's shortname=lower).  FAT paths are absolute, "/"
separated, and checked before any tool sees them (:func:`safe_path`): no
"." or "..", no empty part, no part that looks like an option, no mtools
wildcard, no drive letter.  FAT compares names without case; so does
:meth:`Fat.exists`.  Nothing prints.
"""

import hashlib
import os
import re
import shutil
import tempfile

from ..errors import InputError, NoSpaceError, TargetChangedError, ToolError
from ..fs.fat.mtools import MTOOLS_ENV
from ..host import tools
from . import layout
from .bundle import sha256_file

LABEL = layout.FAT_LABEL
TAIL_SIZE = layout.TAIL_SIZE    # the FAT ends before the tail

#: mdir shows an upper-case 8.3 name without a long name in lower case,
#: as the mount's shortname=lower does: mmove writes a new 8.3 name upper
#: case ("prod.rdi.partial" renamed "prod.rdi" is stored PROD.RDI), and
#: FAT, syslinux and GRUB compare names without case.
_ENV = dict(MTOOLS_ENV, MTOOLS_LOWER_CASE="1")
MOUNT_OPTIONS = "rw,flush,shortname=lower,utf8"

_BAD_CHARS = re.compile(r'[\x00-\x1f\\:*?\[\]"<>|]')
_MDIR_LINE = re.compile(
    r"^(?P<base>\S.{7}) (?P<ext>.{3}) +(?P<size><DIR>|\d+) +"
    r"\d{4}-\d\d-\d\d +\d{1,2}:\d\d ?(?P<long>.*)$")


def fs_area(service):
    """(offset, size) of the FAT area of `service` on its disk."""
    return service.start, layout.fs_size(service.size)


def safe_path(path):
    """`path` as a checked absolute FAT path ("/" alone for the root), or
    InputError naming what is wrong with it."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise InputError(f"{path!r}: a FAT path must start with /")
    parts = path.strip("/").split("/") if path.strip("/") else []
    for part in parts:
        if part in ("", ".", ".."):
            raise InputError(f"{path}: a FAT path may not hold an empty, "
                             f"'.' or '..' part")
        if part.startswith("-"):
            raise InputError(f"{path}: {part!r} looks like an option")
        if _BAD_CHARS.search(part) or part != part.strip():
            raise InputError(f"{path}: {part!r} holds a character FAT or "
                             f"mtools does not take literally")
    return "/" + "/".join(parts)


#: FAT32 needs at least this many clusters (fewer is FAT16 to every
#: reader, mtools included); a margin for the FATs and reserved sectors.
FAT32_MIN_CLUSTERS = 65525
_CLUSTER_MARGIN = 1.05


def sectors_per_cluster(size):
    """The cluster size (in 512-byte sectors) for a FAT32 of `size` bytes:
    Microsoft's table (4 KiB up to 8 GiB, 8 KiB to 16 GiB, 16 KiB to 32
    GiB, 32 KiB above), halved until the FAT32 has enough clusters (a
    256 MiB partition would have too few with 4 KiB ones)."""
    GiB = 1 << 30
    spc = 8 if size <= 8 * GiB else 16 if size <= 16 * GiB else \
        32 if size <= 32 * GiB else 64
    while spc > 1 and size // (spc * 512) < \
            FAT32_MIN_CLUSTERS * _CLUSTER_MARGIN:
        spc //= 2
    return spc


def format(service):
    """mkfs.fat -F 32 -n RDSERVICE over the FAT area of `service` (its
    first size - 1 MiB bytes), on the disk at the partition's offset (-I:
    a whole disk holding partitions; -h: the hidden sectors syslinux's
    boot record adds to its LBAs); the tail is not touched."""
    start, size = fs_area(service)
    if start % 512 or size % 1024:
        raise InputError(f"{service.disk}: FAT area at {start} of {size} "
                         f"bytes is not sector aligned")
    tools.run(["mkfs.fat", "-I", "-F", "32", "-n", LABEL,
               "-s", str(sectors_per_cluster(size)),
               "-h", str(start // 512), "--offset", str(start // 512),
               os.fspath(service.disk), str(size // 1024)], env=MTOOLS_ENV,
              no_tty=True)
    _sync(service.disk)


def _sync(disk):
    fd = os.open(os.fspath(disk), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_fat(service, backend=None):
    """The FAT of `service` as a :class:`Fat` (a context manager).
    `backend`: "mtools" or "mount"; by default mtools when mcopy is
    installed, else a temporary mount (:func:`choose_backend`)."""
    if (backend or choose_backend()) == "mtools":
        return MtoolsFat(service)
    from .fatmount import MountFat
    return MountFat(service)


def choose_backend(which=shutil.which):
    """"mtools" when mcopy is on the tools' PATH, else "mount"."""
    path = tools.tool_env().get("PATH")
    return "mtools" if which("mcopy", path=path) else "mount"


def mounted(service, where, fstype="vfat"):
    """The FAT of `service` mounted read-write at `where` for the job (the
    environment), over a loop device of its FAT area: a context manager
    (diskimage.service.fatmount)."""
    from . import fatmount
    return fatmount.mounted(service, where, fstype)


class Fat:
    """What both backends share; subclasses hold the seven primitives."""

    def __init__(self, service):
        self.service = service
        self.where = f"{service.disk}: service partition"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        pass

    def exists(self, path):
        path = safe_path(path)
        if path == "/":
            return True
        parent, name = path.rsplit("/", 1)
        try:
            entries = self.ls(parent or "/")
        except InputError:
            return False
        return any(n.lower() == name.lower() for n, _, _ in entries)

    def is_dir(self, path):
        path = safe_path(path)
        if path == "/":
            return True
        parent, name = path.rsplit("/", 1)
        for n, _, is_dir in self.ls(parent or "/"):
            if n.lower() == name.lower():
                return is_dir
        return False

    def makedirs(self, path):
        """mkdir of `path` and each missing parent."""
        done = ""
        for part in safe_path(path).strip("/").split("/"):
            done += "/" + part
            if not self.exists(done):
                self.mkdir(done)

    def sha256(self, path):
        return hashlib.sha256(self.get(path)).hexdigest()

    def put_checked(self, src, fat_path, sha256=None):
        """put, then read back: TargetChangedError when the bytes on the
        FAT are not what was meant (`sha256`, else the source's)."""
        if sha256 is None:
            sha256 = _sha256_of(src)
        self.put(src, fat_path)
        got = self.sha256(fat_path)
        if got != sha256:
            raise TargetChangedError(
                f"{self.where}: {fat_path} read back with sha256 "
                f"{got[:16]}, not {sha256[:16]}")


def _sha256_of(src):
    if isinstance(src, (bytes, bytearray)):
        return hashlib.sha256(src).hexdigest()
    return sha256_file(src)


class MtoolsFat(Fat):
    """The FAT through mtools: `-i DISK@@OFFSET`, nothing mounted."""

    def __init__(self, service):
        super().__init__(service)
        self.drive = f"{os.fspath(service.disk)}@@{service.start}"
        self._scratch = None

    def close(self):
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def _run(self, tool, *args, text=True, check=True):
        proc = tools.run([tool, "-i", self.drive, *args], env=_ENV,
                         text=text, check=False, no_tty=True)
        if check and proc.returncode != 0:
            err = proc.stderr if text else proc.stderr.decode(
                "utf-8", "replace")
            last = " | ".join(line for line in err.strip().splitlines()
                              if not line.startswith("Warning:"))[-300:]
            if "Disk full" in err or "No space" in err:
                raise NoSpaceError(f"{self.where}: no space left ({last})")
            raise ToolError(f"{self.where}: {tool} {' '.join(args)} failed "
                            f"(exit {proc.returncode}): {last}",
                            proc.returncode, err)
        return proc

    def _local(self, data):
        if self._scratch is None:
            self._scratch = tempfile.mkdtemp(prefix="bwpart-fat.")
        path = os.path.join(self._scratch, "data")
        with open(path, "wb") as f:
            f.write(data)
        return path

    def put(self, src, fat_path):
        fat_path = safe_path(fat_path)
        if isinstance(src, (bytes, bytearray)):
            src = self._local(bytes(src))
        self._run("mcopy", "-o", "-Q", os.path.abspath(src), f"::{fat_path}")
        _sync(self.service.disk)

    def get(self, fat_path):
        fat_path = safe_path(fat_path)
        proc = self._run("mcopy", "-n", f"::{fat_path}", "-", text=False,
                         check=False)
        if proc.returncode != 0:
            raise InputError(f"{self.where}: no file {fat_path}")
        return proc.stdout

    def get_to(self, fat_path, local_path):
        fat_path = safe_path(fat_path)
        proc = self._run("mcopy", "-n", "-o", f"::{fat_path}",
                         os.path.abspath(local_path), check=False)
        if proc.returncode != 0:
            raise InputError(f"{self.where}: no file {fat_path}")

    def ls(self, fat_dir="/"):
        fat_dir = safe_path(fat_dir)
        proc = self._run("mdir", "-a", f"::{fat_dir}", check=False)
        if proc.returncode != 0 or "Directory for" not in proc.stdout:
            raise InputError(f"{self.where}: no directory {fat_dir}")
        found = []
        for line in proc.stdout.splitlines():
            m = _MDIR_LINE.match(line)
            if not m:
                continue
            name = m["long"].strip()
            if not name:
                base, ext = m["base"].strip(), m["ext"].strip()
                name = f"{base}.{ext}" if ext else base
            if name in (".", ".."):
                continue
            is_dir = m["size"] == "<DIR>"
            found.append((name, 0 if is_dir else int(m["size"]), is_dir))
        return found

    def rm(self, fat_path, recursive=False):
        fat_path = safe_path(fat_path)
        if fat_path == "/":
            raise InputError(f"{self.where}: the root is not removed")
        if self.is_dir(fat_path):
            self._run("mdeltree" if recursive else "mrd", f"::{fat_path}")
        else:
            self._run("mdel", f"::{fat_path}")
        _sync(self.service.disk)

    def mkdir(self, fat_path):
        self._run("mmd", f"::{safe_path(fat_path)}")
        _sync(self.service.disk)

    def rename(self, src, dest):
        """`src` renamed `dest`, over an existing file `dest` (mmove -D o:
        one mtools run frees the old entry and writes the new one; it is
        not atomic against a power cut, so callers that must stay
        bootable keep a fallback, envslots.switch)."""
        src, dest = safe_path(src), safe_path(dest)
        self._run("mmove", "-D", "o", f"::{src}", f"::{dest}")
        _sync(self.service.disk)

    def free(self):
        proc = self._run("mdir", "::/")
        found = re.search(r"([\d ]+) bytes free", proc.stdout)
        if not found:
            raise ToolError(f"{self.where}: mdir did not say the free space")
        return int(found[1].replace(" ", ""))
