"""A real filesystem without file locks, for tests: a tiny FUSE server
that speaks the kernel's protocol on /dev/fuse (no library) and answers
every lock request with ENOLCK, as an NFS mount without its lock daemon
does.  It holds one regular file, NAME, of SIZE zero bytes, read-only.

The kernel really returns ENOLCK from flock(2) on it: with FUSE_FLOCK_LOCKS
granted at INIT, flock becomes a FUSE_SETLK request, answered here.
Needs root (mount(2)) and /dev/fuse."""

import contextlib
import ctypes
import errno
import os
import struct
import threading

IN_HEADER = struct.Struct("<IIQQIIII")      # len opcode unique nodeid uid..
OUT_HEADER = struct.Struct("<IiQ")          # len error unique
ATTR = struct.Struct("<QQQQQQIIIIIIIIII")   # struct fuse_attr, 88 bytes

LOOKUP, FORGET, GETATTR, OPEN, READ, RELEASE, FLUSH, INIT = \
    1, 2, 3, 14, 15, 18, 25, 26
OPENDIR, RELEASEDIR, GETLK, SETLK, SETLKW, ACCESS, INTERRUPT = \
    27, 29, 31, 32, 33, 34, 36
BATCH_FORGET = 42
FUSE_FLOCK_LOCKS = 1 << 10
ROOT, FILE = 1, 2


class NoLockFS:
    def __init__(self, mountpoint, name="lab.rdi", size=4096):
        self.mountpoint = os.fspath(mountpoint)
        self.name = name.encode()
        self.size = size
        self.fd = None

    @property
    def path(self):
        return os.path.join(self.mountpoint, self.name.decode())

    def _attr(self, node):
        if node == ROOT:
            mode, size, nlink = 0o40755, 0, 2
        else:
            mode, size, nlink = 0o100444, self.size, 1
        return ATTR.pack(node, size, 0, 0, 0, 0, 0, 0, 0, mode, nlink,
                         0, 0, 0, 4096, 0)

    def _reply(self, unique, error=0, body=b""):
        os.write(self.fd, OUT_HEADER.pack(OUT_HEADER.size + len(body),
                                          -error, unique) + body)

    def _answer(self, opcode, unique, node, payload):
        if opcode in (FORGET, BATCH_FORGET, INTERRUPT):
            return                                   # no reply wanted
        if opcode == INIT:
            major, minor, readahead, _ = struct.unpack_from("<IIII", payload)
            body = struct.pack("<IIIIHHIIHHI", 7, min(minor, 31), readahead,
                               FUSE_FLOCK_LOCKS, 1, 1, 4096, 1, 1, 0, 0)
            self._reply(unique, body=body + bytes(64 - len(body)))
        elif opcode == LOOKUP:
            if node != ROOT or payload.rstrip(b"\0") != self.name:
                self._reply(unique, errno.ENOENT)
                return
            self._reply(unique, body=struct.pack(
                "<QQQQII", FILE, 0, 1, 1, 0, 0) + self._attr(FILE))
        elif opcode == GETATTR:
            self._reply(unique, body=struct.pack("<QII", 1, 0, 0) +
                        self._attr(node))
        elif opcode in (OPEN, OPENDIR):
            self._reply(unique, body=struct.pack("<QII", 0, 0, 0))
        elif opcode == READ:
            offset, size = struct.unpack_from("<QQI", payload)[1:]
            self._reply(unique, body=bytes(max(0, min(size,
                                                      self.size - offset))))
        elif opcode in (RELEASE, RELEASEDIR, FLUSH, ACCESS):
            self._reply(unique)
        elif opcode in (GETLK, SETLK, SETLKW):
            self._reply(unique, errno.ENOLCK)
        else:
            self._reply(unique, errno.ENOSYS)

    def _serve(self):
        while True:
            try:
                request = os.read(self.fd, (1 << 17) + (1 << 12))
            except OSError:          # ENODEV: unmounted; EBADF: closed
                return
            length, opcode, unique, node = IN_HEADER.unpack_from(request)[:4]
            try:
                self._answer(opcode, unique, node,
                             request[IN_HEADER.size:length])
            except OSError:
                pass                 # the request was interrupted

    def __enter__(self):
        self.fd = os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC)
        libc = ctypes.CDLL(None, use_errno=True)
        options = (f"fd={self.fd},rootmode=40000,user_id=0,group_id=0"
                   ).encode()
        if libc.mount(b"nolockfs", self.mountpoint.encode(),
                      b"fuse.nolockfs", 0x2 | 0x4, options) != 0:
            code = ctypes.get_errno()
            os.close(self.fd)
            raise OSError(code, os.strerror(code), self.mountpoint)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.umount2(self.mountpoint.encode(), 2)          # MNT_DETACH
        with contextlib.suppress(OSError):
            os.close(self.fd)
        self.thread.join(5)
