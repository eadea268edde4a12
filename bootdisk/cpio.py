"""The newc ("SVR4 with no CRC") cpio archive the Linux kernel unpacks as its
initramfs (Documentation/driver-api/early-userspace/buffer-format.rst).

Each member is a 110-byte ASCII header, the NUL-terminated name, padding to
a multiple of 4, the data, padding to a multiple of 4; the archive ends with a
member named ``TRAILER!!!``.  The header is thirteen 8-digit hex fields:

    c_magic "070701", c_ino, c_mode, c_uid, c_gid, c_nlink, c_mtime,
    c_filesize, c_devmajor, c_devminor, c_rdevmajor, c_rdevminor,
    c_namesize, c_check

Directories and symbolic links (target as data) are members like files;
device nodes are not needed (the init mounts devtmpfs).  Everything is owned
by root, and mtimes are fixed so the same inputs give the same bytes.
"""

import stat

from diskimage.errors import InputError

MAGIC = b"070701"
TRAILER = "TRAILER!!!"
_FIELDS = ("c_ino", "c_mode", "c_uid", "c_gid", "c_nlink", "c_mtime",
           "c_filesize", "c_devmajor", "c_devminor", "c_rdevmajor",
           "c_rdevminor", "c_namesize", "c_check")
HEADER_SIZE = len(MAGIC) + 8 * len(_FIELDS)
assert HEADER_SIZE == 110


def _pad(n):
    return b"\0" * (-n % 4)


def header(name, mode, size, ino, nlink=1, mtime=0):
    """The header and padded name of one member (bytes)."""
    encoded = name.encode() + b"\0"
    values = {"c_ino": ino, "c_mode": mode, "c_uid": 0, "c_gid": 0,
              "c_nlink": nlink, "c_mtime": mtime, "c_filesize": size,
              "c_devmajor": 0, "c_devminor": 0, "c_rdevmajor": 0,
              "c_rdevminor": 0, "c_namesize": len(encoded), "c_check": 0}
    for field, value in values.items():
        if not 0 <= value <= 0xFFFFFFFF:
            raise InputError(f"cpio member {name!r}: {field} {value} does not "
                             f"fit the newc format")
    head = MAGIC + b"".join(b"%08X" % values[f] for f in _FIELDS)
    return head + encoded + _pad(HEADER_SIZE + len(encoded))


class Writer:
    """Write a newc archive to a binary file object ``out``.

    Names are relative (``bin/busybox``); parent directories must be added
    before their members, as the kernel creates nothing implicitly.
    """

    def __init__(self, out, mtime=0):
        self.out = out
        self.mtime = mtime
        self._ino = 720
        self.names = []
        self.size = 0

    def _write(self, data):
        self.out.write(data)
        self.size += len(data)

    def _member(self, name, mode, data=b""):
        name = name.strip("/")
        if not name or name in self.names:
            raise InputError(f"cpio member {name!r}: empty or given twice")
        self._ino += 1
        nlink = 2 if stat.S_ISDIR(mode) else 1
        self._write(header(name, mode, len(data), self._ino, nlink,
                           self.mtime))
        self._write(data)
        self._write(_pad(len(data)))
        self.names.append(name)

    def directory(self, name, perm=0o755):
        self._member(name, stat.S_IFDIR | perm)

    def file(self, name, data, perm=0o644):
        self._member(name, stat.S_IFREG | perm, bytes(data))

    def symlink(self, name, target):
        self._member(name, stat.S_IFLNK | 0o777, target.encode())

    def close(self):
        """Write the trailer; the archive is then complete."""
        self._ino += 1
        self._write(header(TRAILER, 0, 0, 0, 1, 0))
        # Pad to a 512-byte block like GNU cpio; harmless for the kernel.
        self._write(b"\0" * (-self.size % 512))


def read(data):
    """[(name, mode, bytes)] of a newc archive, for `bootdisk info` and the
    tests; raises InputError on anything that is not newc."""
    members = []
    pos = 0
    while True:
        head = data[pos:pos + HEADER_SIZE]
        if len(head) < HEADER_SIZE or head[:6] != MAGIC:
            raise InputError(f"not a newc cpio member at offset {pos}")
        try:
            values = dict(zip(_FIELDS, (int(head[6 + 8 * i:14 + 8 * i], 16)
                                        for i in range(len(_FIELDS)))))
        except ValueError:
            raise InputError(f"bad cpio header at offset {pos}") from None
        name_end = pos + HEADER_SIZE + values["c_namesize"]
        name = data[pos + HEADER_SIZE:name_end - 1].decode()
        start = name_end + (-(HEADER_SIZE + values["c_namesize"]) % 4)
        end = start + values["c_filesize"]
        if end > len(data):
            raise InputError(f"cpio member {name!r} is cut short")
        if name == TRAILER:
            return members
        members.append((name, values["c_mode"], data[start:end]))
        pos = end + (-values["c_filesize"] % 4)
