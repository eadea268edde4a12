"""The service FAT through a mount: the imaging environment's way (it has
no mtools), over a loop device of the partition's FAT area made here with
the loop ioctls (the environment's busybox losetup has no --sizelimit and
its mount loops only regular files).  :class:`MountFat` is fatfs's Fat
API over the mounted tree; vfat does not mount on the build host, so the
loop and mount are tested there with another filesystem, and the vfat
path by the boot tests (part H)."""

import contextlib
import fcntl
import os
import shutil
import struct
import tempfile

from .. import sighold
from ..errors import InputError, NoSpaceError, ToolError
from ..host import tools
from .fatfs import MOUNT_OPTIONS, Fat, fs_area, safe_path


@contextlib.contextmanager
def mounted(service, where, fstype="vfat"):
    """The FAT of `service` mounted read-write at `where` for the job (the
    environment), over a loop device of its FAT area (`fstype` other than
    vfat only for the tests of a host where vfat does not mount)."""
    start, size = fs_area(service)
    os.makedirs(where, exist_ok=True)
    with loop_over(service.disk, start, size) as dev:
        _one_line(["mount", "-t", fstype, "-o", MOUNT_OPTIONS
                   if fstype == "vfat" else "rw", dev, where],
                  f"{service.disk}: mounting the service FAT ({dev}) at "
                  f"{where}")
        try:
            yield where
        finally:
            _one_line(["umount", where], f"{service.disk}: unmounting the "
                      f"service FAT at {where}")


def _one_line(args, what):
    """Run `args`; ToolError naming `what` with the first line of what the
    tool said (mount adds a second, "dmesg(1) may have more information"):
    the step line and the state's "error" stay one line."""
    proc = tools.run(args, check=False)
    if proc.returncode != 0:
        said = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        raise ToolError(f"{what} failed (exit {proc.returncode}): "
                        f"{said[0].strip() if said else 'no message'}",
                        proc.returncode, proc.stdout + proc.stderr)


# linux/loop.h: the environment's busybox losetup has no --sizelimit and
# its mount loops only regular files, so the loop device is made here.
LOOP_SET_FD, LOOP_CLR_FD, LOOP_SET_STATUS64 = 0x4C00, 0x4C01, 0x4C04
LOOP_CTL_GET_FREE = 0x4C82
#: struct loop_info64: lo_device, lo_inode, lo_rdevice, lo_offset,
#: lo_sizelimit (u64), lo_number, lo_encrypt_type, lo_encrypt_key_size,
#: lo_flags (u32), lo_file_name[64], lo_crypt_name[64], lo_encrypt_key[32],
#: lo_init[2] (u64): 232 bytes.
LOOP_INFO64 = struct.Struct("<5Q4I64s64s32s2Q")
assert LOOP_INFO64.size == 232


@contextlib.contextmanager
def loop_over(path, offset, size):
    """A read-write loop device over bytes [offset, offset+size) of
    `path` (a disk or a file), detached on exit."""
    with sighold.held():
        ctl = os.open("/dev/loop-control", os.O_RDWR)
        try:
            number = fcntl.ioctl(ctl, LOOP_CTL_GET_FREE)
        finally:
            os.close(ctl)
        dev = f"/dev/loop{number}"
        backing = os.open(os.fspath(path), os.O_RDWR)
        try:
            loop = os.open(dev, os.O_RDWR)
        except BaseException:
            os.close(backing)
            raise
        try:
            fcntl.ioctl(loop, LOOP_SET_FD, backing)
        except BaseException:
            os.close(loop)
            os.close(backing)
            raise
        os.close(backing)
        try:
            name = os.fsencode(os.path.abspath(path))[:63]
            fcntl.ioctl(loop, LOOP_SET_STATUS64, LOOP_INFO64.pack(
                0, 0, 0, offset, size, 0, 0, 0, 0, name, b"", b"", 0, 0))
        except BaseException:
            fcntl.ioctl(loop, LOOP_CLR_FD, 0)
            os.close(loop)
            raise
    try:
        yield dev
    finally:
        with sighold.held():
            try:
                fcntl.ioctl(loop, LOOP_CLR_FD, 0)
            finally:
                os.close(loop)


class MountFat(Fat):
    """The FAT through a temporary vfat mount of a loop device over its
    area (the environment's way; vfat does not mount on the build host)."""

    def __init__(self, service, fstype="vfat"):
        super().__init__(service)
        self._dir = tempfile.mkdtemp(prefix="bwpart-fat.")
        self._mount = mounted(service, self._dir, fstype)
        try:
            self._mount.__enter__()
        except BaseException:
            os.rmdir(self._dir)
            raise

    def close(self):
        if self._mount is not None:
            self._mount.__exit__(None, None, None)
            self._mount = None
            os.rmdir(self._dir)

    def _p(self, fat_path):
        return os.path.join(self._dir, safe_path(fat_path).lstrip("/"))

    def _io(self, what, action):
        try:
            return action()
        except FileNotFoundError:
            raise InputError(f"{self.where}: no {what}") from None
        except OSError as exc:
            if exc.errno in (28, 27):
                raise NoSpaceError(f"{self.where}: no space left for "
                                   f"{what}") from None
            raise InputError(f"{self.where}: {what}: {exc.strerror}") \
                from None

    def put(self, src, fat_path):
        dest = self._p(fat_path)

        def write():
            with open(dest, "wb") as out:
                if isinstance(src, (bytes, bytearray)):
                    out.write(src)
                else:
                    with open(src, "rb") as f:
                        shutil.copyfileobj(f, out, 1 << 20)
                out.flush()
                os.fsync(out.fileno())
        self._io(fat_path, write)

    def get(self, fat_path):
        def read():
            with open(self._p(fat_path), "rb") as f:
                return f.read()
        return self._io(f"file {fat_path}", read)

    def get_to(self, fat_path, local_path):
        self._io(f"file {fat_path}",
                 lambda: shutil.copyfile(self._p(fat_path), local_path))

    def ls(self, fat_dir="/"):
        base = self._p(fat_dir)

        def listing():
            out = []
            with os.scandir(base) as it:
                for e in it:
                    is_dir = e.is_dir()
                    out.append((e.name, 0 if is_dir else e.stat().st_size,
                                is_dir))
            return out
        return self._io(f"directory {fat_dir}", listing)

    def rm(self, fat_path, recursive=False):
        path = self._p(fat_path)
        if os.path.isdir(path):
            self._io(fat_path, (lambda: shutil.rmtree(path)) if recursive
                     else (lambda: os.rmdir(path)))
        else:
            self._io(fat_path, lambda: os.unlink(path))

    def mkdir(self, fat_path):
        self._io(fat_path, lambda: os.mkdir(self._p(fat_path)))

    def rename(self, src, dest):
        self._io(src, lambda: os.replace(self._p(src), self._p(dest)))
        os.sync()

    def free(self):
        st = os.statvfs(self._dir)
        return st.f_bavail * st.f_frsize
