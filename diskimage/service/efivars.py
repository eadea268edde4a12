"""UEFI variables through efivarfs (Documentation/filesystems/efivarfs.rst).

Each variable is a file NAME-GUID (the vendor GUID in lower case) whose
bytes are the u32 attributes (little-endian) followed by the data.  A write
must hand attributes and data to the kernel in ONE write() call; efivarfs
marks most variables immutable (FS_IMMUTABLE_FL), so a delete or an
overwrite clears that flag first (FS_IOC_GETFLAGS / FS_IOC_SETFLAGS, as
`chattr -i` does).  The directory is mounted (`mount -t efivarfs`) when it
is empty and still sysfs (the mount point of efivarfs, not mounted yet)
and the machine was booted by UEFI (/sys/firmware/efi exists), before
any read or write (read unmounted, it would show no variables at all);
boot media load efivarfs.ko at boot, nothing here runs modprobe.

The root is a parameter: the logic and the file format can be tested on a
plain directory; the real thing is tested under OVMF in QEMU.
"""

import errno
import fcntl
import os
import re
import struct

from ..errors import NO_SPACE_ERRNOS, InputError, NoSpaceError, ToolError
from ..host import sysfs, tools

EFI_VARIABLE_NON_VOLATILE = 0x00000001
EFI_VARIABLE_BOOTSERVICE_ACCESS = 0x00000002
EFI_VARIABLE_RUNTIME_ACCESS = 0x00000004
NV_BS_RT = (EFI_VARIABLE_NON_VOLATILE | EFI_VARIABLE_BOOTSERVICE_ACCESS
            | EFI_VARIABLE_RUNTIME_ACCESS)

ROOT = "/sys/firmware/efi/efivars"
FIRMWARE = "/sys/firmware/efi"
MOUNTS = "/proc/self/mounts"

# linux/fs.h: _IOR('f', 1, long) and _IOW('f', 2, long) on 64-bit; the
# kernel reads and writes an int through them.
FS_IOC_GETFLAGS = 0x80086601
FS_IOC_SETFLAGS = 0x40086602
FS_IMMUTABLE_FL = 0x00000010

_NAME = re.compile(r"^[^/\0-]{1,512}$")
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-"
                   r"[0-9a-f]{12}$")
#: errnos of an ioctl the filesystem does not have (a plain directory's
#: tmpfs): no flag to clear
_NO_FLAGS = (errno.ENOTTY, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS)


def var_file(name, guid):
    """The efivarfs file name of a variable, checked."""
    guid = str(guid).lower()
    if not _NAME.match(str(name)) or not _GUID.match(guid):
        raise InputError(f"{name}-{guid}: not a UEFI variable name "
                         f"(NAME-GUID, the name without '-' or '/')")
    return f"{name}-{guid}"


def filesystem_of(path, mounts=MOUNTS):
    """The type of the filesystem `path` is on ("sysfs", "efivarfs" ...),
    from the longest mount point in `mounts` (/proc/self/mounts) that holds
    it; None when none does."""
    path = os.path.realpath(path)
    best, kind = "", None
    try:
        with open(mounts, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split(" ")
        if len(fields) < 3:
            continue
        point = sysfs.unescape(fields[1])
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fields[2]
    return kind


class Efivars:
    """The UEFI variables of the running machine (or of a directory laid
    out as efivarfs)."""

    def __init__(self, root=ROOT, firmware=FIRMWARE):
        self.root = root
        self.firmware = firmware
        self._ready = False

    def __repr__(self):
        return f"Efivars({self.root!r})"

    def _path(self, name, guid):
        return os.path.join(self.root, var_file(name, guid))

    def _populated(self):
        try:
            return bool(os.listdir(self.root))
        except OSError:
            return False

    def _ensure(self):
        """Mounted before the first look at the directory: an empty one
        that is still sysfs on a UEFI machine is an efivarfs not mounted
        yet (read as it is, it would show no variables, and a write there
        fails), so every operation mounts it first."""
        if self._ready:
            return
        if not self._populated() and os.path.isdir(self.firmware) and \
                filesystem_of(self.root) == "sysfs":
            self.mount()
            if not self._populated():
                raise ToolError(f"{self.root}: efivarfs mounted but it "
                                f"shows no variables")
        self._ready = True

    def available(self):
        """True when variables can be read here: the directory has them, or
        it could be mounted (UEFI machine, empty directory).  A mount that
        fails raises ToolError."""
        if not self._populated() and not os.path.isdir(self.firmware):
            return False
        self._ensure()
        return self._populated()

    def mount(self):
        """Mount efivarfs on the root (the machine must be UEFI)."""
        if not os.path.isdir(self.firmware):
            raise InputError(f"{self.root}: not a UEFI machine "
                             f"({self.firmware} is missing)")
        os.makedirs(self.root, exist_ok=True)
        tools.run(["mount", "-t", "efivarfs", "efivarfs", self.root],
                  what=f"mount efivarfs on {self.root}")

    def names(self, guid=None):
        """(name, guid) of every variable, of one vendor GUID if given."""
        self._ensure()
        try:
            entries = sorted(os.listdir(self.root))
        except OSError as exc:
            raise InputError(f"{self.root}: {exc.strerror}") from None
        found = []
        for entry in entries:
            # NAME-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx: the GUID is the
            # last 36 characters
            if len(entry) < 38 or entry[-37] != "-":
                continue
            name, vendor = entry[:-37], entry[-36:]
            if _GUID.match(vendor) and (guid is None
                                        or vendor == str(guid).lower()):
                found.append((name, vendor))
        return found

    def read(self, name, guid):
        """(attributes, data) of a variable, None when it does not exist."""
        path = self._path(name, guid)
        self._ensure()
        try:
            with open(path, "rb", buffering=0) as f:
                raw = f.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ToolError(f"{var_file(name, guid)}: cannot read: "
                            f"{exc.strerror}") from None
        if len(raw) < 4:
            raise InputError(f"{var_file(name, guid)}: {len(raw)} bytes, "
                             f"shorter than its 4 bytes of attributes")
        return struct.unpack_from("<I", raw)[0], raw[4:]

    def write(self, name, guid, data, attrs=NV_BS_RT):
        """Create or replace a variable: one write() of attributes + data."""
        path = self._path(name, guid)
        self._ensure()
        payload = struct.pack("<I", attrs) + bytes(data)
        if os.path.exists(path):
            self._clear_immutable(path, name, guid)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ToolError(f"{var_file(name, guid)}: cannot open for "
                            f"writing: {exc.strerror}") from None
        try:
            done = os.write(fd, payload)
            if done != len(payload):
                raise ToolError(f"{var_file(name, guid)}: short write, "
                                f"{done} of {len(payload)} bytes")
            # a plain file keeps a longer old tail; efivarfs reports the
            # variable's new size, so this is a no-op there
            if os.fstat(fd).st_size > len(payload):
                os.ftruncate(fd, len(payload))
        except OSError as exc:
            if exc.errno in NO_SPACE_ERRNOS:
                raise NoSpaceError(f"{var_file(name, guid)}: the firmware's "
                                   f"variable store is full") from None
            raise ToolError(f"{var_file(name, guid)}: cannot write: "
                            f"{exc.strerror} (the firmware refused it)"
                            if exc.errno == errno.EINVAL else
                            f"{var_file(name, guid)}: cannot write: "
                            f"{exc.strerror}") from None
        finally:
            os.close(fd)

    def delete(self, name, guid):
        """Delete a variable (the immutable flag cleared first); True when
        it existed."""
        path = self._path(name, guid)
        self._ensure()
        if not os.path.exists(path):
            return False
        self._clear_immutable(path, name, guid)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise ToolError(f"{var_file(name, guid)}: cannot delete: "
                            f"{exc.strerror}") from None
        return True

    @staticmethod
    def _clear_immutable(path, name, guid):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            raise ToolError(f"{var_file(name, guid)}: cannot open: "
                            f"{exc.strerror}") from None
        try:
            try:
                raw = fcntl.ioctl(fd, FS_IOC_GETFLAGS, struct.pack("i", 0))
            except OSError as exc:
                if exc.errno in _NO_FLAGS:
                    return
                raise
            flags = struct.unpack("i", raw)[0]
            if flags & FS_IMMUTABLE_FL:
                fcntl.ioctl(fd, FS_IOC_SETFLAGS,
                            struct.pack("i", flags & ~FS_IMMUTABLE_FL))
        except OSError as exc:
            raise ToolError(f"{var_file(name, guid)}: cannot clear the "
                            f"immutable flag: {exc.strerror}") from None
        finally:
            os.close(fd)
