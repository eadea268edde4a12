"""Editing a filesystem inside an image: put, rm, mkdir, mv.

An image is never patched in place.  An edit:

1. checks the request against the image as it is (paths that must or must
   not exist, through the read-only browser), before any heavy work;
2. restores the image's disk into a sparse scratch file beside the image
   (every chunk checked, so a damaged image stops here, exit 4);
3. changes the one partition with the field's own writers: mtools for FAT,
   the kernel's ext2/3/4 driver, ntfs-3g and exfat-fuse through a loop
   device (``losetup -o OFFSET --sizelimit SIZE``) mounted on a scratch
   directory;
4. checks that filesystem with its fsck (e2fsck -fn, fsck.fat -n, ntfsfix -n,
   fsck.exfat -n); an unclean result stops here;
5. captures the scratch disk into ``IMAGE.partial`` with the image's
   partitions, mode, codec, level, chunk size, volume size and description,
   and renames it over the image only when it is whole.

So a failed or interrupted edit leaves the original image as it was.  The
metadata's ``history`` list gains one line per edit.

Why not debugfs for ext: it cannot copy a directory tree in, nor move a
directory (it would leave ``..`` pointing at the old parent); the kernel
driver does both, and ext mounts here.
"""

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from datetime import datetime, timezone

from diskimage import demodisk, fstools
from diskimage.capture import capture
from diskimage.compression import Compressor
from diskimage.errors import DiskImageError, InputError
from diskimage.reader import ImageReader, RecordStream
from diskimage.restore import plan_restore, run_restore
from diskimage.tools import tool_env
from diskimage.volumes import VolumeInput, VolumeOutput

from .fsread import FAMILIES
from .image import Image
from .rewrite import current_split, writable


class EditError(DiskImageError):
    """A writer tool failed, or the edited filesystem does not check clean;
    the image is unchanged."""

    exit_code = 1


def _clean(path):
    parts = [p for p in path.split("/") if p and p != "."]
    if ".." in parts:
        raise InputError(f"{path}: '..' is not allowed in paths inside an "
                         f"image")
    return "/".join(parts)


class _Mounted:
    """Edits through a mounted filesystem: plain file operations."""

    def __init__(self, root):
        self.root = root

    def _at(self, path):
        return os.path.join(self.root, path)

    def put(self, src, dest):
        target = self._at(dest)
        if os.path.isdir(src):
            shutil.copytree(src, target, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copy2(src, target, follow_symlinks=False)

    def rm(self, path, recursive):
        target = self._at(path)
        if os.path.isdir(target) and not os.path.islink(target):
            if recursive:
                shutil.rmtree(target)
            else:
                os.rmdir(target)
        else:
            os.unlink(target)

    def mkdir(self, path):
        os.mkdir(self._at(path))

    def mv(self, src, dest, is_dir=False):
        os.rename(self._at(src), self._at(dest))


class _Mtools:
    """Edits of a FAT filesystem with mtools (vfat does not mount here)."""

    def __init__(self, disk, start):
        self.drive = f"{disk}@@{start}"

    def _run(self, *args):
        fstools.run([args[0], "-i", self.drive, *args[1:]],
                      env=fstools.MTOOLS_ENV)

    def put(self, src, dest):
        self._run("mcopy", "-s", "-m", "-o", "-Q", src, f"::/{dest}")

    def rm(self, path, recursive):
        self._run("mdeltree" if recursive else "mdel", f"::/{path}")

    def mkdir(self, path):
        self._run("mmd", f"::/{path}")

    def mv(self, src, dest, is_dir=False):
        # mmove upper-cases a new 8.3 name ("moved.bin" -> "MOVED.BIN"),
        # mcopy keeps its case: copy within the filesystem, then remove.
        self._run("mcopy", "-s", "-m", "-Q", f"::/{src}", f"::/{dest}")
        self.rm(src, recursive=is_dir)


@contextlib.contextmanager
def _sigint_held():
    """Hold Ctrl-C (and SIGTERM, SIGHUP, which the runner turns into the
    same clean-up) back while a loop device or a mount is set up or torn
    down: Python does not wait for a tool it was running when interrupted,
    which could then attach or mount after our clean-up has run.  The
    interrupt is delivered as soon as the step is over."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {
        signal.SIGINT, signal.SIGTERM, signal.SIGHUP})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _enter_mount(stack, disk, area, mnt):
    kind, family = area["filesystem"], FAMILIES[area["filesystem"]]
    dev = stack.enter_context(fstools.loop_device(
        disk, area["start"], area["size"], read_only=False))
    if family == "ntfs":
        return stack.enter_context(fstools.ntfs_mount(dev, mnt, "rw"))
    fstools.run(["mount", "-t", kind, dev, mnt] if family == "ext"
                  else ["mount.exfat-fuse", dev, mnt])
    stack.callback(fstools.run, ["umount", mnt])
    return mnt


@contextlib.contextmanager
def _mount(disk, area, scratch):
    if FAMILIES[area["filesystem"]] == "fat":
        yield _Mtools(disk, area["start"])
        return
    mnt = os.path.join(scratch, "mnt")
    os.makedirs(mnt, exist_ok=True)
    stack = contextlib.ExitStack()
    try:
        with _sigint_held():
            root = _enter_mount(stack, disk, area, mnt)
        yield _Mounted(root)
    finally:
        with _sigint_held():
            stack.close()


def _fsck(disk, area):
    family = FAMILIES[area["filesystem"]]
    if family == "exfat":
        with fstools.loop_device(disk, area["start"], area["size"]) as dev:
            proc = subprocess.run(["fsck.exfat", "-n", dev],
                                  capture_output=True, text=True,
                                  env=tool_env())
        return proc.returncode == 0, proc.stdout + proc.stderr
    return demodisk.fsck(disk, area["start"], area["size"],
                         area["filesystem"])


def _settings(image_path):
    """What a new generation of an image keeps from the old one: volume
    size, chunk size, and which partitions were captured (None: all)."""
    with ImageReader(image_path) as reader:
        meta = reader.metadata
        captured = [a["partition"] for a in meta["areas"]
                    if a["kind"] == "partition"]
        table = [p["number"] for p in meta["table"].get("partitions", [])]
        return {"split": current_split(reader),
                "chunk_size": reader.chunk_size,
                "partitions": None if sorted(captured) == sorted(table)
                else captured}


def check_request(image_path, number, op, paths, recursive=False,
                  source=None):
    """Refuse, before any work, an edit that cannot succeed.  Returns the
    area, the cleaned paths (a put or mv onto a directory lands inside it,
    by the source's name) and whether the path removed or moved is a
    directory."""
    with Image(image_path) as image:
        area = image.area(number)
        fs = image.filesystem(number)
        paths = [_clean(p) for p in paths]
        node = None

        def exists(path):
            try:
                return fs.lookup(path)
            except InputError:
                return None

        def parent_dir(path):
            parent = path.rpartition("/")[0]
            node = fs.lookup(parent)
            if not node.is_dir:
                raise InputError(f"{fs.where}/{parent}: not a directory")

        if op in ("rm", "mv"):
            node = fs.lookup(paths[0])
            if not paths[0]:
                raise InputError(f"{fs.where}/: the root cannot be {op}ed")
            if op == "rm" and node.is_dir and not recursive:
                raise InputError(f"{fs.where}/{paths[0]}: is a directory "
                                 f"(use -r)")
        if op in ("put", "mv"):
            name = os.path.basename(os.path.normpath(source)) \
                if op == "put" else paths[0].rpartition("/")[2]
            dest = exists(paths[-1])
            if dest is not None and dest.is_dir:
                paths[-1] = f"{paths[-1]}/{name}".lstrip("/")
                dest = exists(paths[-1])
            parent_dir(paths[-1])
            if op == "mv" and dest is not None:
                raise InputError(f"{fs.where}/{paths[-1]}: already exists")
            if op == "put" and dest is not None and dest.is_dir != \
                    os.path.isdir(source):
                raise InputError(f"{fs.where}/{paths[-1]}: exists and is "
                                 f"{'a' if dest.is_dir else 'not a'} "
                                 f"directory")
        if op == "mkdir":
            if exists(paths[0]) is not None:
                raise InputError(f"{fs.where}/{paths[0]}: already exists")
            parent_dir(paths[0])
        return area, paths, bool(node and node.is_dir)


def _apply(fs, op, paths, source, recursive, is_dir):
    if op == "put":
        fs.put(source, paths[0])
    elif op == "rm":
        fs.rm(paths[0], recursive)
    elif op == "mkdir":
        fs.mkdir(paths[0])
    else:
        fs.mv(paths[0], paths[1], is_dir)


def _change(disk, area, scratch, what, action):
    """Run action(fs) on the partition, then fsck it."""
    try:
        with _mount(disk, area, scratch) as fs:
            action(fs)
    except fstools.ToolError as exc:
        raise EditError(f"{what} failed, image unchanged: {exc}") from None
    except OSError as exc:
        raise EditError(f"{what} failed, image unchanged: "
                        f"{exc.strerror or exc}") from None
    with _sigint_held():
        clean, output = _fsck(disk, area)
    if not clean:
        tail = " | ".join(output.strip().splitlines()[-3:])
        raise EditError(f"{what}: partition {area['partition']} does not "
                        f"check clean afterwards; image unchanged: {tail}")


def _mount_points():
    with open("/proc/mounts", encoding="utf-8", errors="replace") as f:
        for line in f:
            yield re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)),
                         line.split()[1])


def _release(scratch, disk):
    """Whatever an interrupt at a bad moment (inside mount or losetup, say)
    left behind: unmount what is under the scratch directory and detach
    the loop devices over the scratch disk, so it can be removed."""
    for point in _mount_points():
        if point.startswith(scratch + os.sep):
            # A plain umount waits for the filesystem to be released, so
            # the loop device below can go; lazy only when that fails.
            if subprocess.run(["umount", point], env=tool_env(),
                              capture_output=True).returncode:
                subprocess.run(["umount", "-l", point], env=tool_env(),
                               capture_output=True)
    found = subprocess.run(["losetup", "-j", disk], env=tool_env(),
                           capture_output=True, text=True).stdout
    for line in found.splitlines():
        subprocess.run(["losetup", "-d", line.split(":")[0]], env=tool_env(),
                       capture_output=True)


def edit(image_path, number, op, paths, *, source=None, recursive=False,
         threads=None):
    """Apply `op` ("put", "rm", "mkdir", "mv") to partition `number` of the
    image and write the new image over it.  Returns capture's summary."""
    writable(image_path)
    if source is not None and not os.path.lexists(source):
        raise InputError(f"{source}: no such file or directory")
    area, paths, is_dir = check_request(image_path, number, op, paths,
                                        recursive, source)
    directory = os.path.dirname(os.path.abspath(image_path))
    scratch = None
    try:
        # Made and removed with Ctrl-C held back: an interrupt inside
        # either step would leave the scratch directory behind.
        with _sigint_held():
            scratch = tempfile.mkdtemp(prefix=".imgx-edit-", dir=directory)
        return _edit_in(scratch, image_path, area, op, paths, source,
                        recursive, is_dir, threads)
    finally:
        if scratch is not None:
            with _sigint_held():
                shutil.rmtree(scratch, ignore_errors=True)


def _edit_in(scratch, image_path, area, op, paths, source, recursive, is_dir,
             threads):
    """edit()'s work, in the scratch directory."""
    disk = os.path.join(scratch, "disk.img")
    try:
        with VolumeInput(image_path) as volumes:
            stream = RecordStream(volumes)
            meta = stream.metadata
            run_restore(plan_restore(stream, disk), threads=threads or
                        os.cpu_count())
        _change(disk, area, scratch, f"{image_path}: {op}",
                lambda fs: _apply(fs, op, paths, source, recursive,
                                  is_dir))
    finally:
        _release(scratch, disk)
    settings = _settings(image_path)
    line = " ".join([datetime.now(timezone.utc).isoformat(
        timespec="seconds"), op, *([source] if source else []),
        *(f"{area['partition'] or ''}/{p}" for p in paths)])
    return capture(
        disk, VolumeOutput(image_path, settings["split"]),
        compressor=Compressor(meta["compression"]["codec"],
                              meta["compression"]["level"]),
        partitions=settings["partitions"], raw=meta.get("mode") == "raw",
        description=meta.get("description", ""),
        chunk_size=settings["chunk_size"],
        source_label=meta["source"]["path"],
        extra_metadata={"history": meta.get("history", []) + [line]},
        threads=threads)
