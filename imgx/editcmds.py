"""imgx's edit commands, put, rm, mkdir and mv (usage in cli.py): the
paths checked here, the transaction in diskimage.edit."""

import os
import sys

from diskimage.errors import UsageError
from diskimage.image.browse import split_path

from .opscmd import plain_only, threads


def _edit(args, op, paths, source=None):
    from diskimage.edit.transaction import edit

    image_path, number, path = split_path(args["IMGPATH"])
    plain_only(image_path, op)
    summary = edit(image_path, number, op, [path] + paths, source=source,
                   recursive=args["-r"], force=bool(args.get("--force")),
                   threads=threads(args))
    for line in summary.get("edit_warnings", []):
        print(f"imgx: warning: {line}", file=sys.stderr)
    return 0


def cmd_put(args):
    return _edit(args, "put", [], source=args["SRC"])


def cmd_rm(args):
    return _edit(args, "rm", [])


def cmd_mkdir(args):
    return _edit(args, "mkdir", [])


def cmd_mv(args):
    new = args["NEWPATH"]
    image_a, number_a, _ = split_path(args["IMGPATH"])
    try:
        image_b, number_b, inside = split_path(new)
    except UsageError:
        image_b = None           # a plain path inside the filesystem
    if image_b is not None and (image_b == image_a or
                                os.path.exists(image_b)):
        if (image_a, number_a) != (image_b, number_b):
            raise UsageError("mv moves within one filesystem of one image")
        new = inside
    return _edit(args, "mv", [new])
