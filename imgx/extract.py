"""Copying files and trees out of a filesystem in an image (imgx get).

Names read from an image are untrusted: an entry whose name holds "/" or
NUL, or is "." or "..", is not written (it is reported in
``Report.refused``), and every entry is created relative to a file
descriptor of its parent directory, made by this extraction, with
O_NOFOLLOW: nothing is ever written outside DEST, and no symlink that an
entry made (or that was in DEST before) is followed.  A second entry of the
same name in one directory is refused too.

Files are written under a private ``.imgx-PID-RANDOM.partial`` name
(never ``NAME.partial``, which may be another entry or the user's file)
and renamed when whole, so an interrupted get never leaves a short file
under the real name and removes nothing but its own; runs of
zeros are left as holes (seek), so sparse files stay sparse.  Times are
kept everywhere; modes, and where running as root owners and groups, where
the filesystem has them (ext), extended attributes too; hard links of one
inode are made hard links again within DEST; symlinks are made as
symlinks, their targets unchanged and never followed.  FIFOs, sockets and
device nodes are not copied (``Report.skipped``).
"""

import collections
import dataclasses
import errno
import os
import stat
from dataclasses import dataclass, field

from diskimage.errors import (NO_SPACE_ERRNOS, InputError, NoSpaceError,
                              TargetError, no_space_left)
from diskimage.fs import registry
from diskimage.fs.inpath import unsafe_name
from diskimage.host.identity import refuse_image_over_source
from diskimage.image.browse import Image


BLOCK = 1 << 20
PIECE = 4096                    # the granularity of holes
ZERO = bytes(PIECE)
NAME_MAX = 255                  # bytes of one host name (Linux)
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
SPECIAL = ((stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"),
           (stat.S_ISCHR, "device node"), (stat.S_ISBLK, "device node"))


def copy_stream(src, write):
    while block := src.read(BLOCK):
        write(block)


@dataclass
class Report:
    """What a get wrote, and what it did not (for the command to say)."""

    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    hardlinks: int = 0
    bytes: int = 0
    skipped: collections.Counter = field(
        default_factory=collections.Counter)   # kind -> count
    refused: list = field(default_factory=list)   # (where, name, reason)
    not_kept: dict = field(default_factory=dict)  # what -> why


def write_sparse(src, f):
    """Copy the stream `src` into the file `f`, seeking over 4 KiB pieces
    of zeros; returns the size."""
    size = 0
    while block := src.read(BLOCK):
        view = memoryview(block)
        start = 0                       # first piece not yet written
        for at in range(0, len(view), PIECE):
            piece = view[at:at + PIECE]
            if piece == ZERO[:len(piece)]:
                if start < at:
                    f.write(view[start:at])
                f.seek(len(piece), os.SEEK_CUR)
                start = at + len(piece)
        if start < len(view):
            f.write(view[start:])
        size += len(view)
    f.truncate(size)
    return size


class _Extraction:
    """`top_fd`: the directory the top entry goes into, named `top_dir`
    on the host; `top_where`: the top entry's place in the image (its
    host name may differ: get IMG:1/sub out)."""

    def __init__(self, fs, top_fd, top_dir, top_where):
        self.fs = fs
        self.top_fd = top_fd
        self.top_dir = top_dir
        self.top_where = top_where
        self.keep_mode = registry.lookup(fs.kind).posix
        self.owners = self.keep_mode and os.geteuid() == 0
        self.report = Report()
        self.links = {}                 # inode -> path from top_fd
        self.ancestors = []             # keys of the directories walked
        self.image_files = set()        # (st_dev, st_ino): never replaced
        if self.keep_mode and not self.owners:
            self.report.not_kept["owners and groups"] = "not running as root"

    # --- metadata ------------------------------------------------------
    def _times(self, node, target, dir_fd=None, follow=True):
        if node.mtime is None:
            return
        atime = node.atime if node.atime is not None else node.mtime
        os.utime(target, ns=(int(atime * 1e9), int(node.mtime * 1e9)),
                 dir_fd=dir_fd, follow_symlinks=follow)

    def _meta(self, node, fd):
        """Owner, mode, xattrs and times onto the open file or dir `fd`."""
        if self.owners and node.uid is not None:
            os.fchown(fd, node.uid, node.gid)
        if self.keep_mode:
            os.fchmod(fd, stat.S_IMODE(node.mode))
        for name, value in self.fs.xattrs(node):
            try:
                os.setxattr(fd, name, value)
            except OSError as exc:
                self.report.not_kept.setdefault(
                    f"extended attribute {name}", exc.strerror)
        self._times(node, fd)

    # --- entries -------------------------------------------------------
    def place(self, node, dir_fd, name, rel, where):
        why = unsafe_name(name)
        if not why and len(os.fsencode(name)) > NAME_MAX:
            why = (f"the name is {len(os.fsencode(name))} bytes, more than "
                   f"the host's {NAME_MAX}")
        if not why and _inode(name, dir_fd) in self.image_files:
            why = "it is the image being read (a file of that name in " \
                  "DEST would replace it)"
        if why:
            self.report.refused.append((where, name, why))
        elif node.kind == "file":
            self._file(node, dir_fd, name, rel, where)
        elif node.kind == "symlink":
            self._symlink(node, dir_fd, name, where)
        elif node.is_dir:
            self._dir(node, dir_fd, name, rel, where)
        else:
            kind = next((k for test, k in SPECIAL if test(node.mode)),
                        "special file")
            self.report.skipped[kind] += 1

    def _clear(self, dir_fd, name, where=None):
        """Remove a file or symlink `name` (never a directory, never
        following a link) so that a new entry can take its place.  False
        (the entry refused, when `where` is given) for a directory."""
        try:
            os.unlink(name, dir_fd=dir_fd)
        except FileNotFoundError:
            pass
        except IsADirectoryError:
            if where is None:
                raise
            self.report.refused.append((where, name, "it exists in DEST "
                                                     "as a directory"))
            return False
        return True

    def _file(self, node, dir_fd, name, rel, where):
        try:
            if stat.S_ISDIR(os.stat(name, dir_fd=dir_fd,
                                    follow_symlinks=False).st_mode):
                self._clear(dir_fd, name, where)    # refused, says so
                return
        except FileNotFoundError:
            pass
        if node.nlink > 1 and node.inode is not None:
            first = self.links.get(node.inode)
            if first is not None:
                self._clear(dir_fd, name)
                try:
                    os.link(first, name, src_dir_fd=self.top_fd,
                            dst_dir_fd=dir_fd, follow_symlinks=False)
                    self.report.hardlinks += 1
                    return
                except OSError as exc:   # a DEST without links, say
                    self.report.not_kept.setdefault(
                        "hard links (made into copies)", exc.strerror)
            else:
                self.links[node.inode] = "/".join(rel)
        # A private name: NAME.partial may be another entry of the image,
        # or a file of the user's in DEST, and is never removed.
        partial = f".imgx-{os.getpid()}-{os.urandom(4).hex()}.partial"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL |
                     os.O_NOFOLLOW | os.O_CLOEXEC, 0o600 if self.keep_mode
                     else 0o666, dir_fd=dir_fd)
        try:
            with open(fd, "wb") as out:
                self.report.bytes += write_sparse(self.fs.open(node), out)
                out.flush()
                self._meta(node, out.fileno())
            os.replace(partial, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException as exc:
            self._clear(dir_fd, partial)
            if isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS:
                raise NoSpaceError(
                    f"{os.path.join(self.top_dir, *rel)}: "
                    f"{no_space_left(exc)} (writing "
                    f"{where.rstrip('/')}/{node.name})") from None
            raise
        self.report.files += 1

    def _symlink(self, node, dir_fd, name, where):
        target = node.target or ""
        if "\0" in target:
            self.report.refused.append((where, name, "its target holds a "
                                                     "NUL byte"))
            return
        if not self._clear(dir_fd, name, where):
            return
        os.symlink(target, name, dir_fd=dir_fd)
        if self.owners and node.uid is not None:
            os.chown(name, node.uid, node.gid, dir_fd=dir_fd,
                     follow_symlinks=False)
        # lsetxattr has no dir_fd form; the fd's /proc link is the dir.
        for key, value in self.fs.xattrs(node):
            try:
                os.setxattr(f"/proc/self/fd/{dir_fd}/{name}", key, value,
                            follow_symlinks=False)
            except OSError as exc:
                self.report.not_kept.setdefault(
                    f"extended attribute {key} of a symlink", exc.strerror)
        self._times(node, name, dir_fd, follow=False)
        self.report.symlinks += 1

    def _dir(self, node, dir_fd, name, rel, where, merge=False):
        if self.fs.loop(node, self.ancestors):
            self.report.refused.append((where, name, "a directory that is "
                                        "one of its own parents (a damaged "
                                        "filesystem)"))
            return
        if not merge:
            try:
                os.mkdir(name, 0o700, dir_fd=dir_fd)
            except FileExistsError:
                pass
        try:
            fd = os.open(name, DIR_FLAGS & ~(os.O_NOFOLLOW if merge else 0),
                         dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            self.report.refused.append((where, name, "it exists in DEST as "
                                        "a symlink or a file"))
            return
        try:
            # Named as in the image: the top entry may have another name
            # on the host (get -R IMG:2/sub outsub).
            inside = where if merge else self.top_where \
                if dir_fd == self.top_fd else f"{where.rstrip('/')}/{name}"
            seen = set()
            self.ancestors.append(node.inode)
            for child in self.fs.children(node):
                if child.name in seen:
                    self.report.refused.append((inside, child.name, "a "
                                                "second entry of that name"))
                    continue
                seen.add(child.name)
                self.place(child, fd, child.name, rel + (child.name,),
                           inside)
            self.ancestors.pop()
            if not merge or node.name:
                if not self.keep_mode:
                    os.fchmod(fd, 0o777 & ~_umask())
                self._meta(node, fd)
        finally:
            os.close(fd)
        self.report.dirs += 1


def _inode(name, dir_fd=None):
    """(st_dev, st_ino) of the entry `name` itself (a link not followed),
    or None when there is none."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return None
    return st.st_dev, st.st_ino


_SPECIAL = {stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block "
            "device", stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket",
            stat.S_IFLNK: "a symlink"}


def _refuse_special(dest):
    """get replaces the name DEST: never a device node (/dev/null), a FIFO,
    a socket, or a symlink (/dev/stdout) with a regular file."""
    try:
        mode = os.lstat(dest).st_mode
    except FileNotFoundError:
        return
    kind = _SPECIAL.get(stat.S_IFMT(mode))
    if kind:
        raise TargetError(f"{dest}: is {kind}, and get would replace it "
                          f"with a file; give a file or directory name, or "
                          f"write into it with imgx cat IMGPATH > {dest}")


def image_files(image):
    """(st_dev, st_ino) of every volume file of the open `image`."""
    return {_inode(path) for path in image.reader.source.paths} - {None}


def refuse_stdout_over_image(image, fd):
    """TargetError (exit 5) when the open file `fd` (stdout) is a volume of
    `image`, or a loop device over one: writing it would destroy the image
    being read."""
    for path in image.reader.source.paths:
        refuse_image_over_source(path, fd, "<stdout>",
                                 why="imgx would write over the image it "
                                     "reads")


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def get(image_path, number, path, dest, recursive=False, passphrase=None,
        ca_file=None, on_retry=None):
    """Copy `path` of partition `number` to `dest`.  A directory needs
    `recursive`; an existing directory `dest` receives the entry by its
    name (as cp does; the root's contents go into it).  Symlinks on the
    way, and `path` itself, are resolved inside the image; links below it
    are copied as links.  Returns a Report."""
    with Image(image_path, passphrase=passphrase, ca_file=ca_file,
               on_retry=on_retry) as image:
        fs = image.filesystem(number)
        node, canonical = fs.resolve(path)
        # Named by the entry the path names, as cp -H does: a link "abs"
        # to /usr/lib/os-release is got as "abs".
        entry, _ = fs.resolve(path, follow_last=False)
        if entry is not node and entry.name:
            node = dataclasses.replace(node, name=entry.name)
        if node.is_dir and not recursive:
            raise InputError(f"{fs.where}/{path}: is a directory (use -R)")
        dest = os.fspath(dest)
        merge = False
        if os.path.isdir(dest):
            if not node.name:
                parent, name, merge = dest, ".", True
            else:
                why = unsafe_name(node.name)
                if why:
                    raise InputError(f"{fs.where}{canonical}: cannot be "
                                     f"written into {dest}: {why}")
                parent, name = dest, node.name
        else:
            parent, name = os.path.split(os.path.abspath(dest))
            if not os.path.isdir(parent):
                raise InputError(f"{dest}: directory {parent} does not "
                                 f"exist")
        if not merge:
            _refuse_special(os.path.join(parent, name))
        if not merge and _inode(os.path.join(parent, name)) in \
                image_files(image):
            raise TargetError(f"{os.path.join(parent, name)}: is the image "
                              f"{image_path} (or a link to it); imgx get "
                              f"would replace the image it reads")
        top_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            job = _Extraction(fs, top_fd, parent, f"{fs.where}{canonical}")
            job.image_files = image_files(image)
            where = f"{fs.where}{canonical.rsplit('/', 1)[0] or '/'}"
            try:
                if merge:
                    job._dir(node, top_fd, ".", (), f"{fs.where}/",
                             merge=True)
                else:
                    job.place(node, top_fd, name, (name,), where)
            except OSError as exc:
                # A directory, a link or an attribute that found no room
                # (a file's data says which file itself).
                if exc.errno not in NO_SPACE_ERRNOS:
                    raise
                raise NoSpaceError(f"{dest}: no space left (blocks or "
                                   f"inodes) while getting "
                                   f"{fs.where}{canonical} into it") \
                    from None
            return job.report
        finally:
            os.close(top_fd)
