"""Edits of a mounted filesystem that never leave it.

An edit mounts the image's filesystem on a scratch directory, and the
kernel would follow a symlink of the image (``etc/resolv.conf ->
/run/...``, or one made to harm) onto the host.  So no path inside the
image is ever handed to the kernel whole.  :class:`Root` walks it one
component at a time from a directory fd of the mount root, with
``O_NOFOLLOW | O_DIRECTORY`` fds, and resolves each symlink itself, as the
filesystem's own root would: an absolute target starts again at the mount
root, ``..`` stops there.  The last component is never followed: `put`
over a symlink replaces the link, `rm` and `mv` act on the link.  Every
change is then made relative to the directory fd (``*at`` calls), so
nothing can redirect it.

Nothing here knows imgx: it could serve the read side's resolver of
in-image links as well (the rule is the same; there the names come from
the filesystem reader instead of a directory fd).

`put` copies a file or a tree with its owner, group, mode, times and
extended attributes, and keeps holes; files that are hard links of one
another in the tree are linked again (link(2) at the second name, inside
the root), and where the filesystem holds no hard links they are copies,
counted in ``copies``.  Where the filesystem cannot hold
one of them (NTFS through ntfs-3g, exFAT), `strict=False` lets that one
go instead of failing the edit.
"""

import errno
import os
import shutil
import stat

_MAX_LINKS = 40
_PATH_DIR = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_UNSUPPORTED = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS,
                errno.EACCES, errno.EINVAL}


def _parts(path):
    return [p for p in path.split("/") if p and p != "."]


class Root:
    """A directory tree edited through fds, never left; use as a context
    manager.  `strict`: metadata the filesystem refuses is an error."""

    def __init__(self, path, strict=True):
        self.fd = os.open(path, _PATH_DIR)
        self.strict = strict
        self.linked = {}    # (st_dev, st_ino) of a source -> its copy's path
        self.copies = {}    # why hard links were made copies -> how many

    def close(self):
        os.close(self.fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- resolving -------------------------------------------------------
    def _walk(self, path):
        """An O_PATH fd of directory `path`, every symlink on the way
        resolved inside the root (ELOOP after 40)."""
        stack = [self.fd]
        todo = _parts(path)
        links = 0
        try:
            while todo:
                part = todo.pop(0)
                if part == "..":
                    if len(stack) > 1:
                        os.close(stack.pop())
                    continue
                here = stack[-1]
                st = os.stat(part, dir_fd=here, follow_symlinks=False)
                if stat.S_ISLNK(st.st_mode):
                    links += 1
                    if links > _MAX_LINKS:
                        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP),
                                      path)
                    target = os.readlink(part, dir_fd=here)
                    if target.startswith("/"):
                        while len(stack) > 1:
                            os.close(stack.pop())
                    todo[0:0] = _parts(target)
                    continue
                if not stat.S_ISDIR(st.st_mode):
                    raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR),
                                  path)
                stack.append(os.open(part, _PATH_DIR, dir_fd=here))
            return os.dup(stack[-1])
        finally:
            for fd in stack[1:]:
                os.close(fd)

    def parent(self, path):
        """(O_PATH fd of the directory holding `path`, its last name).  The
        caller closes the fd."""
        parts = _parts(path)
        if not parts or parts[-1] == "..":
            raise OSError(errno.EINVAL, "not a name in a directory", path)
        return self._walk("/".join(parts[:-1])), parts[-1]

    # --- edits -----------------------------------------------------------
    def mkdir(self, path):
        fd, name = self.parent(path)
        try:
            os.mkdir(name, dir_fd=fd)
        finally:
            os.close(fd)

    def rm(self, path, recursive):
        fd, name = self.parent(path)
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode):
                os.unlink(name, dir_fd=fd)
            elif recursive:
                shutil.rmtree(name, dir_fd=fd)   # fd-based, never follows
            else:
                os.rmdir(name, dir_fd=fd)
        finally:
            os.close(fd)

    def mv(self, src, dest):
        src_fd, src_name = self.parent(src)
        try:
            dest_fd, dest_name = self.parent(dest)
            try:
                os.rename(src_name, dest_name, src_dir_fd=src_fd,
                          dst_dir_fd=dest_fd)
            finally:
                os.close(dest_fd)
        finally:
            os.close(src_fd)

    def put(self, source, dest, force=False):
        """Copy the host file or tree `source` to `dest`.  An existing
        entry in the way is replaced only with `force` (a directory onto a
        directory merges); else FileExistsError."""
        fd, name = self.parent(dest)
        try:
            self._copy(source, fd, name, force, "/".join(_parts(dest)))
        finally:
            os.close(fd)

    def _hard_link(self, st, fd, name):
        """Make `name` a second name of the copy of an inode already put
        (a hard link within the put tree); False when there is none, or
        the filesystem holds no hard links (counted in `copies`)."""
        first = self.linked.get((st.st_dev, st.st_ino))
        if first is None:
            return False
        src_fd, src_name = self.parent(first)
        try:
            os.link(src_name, name, src_dir_fd=src_fd, dst_dir_fd=fd,
                    follow_symlinks=False)
            return True
        except OSError as exc:
            if exc.errno not in _UNSUPPORTED | {errno.EMLINK}:
                raise
            why = exc.strerror or os.strerror(exc.errno)
            self.copies[why] = self.copies.get(why, 0) + 1
            return False
        finally:
            os.close(src_fd)

    def _existing(self, fd, name, force, want_dir):
        """Clear the way for a new entry `name`; True when a directory
        that is kept (a merge) is there."""
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if not force:
            raise FileExistsError(errno.EEXIST, "already exists", name)
        if stat.S_ISDIR(st.st_mode):
            if want_dir:
                return True
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR),
                                    name)
        os.unlink(name, dir_fd=fd)
        return False

    def _copy(self, source, fd, name, force, path):
        st = os.stat(source, follow_symlinks=False)
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            # A directory merged into keeps its own owner, mode and times.
            made = not self._existing(fd, name, force, True)
            if made:
                os.mkdir(name, 0o700, dir_fd=fd)
            out = os.open(name, _OPEN_DIR, dir_fd=fd)
            try:
                for entry in sorted(os.listdir(source)):
                    self._copy(os.path.join(source, entry), out, entry,
                               force, f"{path}/{entry}")
                if made:
                    self._keep(out, source, st)
            finally:
                os.close(out)
        elif stat.S_ISREG(mode):
            self._existing(fd, name, force, False)
            if st.st_nlink > 1 and self._hard_link(st, fd, name):
                return
            out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL |
                          os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=fd)
            try:
                with open(source, "rb") as src:
                    _copy_data(src.fileno(), out, st.st_size)
                self._keep(out, source, st)
            finally:
                os.close(out)
            if st.st_nlink > 1:
                self.linked.setdefault((st.st_dev, st.st_ino), path)
        elif stat.S_ISLNK(mode):
            self._existing(fd, name, force, False)
            os.symlink(os.readlink(source), name, dir_fd=fd)
            self._tolerant(os.chown, name, st.st_uid, st.st_gid, dir_fd=fd,
                           follow_symlinks=False)
            self._tolerant(os.utime, name, dir_fd=fd, follow_symlinks=False,
                           ns=(st.st_atime_ns, st.st_mtime_ns))
        else:
            raise OSError(errno.EINVAL, "not a file, directory or symlink",
                          source)

    def _tolerant(self, call, *args, **kw):
        try:
            call(*args, **kw)
        except OSError as exc:
            if self.strict or exc.errno not in _UNSUPPORTED:
                raise

    def _keep(self, fd, source, st):
        """Owner, group, mode (after chown, which clears set-id bits),
        xattrs, then times (last: the others change ctime only)."""
        self._tolerant(os.fchown, fd, st.st_uid, st.st_gid)
        self._tolerant(os.fchmod, fd, stat.S_IMODE(st.st_mode))
        try:
            names = os.listxattr(source, follow_symlinks=False)
        except OSError as exc:
            if exc.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
            names = []
        for attr in names:
            value = os.getxattr(source, attr, follow_symlinks=False)
            self._tolerant(os.setxattr, fd, attr, value)
        self._tolerant(os.utime, fd, ns=(st.st_atime_ns, st.st_mtime_ns))


def _copy_data(src, out, size):
    """Copy the data runs of `src`, leaving its holes as holes."""
    offset = 0
    while offset < size:
        try:
            start = os.lseek(src, offset, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:         # only a hole is left
                break
            raise
        end = os.lseek(src, start, os.SEEK_HOLE)
        os.lseek(src, start, os.SEEK_SET)
        os.lseek(out, start, os.SEEK_SET)
        left = end - start
        while left:
            data = os.read(src, min(left, 1 << 20))
            if not data:
                break
            view = memoryview(data)
            while view:
                view = view[os.write(out, view):]
            left -= len(data)
        offset = end
    os.ftruncate(out, size)
