"""imgx - explore and edit .rdi images without restoring them.

Usage:
  imgx info IMAGE [--json] [--ca-file=FILE]
              [--passphrase-file=F | --passphrase-env=VAR]
  imgx ls IMGPATH [-l] [-R] [--json] [--ca-file=FILE]
            [--passphrase-file=F | --passphrase-env=VAR]
  imgx tree IMGPATH [--ca-file=FILE]
            [--passphrase-file=F | --passphrase-env=VAR]
  imgx cat IMGPATH [--ca-file=FILE]
            [--passphrase-file=F | --passphrase-env=VAR]
  imgx get [-R] IMGPATH DEST [--ca-file=FILE]
            [--passphrase-file=F | --passphrase-env=VAR]
  imgx find IMGPATH -name PATTERN [--ca-file=FILE]
            [--passphrase-file=F | --passphrase-env=VAR]
  imgx diff IMAGE_A IMAGE_B [N] [--json] [--ca-file=FILE]
              [--passphrase-file=F | --passphrase-env=VAR]
  imgx put SRC IMGPATH [--force] [--threads=N]
  imgx rm [-r] IMGPATH [--threads=N]
  imgx mkdir IMGPATH [--threads=N]
  imgx mv IMGPATH NEWPATH [--threads=N]
  imgx describe IMAGE TEXT
  imgx verify IMAGE [--threads=N] [--ca-file=FILE]
              [--passphrase-file=F | --passphrase-env=VAR]
  imgx split IMAGE SIZE [--output=OUT] [--force]
  imgx join IMAGE [--output=OUT] [--force]
  imgx recompress IMAGE [--compress=CODEC] [--level=N] [--output=OUT]
                  [--force] [--threads=N]
  imgx convert IMAGE OUT --to=FORMAT [--threads=N]
               [--passphrase-file=F | --passphrase-env=VAR]
  imgx import SOURCE OUT [--compress=CODEC] [--level=N] [--description=TEXT]
              [--force]
  imgx sfx IMAGE -o OUT [--toolkit=FILE | --binary=FILE] [--force]
  imgx help [COMMAND]
  imgx (-h | --help)
  imgx --version

Paths inside images (IMGPATH):
  IMAGE:N/path/in/fs   partition N of IMAGE, e.g. lab.rdi:2/EFI/BOOT
  IMAGE:/path          the one filesystem of an image that holds one
  IMAGE:N              the root of partition N
  IMAGE:N/lv/path      in LV lv of the LVM2 PV on partition N (ls IMAGE:N
                       lists its LVs)
Filesystems: ext2/3/4, FAT12/16/32, exFAT, NTFS, XFS, btrfs (subvolumes
and snapshots are directories where they were made), and these inside
LVM2 volumes.  Only the chunks that hold what is looked at are read and
decoded, each checked against its checksum.
IMAGE may be an http:// or https:// URL for info, ls, tree, cat, get,
find, diff and verify (http://h:8080/lab.rdi:2/etc/hostname): read with
Range requests, only the chunks needed (verify: all, front to back).
Symlinks in IMGPATH are followed inside the image (an absolute target
starts at the filesystem's root, never the host's; at most 40 links).

Commands:
  info    Partitions, filesystems, sizes, codec (as rdeploy info).
  ls      List a directory (or show one file).  -l: mode, uid, gid, size,
          modification time (UTC), name, and "-> target" for a symlink.
          -R: every entry below, as paths relative to the directory
          listed.  A link to a directory is listed through, unless -l.
  tree    The directory tree below IMGPATH.
  cat     Write a file's bytes to stdout.
  get     Copy a file, or with -R a directory tree, to DEST (into DEST when
          it is an existing directory).  Keeps times; modes, xattrs and
          (as root) owners where the filesystem has them (ext); hard links
          as hard links, holes as holes, symlinks as symlinks.  Skips
          FIFOs, sockets and device nodes, and entries whose names hold
          "/" or NUL or are "." or "..": nothing is written outside DEST.
          Says on stderr what it skipped or could not keep.
  find    Print the paths below IMGPATH whose name matches the shell
          PATTERN (case-insensitive on FAT, exFAT and NTFS).
  diff    Files added (+), removed (-) and changed (M) from IMAGE_A to
          IMAGE_B, in partition N or in every partition either holds
          ("+ 3/": partition 3 is only in IMAGE_B).  Exits as diff(1)
          does: 0 the same, 1 different, 2 trouble: a partition it could
          not compare (named on stderr; a filesystem imgx cannot read) or
          any error.
  help    Show this text, or only the part about COMMAND (as
          `imgx COMMAND --help` does).

Editing (each writes a new image over IMAGE only when it is complete and
its filesystem checks clean; a failed or interrupted edit leaves IMAGE as it
was; one edit or rewrite of an image at a time, a second is refused; needs
root, for loop devices and mounts):
  put      Copy the file or directory tree SRC into the image (into
           IMGPATH when it is a directory, else as IMGPATH), with owners,
           groups, modes, times and xattrs where the filesystem holds
           them.  An existing path is refused; --force replaces it (a
           file is replaced, not written through its hard links; a
           directory onto a directory merges).  Symlinks inside the
           image are resolved inside it, never on the host; a symlink
           at IMGPATH itself is replaced (--force), not followed.
  rm       Remove a file, or with -r a directory tree.
  mkdir    Make a directory (its parent must exist).
  mv       Rename or move IMGPATH to NEWPATH (a path in the same
           filesystem, "/dir/name", or IMAGE:N/dir/name).
  describe Set the image's description.

Image operations (OUT defaults to IMAGE itself, replaced when complete;
another existing OUT is refused, and with --force replaced only once the
new file is complete):
  verify      Check every chunk, the index and the whole-image digest.
  split       Cut the image into volumes of at most SIZE (650M, 4G; 4K
              at least).
  join        Make a split image one file again.
  recompress  Store every chunk again with another codec or level.
  convert     Write the image's disk to OUT as a sparse raw file, qcow2
              or vhd (qemu-img).  OUT must not exist.  OUT "-" writes
              the raw disk to stdout (--to=raw; not a terminal).
  import      Capture a raw disk file, a block device, or a qcow2, VHD,
              VMDK or VDI file (qemu-img) into the image OUT.
  sfx         Write a self-restoring image to OUT (-o): the frozen toolkit
              with IMAGE appended.  `OUT TARGET` restores it onto TARGET
              with rdeploy restore's checks; `OUT --help` says more.

Options:
  -l            Long listing.
  -R            Recursive.
  --json        Print JSON instead of text.
  -r            Remove directories and their contents.
  --force       put: replace what exists at IMGPATH; split, join,
                recompress, import, sfx: replace an existing OUT.
  -o OUT --output=OUT  Write the new image (or sfx binary) here instead of
                over IMAGE; "-" streams join's or recompress's image to
                stdout (not a terminal).
  --toolkit=FILE  The frozen multi-call binary an sfx is built on
                (default: this program when frozen, else dist/deploytool
                of `make freeze`, else the one `bootdisk toolkit`
                cached), as bootdisk's --toolkit.
  --binary=FILE   The old name of --toolkit: deprecated, still works.
  --compress=CODEC  lz4, zstd or none [default: lz4].
  --level=N     Compression level (lz4 1-12, zstd 1-19).
  --to=FORMAT   raw, qcow2 or vhd.
  --description=TEXT  A note stored in the image [default: ].
  --threads=N   Worker threads [default: all cores].
  --ca-file=FILE  Trust the TLS certificates of an https:// IMAGE that
                this CA file signs (PEM), instead of the system's.
  --passphrase-file=F  An encrypted image's passphrase: the first line of
                file F (without its line end).
  --passphrase-env=VAR  An encrypted image's passphrase: the value of
                environment variable VAR. Without either, an encrypted
                image asks on the terminal (info shows only what is plain).
                Encrypted images are read, never edited or rewritten
                (put, rm, mkdir, mv, describe, split, join, recompress,
                sfx refuse them, exit 7).
  -h --help     Show this text.
  --version     Show the version.

Exit codes:
  0 success; 1 other failure (an I/O error; a writer tool that failed or
  a filesystem not clean after an edit, image unchanged); 2 usage error
  (also a path without a partition number in an image of several
  filesystems); 3 bad input (no such image, partition, file or directory;
  a partition not captured; not a directory; a path put would replace,
  or an existing OUT, without --force; an OUT that is a symlink to
  nothing; a FIFO or device node in put's SRC; a file on a filesystem
  without locks); 4 damaged image or
  damaged filesystem inside it; 5 refused: a read-only image or directory,
  an existing convert output, an output that is the image read (cat's
  stdout, get's DEST, or one of its volumes or a hard link of it as OUT
  of split, join, recompress, sfx) or import's SOURCE; 6 no space left
  (also in the partition an edit writes to, image unchanged); 7
  unsupported filesystem, image version or codec; 9 busy: another imgx is
  editing or rewriting the image, or an edit meets one reading it (nothing
  changed), or another is writing OUT.partial now; 10 a tool an edit or
  convert needs is not installed (named with its Debian package; image
  unchanged); 12 an encrypted image without its passphrase, or a wrong
  one; 70 internal error; 130 interrupted (143 SIGTERM, 129
  SIGHUP); 141 broken pipe.  imgx diff: 0 the same, 1 different,
  2 trouble (as diff(1)).

Examples:
  imgx ls -l lab.rdi:1/etc
  imgx cat lab.rdi:1/etc/fstab | head
  imgx get -R lab.rdi:3/Users/alice ./alice
  imgx find lab.rdi:2/ -name '*.efi'
  imgx diff monday.rdi friday.rdi 1
  imgx put ./drivers lab.rdi:3/Windows/INF
  imgx rm -r lab.rdi:1/var/cache/apt
  imgx recompress lab.rdi --compress=zstd --level=9
  imgx convert lab.rdi lab.qcow2 --to=qcow2
  imgx sfx lab.rdi -o lab-restore.run && ./lab-restore.run /dev/sdb
"""

import fnmatch
import json
import sys

from cliutil.runner import dispatch, run
from diskimage import __version__
from diskimage.errors import InputError, UsageError

from . import render
from cliutil.remote import ca_file, image_arg, retry_note, shown
from diskimage.image.browse import Image, split_path
from .editcmds import cmd_mkdir, cmd_mv, cmd_put, cmd_rm
from .opscmd import (cmd_convert, cmd_describe, cmd_import, cmd_join,
                     cmd_recompress, cmd_sfx, cmd_split, cmd_verify,
                     passphrase)


def cmd_info(args):
    from diskimage.image.info import image_info
    from cliutil.render import info_text

    from cliutil.render import sealed_text

    source = passphrase(args, shown(args["IMAGE"]))
    with image_arg(args, prog="imgx") as image:
        info = image_info(image, passphrase=source if source.given else None)
    if args["--json"]:
        print(json.dumps(info, indent=2))
        return 0
    if "areas" not in info:        # encrypted, no passphrase given
        print(sealed_text(info))
        return 0
    print(info_text(info))
    for line in info["history"]:
        print(f"edited:       {render.safe(line)}")
    return 0


def _out(data):
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def _open(args, follow=True):
    """(image, fs, node, path) of IMGPATH, symlinks on the way resolved
    inside the image; the last one too when `follow`, or when the path
    ends with "/"."""
    image_path, number, path = split_path(args["IMGPATH"])
    image = Image(image_path, passphrase=passphrase(args, shown(image_path)),
                  ca_file=ca_file(args, image_path),
                  on_retry=retry_note("imgx"))
    try:
        fs = image.filesystem(number)
        node = fs.resolve(path, follow or path.endswith("/"))[0]
        return image, fs, node, path
    except BaseException:
        image.close()
        raise


def cmd_ls(args):
    # As ls: a link to a directory is listed through unless -l (or --json)
    # asks for the entry itself.
    image, fs, node, path = _open(args, follow=False)
    with image:
        if node.kind == "symlink" and not (args["-l"] or args["--json"]):
            try:
                target = fs.resolve(path)[0]
            except InputError:      # dangling, or a loop: the link itself
                target = node
            if target.is_dir:
                node = target
        if not node.is_dir:
            rows = [(node.name, node)]
        elif args["-R"]:
            rows = list(fs.walk(node, at=path))
        else:
            rows = [(child.name, child) for child in fs.children(node)]
        if args["--json"]:
            _out(render.json_text([render.node_dict(n, rel)
                                   for rel, n in rows]))
        elif args["-l"]:
            for rel, n in rows:
                print(render.long_line(n, rel))
        else:
            for rel, n in rows:
                print(render.safe(rel) + ("/" if n.is_dir else ""))
    return 0


def cmd_tree(args):
    image, fs, node, path = _open(args)
    with image:
        fs.children(node, path)          # a file: one line, nothing else
        print(f"/{path}")
        for line in render.tree_lines(fs, node, at=f"/{path}"):
            print(line)
    return 0


def cmd_cat(args):
    from .extract import copy_stream, refuse_stdout_over_image

    image, fs, node, path = _open(args)
    with image:
        out = sys.stdout.buffer
        refuse_stdout_over_image(image, out.fileno())
        copy_stream(fs.open(node, path), out.write)
        out.flush()
    return 0


def cmd_get(args):
    from .extract import get

    image_path, number, path = split_path(args["IMGPATH"])
    report = get(image_path, number, path, args["DEST"],
                 recursive=args["-R"],
                 passphrase=passphrase(args, shown(image_path)),
                 ca_file=ca_file(args, image_path),
                 on_retry=retry_note("imgx"))
    for line in render.get_warnings(report):
        print(f"imgx: warning: {render.safe(line)}", file=sys.stderr)
    return 0


def cmd_find(args):
    image, fs, node, path = _open(args)
    pattern = args["PATTERN"]
    with image:
        base = "/" + path.strip("/")
        base = base.rstrip("/") + "/"
        for rel, child in fs.walk(node, at=path):
            name = child.name
            if fs.case_sensitive:
                hit = fnmatch.fnmatchcase(name, pattern)
            else:
                hit = fnmatch.fnmatchcase(name.casefold(), pattern.casefold())
            if hit:
                print(render.safe(base + rel))
    return 0


def cmd_diff(args):
    # As diff(1): 0 the same, 1 different, 2 trouble (every error too).
    from diskimage.errors import DiskImageError
    from .diff import DiffTrouble, diff

    number = None
    if args["N"] is not None:
        if not args["N"].isdigit():
            raise UsageError(f"N is a partition number, not {args['N']!r}")
        number = int(args["N"])
    try:
        changes, cannot = diff(args["IMAGE_A"], args["IMAGE_B"], number,
                               passphrase=passphrase(args, "the images"),
                               ca_file=ca_file(args, args["IMAGE_A"],
                                               args["IMAGE_B"]),
                               on_retry=retry_note("imgx"))
    except DiskImageError as exc:
        raise DiffTrouble(str(exc)) from None
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        raise DiffTrouble(f"{where}{exc.strerror or exc}") from None
    except Exception as exc:
        # A reader that choked on a hostile filesystem: trouble too (the
        # cause is kept for RDEPLOY_DEBUG=1's traceback).
        raise DiffTrouble(f"{args['IMAGE_A']} or {args['IMAGE_B']}: cannot "
                          f"be compared: {type(exc).__name__}: {exc}") \
            from exc
    if args["--json"]:
        _out(render.json_text([{"change": c, "partition": p or None,
                                "path": rel} for c, p, rel in changes]))
    else:
        for change, part, rel in changes:
            print(f"{change} {part}/{render.safe(rel)}")
    for part, reason in cannot:
        which = "" if part is None else f"partition {part}: "
        print(f"imgx: diff: {which}not compared: {render.safe(reason)}",
              file=sys.stderr)
    return 2 if cannot else 1 if changes else 0


COMMANDS = {"info": cmd_info, "ls": cmd_ls, "tree": cmd_tree, "cat": cmd_cat,
            "get": cmd_get, "find": cmd_find, "diff": cmd_diff,
            "put": cmd_put, "rm": cmd_rm, "mkdir": cmd_mkdir, "mv": cmd_mv,
            "describe": cmd_describe, "verify": cmd_verify,
            "split": cmd_split, "join": cmd_join,
            "recompress": cmd_recompress, "convert": cmd_convert,
            "import": cmd_import, "sfx": cmd_sfx}


def _main(argv):
    return dispatch(__doc__, argv, f"imgx {__version__}", COMMANDS)


def main(argv=None, exiting=None):
    """`exiting` (default: when argv is None): the process exits when this
    returns (cliutil.runner.run)."""
    return run("imgx", _main, sys.argv[1:] if argv is None else argv,
               exiting=argv is None if exiting is None else exiting)


if __name__ == "__main__":
    sys.exit(main())
