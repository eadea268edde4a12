"""rdeploy verify-target, and what restore --resume adds to restore: the
restore marker of an interrupted restore found, checked, reported."""

import json
import os
import sys

from cliutil.confirm import typed_yes
from cliutil.text import safe
from diskimage.errors import TargetError
from diskimage.words import counted


def image_name(path):
    """How the marker names the image: its absolute path, "-", or a URL
    as shown (rdeploy.remotecmds)."""
    from .remotecmds import image_name as name
    return name(path)


def restore_marker(plan, resume, progress):
    """The marker of the interrupted restore a --resume finishes (checked:
    this image, this plan), or None.  Without --resume, a marked target
    (a damaged marker too) is said in the plan's notes and on stderr: the
    restore starts over."""
    from diskimage import restoremark
    from diskimage.errors import IncompleteTargetError
    from diskimage.host.device import open_source
    marker, damaged = None, None
    if os.path.exists(plan.target):
        with open_source(plan.target) as disk:
            try:
                # elsewhere: the marker of a restore with another plan
                marker = restoremark.read_at(
                    disk, restoremark.marker_offset(plan)) or \
                    restoremark.find(disk)
            except IncompleteTargetError as exc:
                if resume:
                    raise
                damaged = exc
    if resume:
        restoremark.check_resume(plan, plan.stream, marker, plan.target)
        plan.notes.append(f"resumes the interrupted restore at chunk "
                          f"{marker.checkpoint} ({marker.progress_text()})")
        return marker
    if damaged is not None:
        line = f"{damaged}; this restore starts over"
    elif marker is not None:
        line = (f"{plan.target} holds an interrupted restore of "
                f"{marker.name or 'an image'} ({marker.progress_text()}); "
                f"this restore starts over (--resume would finish that one)")
    else:
        return None
    plan.notes.append(line)
    progress.warn(safe(line))
    return None


def confirm_overwrite(args, progress, command, question):
    """--yes, or "yes" typed on a terminal after `question` (a sentence
    saying what will be overwritten); else TargetError (exit 5).  For the
    commands that ask before they know the plan (multicast and swarm
    receive ask before they join)."""
    if args["--yes"]:
        return
    target = args["TARGET"]
    if progress.json:
        raise TargetError(f"{command} needs --yes to write {target} "
                          f"(--progress=json never asks)")
    if not sys.stdin.isatty():
        raise TargetError(f"{command} needs --yes to write {target} "
                          f"(no terminal to ask on)")
    typed_yes(f"rdeploy: {question}", target)


def cmd_verify_target(args, progress):
    from cliutil.passphrase import from_args
    from diskimage.targetverify import verify_target

    from .remotecmds import image_arg, shown
    passphrase = from_args(args, what=shown(args["IMAGE"])) \
        if args["IMAGE"] else None
    from diskimage.errors import IncompleteTargetError
    with progress, image_arg(args, progress=progress) as image:
        try:
            summary = verify_target(args["TARGET"], image,
                                    progress=progress, passphrase=passphrase)
        except IncompleteTargetError as exc:
            if args["--json"] and hasattr(exc, "summary"):
                print(json.dumps(exc.summary, indent=2), flush=True)
            raise   # the line on stderr, exit 13
        _print(args, summary)
        progress.end(result=summary)
    return 0


def _print(args, summary):
    if args["--json"]:
        print(json.dumps(summary, indent=2))
    elif args["IMAGE"] is None:
        print(f"{safe(args['TARGET'])}: no interrupted restore")
    else:
        skipped = "; not compared: " + "; ".join(summary["skipped"]) \
            if summary["skipped"] else ""
        print(f"{safe(args['TARGET'])}: equal to {safe(summary['image'])} "
              f"({counted(summary['chunks'], 'chunk')}, "
              f"{summary['compared_bytes']} "
              f"bytes compared{skipped})")
