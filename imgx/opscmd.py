"""The image operations of imgx (usage in imgx/cli.py): describe, verify,
split, join, recompress, convert, import, sfx.  Each is a thin call into
diskimage.image.rewrite, convert.py or diskimage.image.sfx; outputs other
than the image itself are refused when they exist, unless --force."""

import os
import sys

from cliutil.runner import whole_number
from cliutil.text import safe
from diskimage.errors import UsageError


def threads(args):
    value = args.get("--threads")
    if value in (None, "all cores"):
        return None
    return whole_number(value, "--threads")


def passphrase(args, image=None):
    """The passphrase source (cliutil.passphrase) of IMAGE, asked for
    only if the image is encrypted."""
    from cliutil.passphrase import from_args
    return from_args(args, what=image or args.get("IMAGE") or "the image")


def plain_only(image, command):
    """Refuse (exit 7), before anything is asked or written, to edit or
    rewrite an encrypted image: imgx reads those, it does not write them."""
    from diskimage.errors import DiskImageError, UnsupportedError
    from diskimage.image.sealed import is_encrypted
    try:
        encrypted = is_encrypted(image)
    except DiskImageError:
        # Not readable as an image here: the command's own checks, in
        # their order (its lock first), say what is wrong with it.
        return
    if encrypted:
        raise UnsupportedError(
            f"{image}: is encrypted; imgx {command} does not write "
            f"encrypted images (restore it, change the disk, and capture "
            f"it again with rdeploy capture --encrypt)")


def level(args):
    if args["--compress"] == "none" and args["--level"] is not None:
        raise UsageError("--level does not go with --compress=none "
                         "(chunks are stored as they are); drop it, or "
                         "choose lz4 or zstd")
    return None if args["--level"] is None else \
        whole_number(args["--level"], "--level")


def cmd_describe(args):
    from diskimage.image.rewrite import rewrite
    plain_only(args["IMAGE"], "describe")
    rewrite(args["IMAGE"], metadata={"description": args["TEXT"]})
    return 0


def cmd_verify(args):
    from diskimage.image.verify import verify
    from diskimage.remote import open_input
    from cliutil.remote import ca_file, retry_note, shown
    from cliutil.render import verify_line

    workers = threads(args) or os.cpu_count()
    name = shown(args["IMAGE"])
    with open_input(args["IMAGE"], ca_file=ca_file(args),
                    on_retry=retry_note("imgx")) as source:
        summary = verify(source, threads=workers,
                         passphrase=passphrase(args, name))
    print(verify_line(name, summary))
    return 0


def _to_stdout(args, command, streams=False):
    """The binary stdout for OUT "-" (None for a file): join and
    recompress stream the image there, as rdeploy capture - does (not to
    a terminal, never onto the image read); split, import and sfx write
    files only (a usage error)."""
    if (args["OUT"] if command == "import" else args["--output"]) != "-":
        return None
    if not streams:
        raise UsageError(f"OUT \"-\" (stdout): {command} writes a file; "
                         f"give its name")
    from diskimage.errors import InputError
    from diskimage.host.identity import refuse_image_over_source
    from diskimage.image.volumes import find_volumes
    sys.stdout.flush()
    if sys.stdout.isatty():
        raise InputError("stdout is a terminal; redirect the image to a "
                         "file or a pipe")
    for volume in find_volumes(args["IMAGE"]):
        refuse_image_over_source(volume, sys.stdout.fileno(), "stdout",
                                 why="the image cannot be written over "
                                     "itself")
    return sys.stdout.buffer


def cmd_split(args):
    from diskimage.sizes import parse_size_at_least
    from diskimage.image.volumes import MIN_SPLIT
    from diskimage.image.rewrite import rewrite
    size = parse_size_at_least(args["SIZE"], MIN_SPLIT, "SIZE", "4K")
    _to_stdout(args, "split")
    plain_only(args["IMAGE"], "split")
    rewrite(args["IMAGE"], args["--output"], split=size,
            force=args["--force"])
    return 0


def cmd_join(args):
    from diskimage.image.rewrite import rewrite
    plain_only(args["IMAGE"], "join")
    rewrite(args["IMAGE"], args["--output"], split=None,
            force=args["--force"], stdout=_to_stdout(args, "join", True))
    return 0


def cmd_recompress(args):
    from diskimage.image.compression import Compressor
    from diskimage.image.rewrite import rewrite
    compressor = Compressor(args["--compress"], level(args))
    plain_only(args["IMAGE"], "recompress")
    rewrite(args["IMAGE"], args["--output"],
            compressor=compressor,
            threads=threads(args), force=args["--force"],
            stdout=_to_stdout(args, "recompress", True))
    return 0


def cmd_convert(args):
    from .convert import FORMATS, convert
    if args["--to"] not in FORMATS:
        raise UsageError(f"--to takes raw, qcow2 or vhd, not "
                         f"{args['--to']!r}")
    if args["OUT"] == "-" and args["--to"] != "raw":
        raise UsageError(f"OUT \"-\" (stdout) takes --to=raw only: "
                         f"{args['--to']} needs a file qemu-img can seek "
                         f"in")
    convert(args["IMAGE"], args["OUT"], args["--to"], threads=threads(args),
            passphrase=passphrase(args))
    return 0


def cmd_import(args):
    from diskimage.image.compression import Compressor
    from .convert import import_disk
    Compressor(args["--compress"], level(args))    # checked before SOURCE
    _to_stdout(args, "import")
    import_disk(args["SOURCE"], args["OUT"], codec=args["--compress"],
                level=level(args), description=args["--description"],
                force=args["--force"])
    return 0


def cmd_sfx(args):
    from cliutil import toolkit as toolkits
    from diskimage.image.sfx import make_sfx
    _to_stdout(args, "sfx")
    plain_only(args["IMAGE"], "sfx")
    # --binary: the old name of --toolkit, kept working.  None found: the
    # message names the cache and `bootdisk toolkit`, which fills it.
    toolkit = args["--toolkit"] or args["--binary"] or toolkits.find()
    if toolkit is None:
        raise toolkits.not_found_error("--toolkit")
    report = make_sfx(args["IMAGE"], args["--output"], toolkit,
                      force=args["--force"])
    for line in report["warnings"]:
        print(f"imgx: warning: {safe(line)}", file=sys.stderr)
    return 0
