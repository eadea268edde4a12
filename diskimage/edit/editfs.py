"""The writers of an edit: how one partition of a scratch disk is
mounted (or reached through mtools, for FAT), changed and checked, and
how whatever an interrupt left behind is released.  See transaction.py
for the whole transaction."""

import contextlib
import os
import re

from diskimage import sighold
from diskimage.fs import registry
from diskimage.errors import MissingToolError, UnsupportedError
from diskimage.fs.fat.mtools import MTOOLS_ENV
from diskimage.host import fuse, tools
from diskimage.host.loop import loop_device

from .inroot import Root


class _Mounted:
    """Edits through a mounted filesystem, every path resolved inside it
    (inroot): a symlink of the image never leads onto the host."""

    def __init__(self, root, strict):
        self.root = root
        self.strict = strict

    def free(self):
        """(bytes, inodes, block size) free (to root, which edits: the
        reserved blocks count)."""
        st = os.statvfs(self.root)
        root = os.geteuid() == 0
        return ((st.f_bfree if root else st.f_bavail) * st.f_frsize,
                st.f_ffree if root else st.f_favail, st.f_frsize)

    def run(self, action):
        # Opened with interrupts held: one landing just after the open
        # would leak its fd, and umount would then find the mount busy.
        root = None
        try:
            with sigint_held():
                root = Root(self.root, strict=self.strict)
            self.tree = root
            action(self)
            self.copies = root.copies
        finally:
            if root is not None:
                root.close()

    def put(self, src, dest, force):
        self.tree.put(src, dest, force)

    def rm(self, path, recursive):
        self.tree.rm(path, recursive)

    def mkdir(self, path):
        self.tree.mkdir(path)

    def mv(self, src, dest, is_dir=False):
        self.tree.mv(src, dest)


class _Mtools:
    """Edits of a FAT filesystem with mtools (vfat does not mount here)."""

    def __init__(self, disk, start):
        self.drive = f"{disk}@@{start}"

    def _run(self, *args):
        tools.run([args[0], "-i", self.drive, *args[1:]],
                  env=MTOOLS_ENV)

    def free(self):
        out = tools.run(["mdir", "-i", self.drive, "::/"],
                        env=MTOOLS_ENV).stdout
        found = re.search(r"([\d ]+) bytes free", out)
        return (int(found[1].replace(" ", "")) if found else None), None, \
            None

    def run(self, action):
        action(self)
        self.copies = {}

    def put(self, src, dest, force):
        # FAT holds no symlinks to follow; -o replaces only with --force
        # (check_request refused an existing path before this).  The source
        # made absolute: mtools reads a relative "a:b" as drive A:.
        self._run("mcopy", "-s", "-m", *(["-o"] if force else []), "-Q",
                  os.path.abspath(src), f"::/{dest}")

    def rm(self, path, recursive):
        self._run("mdeltree" if recursive else "mdel", f"::/{path}")

    def mkdir(self, path):
        self._run("mmd", f"::/{path}")

    def mv(self, src, dest, is_dir=False):
        # mmove upper-cases a new 8.3 name ("moved.bin" -> "MOVED.BIN"),
        # mcopy keeps its case: copy within the filesystem, then remove.
        self._run("mcopy", "-s", "-m", "-Q", f"::/{src}", f"::/{dest}")
        self.rm(src, recursive=is_dir)


def sigint_held():
    """Hold Ctrl-C (and SIGTERM, SIGHUP, which the runner turns into the
    same clean-up) back while a loop device or a mount is set up or torn
    down: Python does not wait for a tool it was running when interrupted,
    which could then attach or mount after our clean-up has run.  The
    interrupt is delivered as soon as the step is over (diskimage.sighold,
    which also holds it when another thread would take it)."""
    return sighold.held()


#: Mount options by kind: btrfs edits the top-level subvolume (id 5), the
#: tree imgx shows, whatever subvolume `set-default` made a plain mount
#: pick, so `IMAGE:1/home/x` is x of the subvolume "home" here too.
_MOUNT_OPTIONS = {"btrfs": ("-o", "subvolid=5")}


#: How a record's ``edit`` says imgx writes to it; anything else (None
#: included) is not edited.
METHODS = ("mount", "ntfs-3g", "exfat-fuse", "mtools")


def editable(area, where, path=""):
    """UnsupportedError (exit 7), before any work, unless imgx edits the
    filesystem of *area* (named *where*: "IMAGE:N") by a method it has.
    *path* is the path asked for inside it."""
    kind = area.get("filesystem")
    record = registry.lookup(kind) if kind else None
    if record is not None and record.family == "lvm":
        lv = path.strip("/").split("/", 1)[0]
        inside = f"/{lv}" if lv else ""
        raise UnsupportedError(
            f"{where}{inside}: imgx does not edit inside LVM2 volumes "
            f"(partition {area.get('partition')} is an LVM2 physical "
            f"volume; ls, cat and get read it)")
    if record is None or record.edit not in METHODS:
        name = record.title if record else (kind or "no known filesystem")
        raise UnsupportedError(f"{where}: imgx does not edit {name}"
                               + (f" (edit method {record.edit!r})"
                                  if record and record.edit else ""))


def _enter_mount(stack, disk, area, mnt):
    kind = area["filesystem"]
    how = registry.lookup(kind).edit
    if how not in ("mount", "ntfs-3g", "exfat-fuse"):
        raise UnsupportedError(f"{kind}: imgx does not edit it by "
                               f"{how!r}")
    dev = stack.enter_context(loop_device(
        disk, area["start"], area["size"], read_only=False))
    if how == "ntfs-3g":
        return stack.enter_context(fuse.ntfs_mount(dev, mnt, "rw"))
    if kind == "btrfs":         # the kernel keeps a btrfs device listed
        stack.callback(tools.run, ["btrfs", "device", "scan", "--forget",
                                   dev], check=False)
    if how == "mount":
        tools.run(["mount", "-t", kind, *_MOUNT_OPTIONS.get(kind, ()), dev,
                   mnt])
        stack.callback(tools.run, ["umount", mnt])
    else:                       # exfat-fuse: its daemon writes until it ends
        tools.run(["mount.exfat-fuse", dev, mnt])
        stack.callback(fuse.unmount_fuse, mnt)
    return mnt


@contextlib.contextmanager
def mount(disk, area, scratch):
    record = registry.lookup(area["filesystem"])
    if record.edit == "mtools":
        yield _Mtools(disk, area["start"])
        return
    mnt = os.path.join(scratch, "mnt")
    os.makedirs(mnt, exist_ok=True)
    stack = contextlib.ExitStack()
    try:
        with sigint_held():
            root = _enter_mount(stack, disk, area, mnt)
        yield _Mounted(root, record.posix)
    except BaseException:
        # The cause (an interrupt, a failed edit) goes on: an unmount that
        # fails now ("target is busy") must not take its place; release()
        # then unmounts lazily and detaches what is left.
        with sigint_held(), contextlib.suppress(Exception):
            stack.close()
        raise
    with sigint_held():
        stack.close()


def fsck(disk, area):
    """(clean, output) of the filesystem's own checker (the registry's)."""
    return registry.fsck_region(disk, area["start"], area["size"],
                                area["filesystem"])


def _mount_points():
    try:
        f = open("/proc/mounts", encoding="utf-8", errors="replace")
    except FileNotFoundError:
        # No /proc (a bare chroot): nothing to list.  The clean-up must not
        # replace the error it cleans up after (a tool not installed, say);
        # a mount it could not see keeps the scratch folder, whose removal
        # then says so.
        return
    with f:
        for line in f:
            yield re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)),
                         line.split()[1])


def release(scratch, disk):
    """Whatever an interrupt at a bad moment (inside mount or losetup, say)
    left behind: unmount what is under the scratch directory and detach
    the loop devices over the scratch disk, so it can be removed."""
    for point in _mount_points():
        if point.startswith(scratch + os.sep):
            # A plain umount waits for the filesystem to be released, so
            # the loop device below can go; lazy only when that fails.
            if tools.run(["umount", point], check=False).returncode:
                tools.run(["umount", "-l", point], check=False)
    try:
        found = tools.run(["losetup", "-j", disk], check=False).stdout
    except MissingToolError:    # none attached then: the cause goes on
        return
    for line in found.splitlines():
        tools.run(["losetup", "-d", line.split(":")[0]], check=False)
