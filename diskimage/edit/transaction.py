"""Editing a filesystem inside an image: put, rm, mkdir, mv.

An image is never patched in place.  An edit:

0. locks the image for the whole transaction (diskimage/image/lock.py:
   a second edit or rewrite of it is refused, exit 9) and refuses a
   source tree holding FIFOs, sockets or device nodes;
1. checks the request against the image as it is (paths that must or must
   not exist, through the read-only browser; an existing path for `put`
   only with --force), before any heavy work;
2. restores the image's disk into a sparse scratch file beside the image
   (every chunk checked, so a damaged image stops here, exit 4);
3. changes the one partition with the field's own writers: mtools for FAT,
   the kernel's ext2/3/4 driver, ntfs-3g and exfat-fuse through a loop
   device (``losetup -o OFFSET --sizelimit SIZE``) mounted on a scratch
   directory, every path resolved inside that mount (inroot.py: a symlink
   of the image never leads onto the host), and what `put` adds keeps its
   owner, group, mode, times and xattrs; a full filesystem is exit 6;
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

import os
import shutil
import stat
import tempfile
from datetime import datetime, timezone

from diskimage.capture import capture
from diskimage.image.compression import Compressor
from diskimage.errors import (NO_SPACE_ERRNOS, DiskImageError, InputError,
                              MissingToolError, ToolError)
from diskimage.image.lock import image_lock
from diskimage.image.reader import ImageReader, RecordStream
from diskimage.restore import plan_restore, run_restore
from diskimage.image.volumes import VolumeInput
from diskimage.image.volumeout import VolumeOutput

from .editfs import editable, fsck, mount, release, sigint_held
from .editspace import Need, no_space
from diskimage.fs.read import browsable
from diskimage.image.browse import Image
from diskimage.image.rewrite import current_split, writable


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


def _is_dir(path):
    """A directory itself, not a symlink to one (put copies the link)."""
    return os.path.isdir(path) and not os.path.islink(path)


_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket",
          stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device"}


def check_source(source, kind):
    """What the file or tree `source` needs (editspace.Need: bytes, files,
    directories, links); InputError for a FIFO, socket or device node in
    it (put copies files, directories and symlinks only), or for a
    symlink when the filesystem `kind` holds none (FAT, exFAT), before
    any work."""
    links = browsable(kind).links
    need = Need()

    def one(path):
        st = os.lstat(path)
        special = _KINDS.get(stat.S_IFMT(st.st_mode))
        if special:
            raise InputError(f"{path}: is {special}; imgx put copies "
                             f"files, directories and symlinks only; "
                             f"nothing changed")
        if stat.S_ISLNK(st.st_mode):
            if not links:
                raise InputError(f"{path}: is a symlink, and {kind} holds "
                                 f"none; nothing changed")
            need.add(st, "link", len(os.readlink(path)))
        elif stat.S_ISREG(st.st_mode):
            need.add(st, "file")

    if not _is_dir(source):
        one(source)
        return need
    for top, dirs, files in os.walk(source):
        need.add(os.lstat(top), "dir")
        for name in files + dirs:
            need.entry(name)
            one(os.path.join(top, name))
    return need


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
                  source=None, force=False):
    """Refuse, before any work, an edit that cannot succeed.  Returns the
    area, the cleaned paths (a put or mv onto a directory lands inside it,
    by the source's name) and whether the path removed or moved is a
    directory.  `put` onto an existing path needs `force`."""
    with Image(image_path) as image:
        area = image.area(number)
        editable(area, f"{image_path}:{area['partition'] or ''}",
                 paths[0] if paths else "")
        fs = image.filesystem(number)
        paths = [_clean(p) for p in paths]
        node = None

        def entry(path):
            """(node, canonical path) of the entry `path` names: every
            link on the way resolved inside the image, the last one not
            (rm, mv and put --force act on a link itself)."""
            node, canon = fs.resolve(path, follow_last=False)
            return node, canon.lstrip("/")

        def exists(path):
            try:
                return entry(path)[0]
            except InputError:
                return None

        def is_dir_through_links(path):
            try:
                return fs.resolve(path)[0].is_dir
            except InputError:
                return False

        def parent_dir(path):
            """`path` with its directory's links resolved (the edit
            resolves them the same way, inside the image's root)."""
            parent, _, name = path.rpartition("/")
            node, canon = fs.resolve(parent)
            if not node.is_dir:
                raise InputError(f"{fs.where}/{parent}: not a directory")
            return f"{canon.rstrip('/')}/{name}".lstrip("/")

        if op in ("rm", "mv"):
            node, paths[0] = entry(paths[0])
            if not paths[0]:
                verb = "removed" if op == "rm" else "moved"
                raise InputError(f"{fs.where}/: the root cannot be {verb}")
            if op == "rm" and node.is_dir and not recursive:
                raise InputError(f"{fs.where}/{paths[0]}: is a directory "
                                 f"(use -r)")
        if op in ("put", "mv"):
            # abspath: "put . IMG:1/" copies the directory under its name.
            name = os.path.basename(os.path.abspath(source)) \
                if op == "put" else paths[0].rpartition("/")[2]
            # Onto a directory, or a link to one (as cp and mv do), it
            # lands inside, under the source's name.
            if is_dir_through_links(paths[-1]):
                if not name:
                    raise InputError(f"{source}: has no name to put it "
                                     f"under; name the path in the image")
                paths[-1] = f"{paths[-1]}/{name}".lstrip("/")
            paths[-1] = parent_dir(paths[-1])
            dest = exists(paths[-1])
            fold = (lambda p: p) if fs.case_sensitive else str.casefold
            if op == "mv" and node.is_dir and \
                    fold(paths[-1]).startswith(fold(paths[0]) + "/"):
                raise InputError(f"{fs.where}/{paths[0]}: a directory "
                                 f"cannot be moved into itself "
                                 f"({paths[-1]})")
            if op == "mv" and dest is not None:
                raise InputError(f"{fs.where}/{paths[-1]}: already exists")
            if op == "put" and dest is not None and not force:
                raise InputError(f"{fs.where}/{paths[-1]}: already exists "
                                 f"(--force replaces it)")
            if op == "put" and dest is not None and dest.is_dir != \
                    _is_dir(source):
                raise InputError(f"{fs.where}/{paths[-1]}: exists and is "
                                 f"{'a' if dest.is_dir else 'not a'} "
                                 f"directory")
        if op == "mkdir":
            paths[0] = parent_dir(paths[0])
            if exists(paths[0]) is not None:
                raise InputError(f"{fs.where}/{paths[0]}: already exists")
        return area, [_as_named(fs, p) for p in paths], \
            bool(node and node.is_dir)


def _as_named(fs, path):
    """`path` (its links already resolved) with each existing name as the
    filesystem spells it: FAT, exFAT and NTFS match names without regard
    to case, and the writer (ntfs-3g, say) must find the same entries."""
    node, named = fs.root, []
    for part in path.split("/") if path else []:
        found = fs.child(node, part) if node is not None and node.is_dir \
            else None
        named.append(found.name if found is not None else part)
        node = found
    return "/".join(named)


def _apply(fs, op, paths, source, recursive, is_dir, force):
    if op == "put":
        fs.put(source, paths[0], force)
    elif op == "rm":
        fs.rm(paths[0], recursive)
    elif op == "mkdir":
        fs.mkdir(paths[0])
    else:
        fs.mv(paths[0], paths[1], is_dir)


def _change(disk, area, scratch, what, action, source=None, need=None):
    """Run action(fs) on the partition, then fsck it.  A full filesystem
    is NoSpaceError, with what did not fit."""
    free = None
    try:
        with mount(disk, area, scratch) as fs:
            free = fs.free()
            fs.run(action)
            copies = fs.copies
    except MissingToolError as exc:     # its own exit code, 10
        raise MissingToolError(exc.tool, exc.package,
                               f"{what} failed, image unchanged") from None
    except ToolError as exc:
        if "Disk full" in str(exc):
            raise no_space(what, area, free, source, need) from None
        raise EditError(f"{what} failed, image unchanged: {exc}") from None
    except OSError as exc:
        if exc.errno in NO_SPACE_ERRNOS:
            raise no_space(what, area, free, source, need) from None
        name = f" ({exc.filename})" if exc.filename else ""
        raise EditError(f"{what} failed, image unchanged: "
                        f"{exc.strerror or exc}{name}") from None
    try:
        with sigint_held():
            clean, output = fsck(disk, area)
    except MissingToolError as exc:     # the check's loop device, FAT's too
        raise MissingToolError(exc.tool, exc.package,
                               f"{what} failed, image unchanged") from None
    if not clean:
        tail = " | ".join(output.strip().splitlines()[-3:])
        raise EditError(f"{what}: partition {area['partition']} does not "
                        f"check clean afterwards; image unchanged: {tail}")
    return copies


def _link_warnings(source, kind, need, copies):
    """What `put` says about hard links of its tree it could not keep."""
    def links(n):
        return f"{n} hard link{'' if n == 1 else 's'}"
    if need is None:
        return []
    if browsable(kind).edit == "mtools" and need.hardlinks:
        return [f"{source}: {links(need.hardlinks)} of the tree made into "
                f"copies ({kind} holds no hard links)"]
    return [f"{source}: {links(n)} of the tree made into copies ({kind}: "
            f"{why})" for why, n in sorted(copies.items())]


def edit(image_path, number, op, paths, *, source=None, recursive=False,
         force=False, threads=None):
    """Apply `op` ("put", "rm", "mkdir", "mv") to partition `number` of the
    image and write the new image over it.  The image is locked for the
    whole edit (BusyError while another edit or rewrite holds it).
    Returns capture's summary, with "edit_warnings": what the edit could
    not keep (hard links of a put tree made into copies)."""
    # An image named through a symlink: the file it points to is edited
    # and replaced, the link stays (resolved once, so the lock, the reads
    # and the rename all name one file).
    real = os.path.realpath(image_path)
    writable(real)
    if source is not None and not os.path.lexists(source):
        raise InputError(f"{source}: no such file or directory")
    with image_lock(real):
        area, paths, is_dir = check_request(image_path, number, op, paths,
                                            recursive, source, force)
        need = check_source(source, area["filesystem"]) \
            if source is not None else None
        directory = os.path.dirname(real)
        scratch = None
        try:
            # Made and removed with Ctrl-C held back: an interrupt inside
            # either step would leave the scratch directory behind.
            with sigint_held():
                scratch = tempfile.mkdtemp(prefix=".imgx-edit-",
                                           dir=directory)
            return _edit_in(scratch, real, area, op, paths, source,
                            dict(name=image_path, recursive=recursive,
                                 is_dir=is_dir,
                                 force=force, need=need), threads)
        finally:
            if scratch is not None:
                with sigint_held():
                    shutil.rmtree(scratch, ignore_errors=True)


def _edit_in(scratch, image_path, area, op, paths, source, how, threads):
    """edit()'s work, in the scratch directory."""
    disk = os.path.join(scratch, "disk.img")
    try:
        with VolumeInput(image_path) as volumes:
            stream = RecordStream(volumes)
            meta = stream.metadata
            run_restore(plan_restore(stream, disk), threads=threads or
                        os.cpu_count())
        copies = _change(disk, area, scratch, f"{how['name']}: {op}",
                         lambda fs: _apply(fs, op, paths, source,
                                           how["recursive"], how["is_dir"],
                                           how["force"]),
                         source, how["need"])
    finally:
        release(scratch, disk)
    settings = _settings(image_path)
    line = " ".join([datetime.now(timezone.utc).isoformat(
        timespec="seconds"), op, *([source] if source else []),
        *(f"{area['partition'] or ''}/{p}" for p in paths)])
    summary = capture(
        disk, VolumeOutput(image_path, settings["split"]),
        compressor=Compressor(meta["compression"]["codec"],
                              meta["compression"]["level"]),
        partitions=settings["partitions"], raw=meta.get("mode") == "raw",
        description=meta.get("description", ""),
        chunk_size=settings["chunk_size"],
        source_label=meta["source"]["path"],
        sector_size=meta["source"]["logical_sector_size"],
        extra_metadata={"history": meta.get("history", []) + [line]},
        threads=threads)
    summary["edit_warnings"] = _link_warnings(source, area["filesystem"],
                                              how["need"], copies)
    return summary
