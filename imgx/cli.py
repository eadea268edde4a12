"""imgx - explore and edit .rdi images without restoring them.

Usage:
  imgx info IMAGE [--json]
  imgx ls IMGPATH [-l] [-R] [--json]
  imgx tree IMGPATH
  imgx cat IMGPATH
  imgx get [-R] IMGPATH DEST
  imgx find IMGPATH -name PATTERN
  imgx diff IMAGE_A IMAGE_B [N] [--json]
  imgx (-h | --help)
  imgx --version

Paths inside images (IMGPATH):
  IMAGE:N/path/in/fs   partition N of IMAGE, e.g. lab.rdi:2/EFI/BOOT
  IMAGE:/path          the one filesystem of an image that holds one
  IMAGE:N              the root of partition N
Filesystems: ext2/3/4, FAT12/16/32, exFAT, NTFS.  Only the chunks that hold
what is looked at are read and decoded, each checked against its checksum.

Commands:
  info    Partitions, filesystems, sizes, codec (as rdeploy info).
  ls      List a directory (or show one file).  -l: mode, uid, gid, size,
          modification time (UTC), name.  -R: every entry below, as paths
          relative to the directory listed.
  tree    The directory tree below IMGPATH.
  cat     Write a file's bytes to stdout.
  get     Copy a file, or with -R a directory tree, to DEST (into DEST when
          it is an existing directory).  Keeps modification times, modes
          where the filesystem has them (ext), symlinks as symlinks.
  find    Print the paths below IMGPATH whose name matches the shell
          PATTERN (case-insensitive on FAT, exFAT and NTFS).
  diff    Files added (+), removed (-) and changed (M) from IMAGE_A to
          IMAGE_B, in partition N or in every filesystem both hold.

Options:
  -l            Long listing.
  -R            Recursive.
  --json        Print JSON instead of text.
  -h --help     Show this text.
  --version     Show the version.

Exit codes:
  0 success; 1 other failure (I/O error); 2 usage error (also a path
  without a partition number in an image of several filesystems); 3 bad
  input (no such image, partition, file or directory; not a directory);
  4 damaged image or damaged filesystem inside it; 6 no space left;
  7 unsupported filesystem, image version or codec; 70 internal error;
  130 interrupted; 141 broken pipe.

Examples:
  imgx ls -l lab.rdi:1/etc
  imgx cat lab.rdi:1/etc/fstab | head
  imgx get -R lab.rdi:3/Users/alice ./alice
  imgx find lab.rdi:2/ -name '*.efi'
  imgx diff monday.rdi friday.rdi 1
"""

import fnmatch
import json
import sys

from docopt import docopt

from cliutil.runner import run
from diskimage import __version__
from diskimage.errors import UsageError

from . import render
from .image import Image, split_path


def cmd_info(args):
    from diskimage.info import image_info
    from rdeploy.render import info_text

    info = image_info(args["IMAGE"])
    print(json.dumps(info, indent=2) if args["--json"] else info_text(info))
    return 0


def _open(text):
    image_path, number, path = split_path(text)
    image = Image(image_path)
    try:
        fs = image.filesystem(number)
        return image, fs, fs.lookup(path), path
    except BaseException:
        image.close()
        raise


def cmd_ls(args):
    image, fs, node, path = _open(args["IMGPATH"])
    with image:
        if not node.is_dir:
            rows = [(node.name, node)]
        elif args["-R"]:
            rows = list(fs.walk(node))
        else:
            rows = [(child.name, child) for child in fs.children(node)]
        if args["--json"]:
            print(json.dumps([render.node_dict(n, rel) for rel, n in rows],
                             indent=2, ensure_ascii=False))
        elif args["-l"]:
            for rel, n in rows:
                print(render.long_line(n, rel))
        else:
            for rel, n in rows:
                print(rel + ("/" if n.is_dir else ""))
    return 0


def cmd_tree(args):
    image, fs, node, path = _open(args["IMGPATH"])
    with image:
        print(f"/{path}")
        for line in render.tree_lines(fs, node):
            print(line)
    return 0


def cmd_cat(args):
    from .extract import copy_stream

    image, fs, node, _ = _open(args["IMGPATH"])
    with image:
        out = sys.stdout.buffer
        copy_stream(fs.open(node), out.write)
        out.flush()
    return 0


def cmd_get(args):
    from .extract import get

    image_path, number, path = split_path(args["IMGPATH"])
    get(image_path, number, path, args["DEST"], recursive=args["-R"])
    return 0


def cmd_find(args):
    image, fs, node, path = _open(args["IMGPATH"])
    pattern = args["PATTERN"]
    with image:
        base = "/" + path.strip("/")
        base = base.rstrip("/") + "/"
        for rel, child in fs.walk(node):
            name = child.name
            if fs.case_sensitive:
                hit = fnmatch.fnmatchcase(name, pattern)
            else:
                hit = fnmatch.fnmatchcase(name.casefold(), pattern.casefold())
            if hit:
                print(base + rel)
    return 0


def cmd_diff(args):
    from .extract import diff

    number = None
    if args["N"] is not None:
        if not args["N"].isdigit():
            raise UsageError(f"N is a partition number, not {args['N']!r}")
        number = int(args["N"])
    changes = list(diff(args["IMAGE_A"], args["IMAGE_B"], number))
    if args["--json"]:
        print(json.dumps([{"change": c, "partition": p or None, "path": rel}
                          for c, p, rel in changes], indent=2,
                         ensure_ascii=False))
    else:
        for change, part, rel in changes:
            print(f"{change} {part}/{rel}")
    return 0


COMMANDS = {"info": cmd_info, "ls": cmd_ls, "tree": cmd_tree, "cat": cmd_cat,
            "get": cmd_get, "find": cmd_find, "diff": cmd_diff}


def _main(argv):
    args = docopt(__doc__, argv=argv, version=f"imgx {__version__}")
    for name, command in COMMANDS.items():
        if args[name]:
            return command(args)
    raise UsageError("no command given")


def main(argv=None):
    return run("imgx", _main, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
