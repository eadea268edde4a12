"""rdeploy multicast send and receive (usage in cli.py): option values
converted and checked here, the work in diskimage.fleet."""

import sys
import time

from cliutil.runner import whole_number
from cliutil.text import safe
from diskimage import sighold
from diskimage.errors import DiskImageError, TargetError, UsageError

from . import imagecmds, render, targetcmds

DEFAULT_PORT = 9000


def _port(args):
    text = args["--port"]
    port = DEFAULT_PORT if text is None else whole_number(text, "--port")
    if not 1024 <= port <= 65533:
        raise UsageError(f"--port takes 1024 to 65533 (udpcast uses PORT "
                         f"and PORT + 1, the notices PORT + 2), not {port}")
    return port


def _seconds(args, name):
    text = args.get(name)
    if text is None or text == "forever":
        return None
    seconds = whole_number(text, name)
    if seconds < 1:
        raise UsageError(f"{name} takes a number of seconds (1 or more), "
                         f"not {text!r}")
    return seconds


def _confirm_join(args, progress):
    """Asked before joining: once the session runs, a receiver that
    waits for an answer would be dropped from it."""
    if args["--yes"]:
        return
    target = args["TARGET"]
    if progress.json:
        raise TargetError(f"multicast receive needs --yes to write {target} "
                          f"(--progress=json never asks)")
    if not sys.stdin.isatty():
        raise TargetError(f"multicast receive needs --yes to write {target} "
                          f"(no terminal to ask on)")
    print(f"rdeploy: the next multicast session's image will overwrite "
          f"everything on {safe(target)}. Type 'yes' to go on: ", end="",
          file=sys.stderr, flush=True)
    if sys.stdin.readline().strip().lower() != "yes":
        raise TargetError(f"{target}: not confirmed; nothing written")


def _late_line(address, notice):
    started = time.strftime("%H:%M:%S UTC", time.gmtime(notice.started))
    return (f"a multicast session from {address} is under way (session "
            f"{notice.session}, started {started} with {notice.receivers} "
            f"receivers): this receiver came after its start and is not "
            f"given the middle of a stream; waiting for the next session")


def _plan_options(args, values):
    options = dict(partitions=values["partitions"], into=None,
                   mode=values["mode"], sizes=values["sizes"],
                   new_ids=args["--new-ids"],
                   overwrite_protected=args["--overwrite-protected"],
                   tmpdir=args["--tmpdir"])
    if args["--delta"]:
        options["delta"] = True     # part C's plan_restore(delta=True)
    return options


def cmd_receive(args):
    from cliutil.passphrase import from_args
    from diskimage.fleet.receiver import Join
    from diskimage.image.reader import RecordStream
    from diskimage.restore import plan_restore, run_restore

    values = imagecmds._restore_values(args)
    port, wait = _port(args), _seconds(args, "--wait")
    target = args["TARGET"]
    with imagecmds.progress_for(args, "multicast receive") as progress:
        passphrase = from_args(args, what="the multicast session's image")
        _confirm_join(args, progress)
        with Join(port=port, interface=args["--interface"], wait=wait,
                  on_late=lambda a, n: progress.warn(_late_line(a, n))) \
                as join:
            try:
                stream = RecordStream(join.source, passphrase=passphrase)
                plan = plan_restore(stream, target,
                                    **_plan_options(args, values))
                targetcmds.restore_marker(plan, False, progress)
                summary = run_restore(
                    plan, threads=values["threads"],
                    verify=args["--verify"], progress=progress,
                    readback_progress=progress.stage("read-back"),
                    image_name=f"multicast session of {join.sender} "
                               f"(port {port})",
                    committed=lambda: sighold.committed(target))
            except (DiskImageError, OSError) as exc:
                raise join.failure(exc, target) from exc
            warning = join.finish()
        if warning:
            progress.warn(warning)
        name = f"multicast session of {join.sender}"
        summary["sender"] = join.sender
        progress.end(render.restore_line(name, target, summary),
                     imagecmds._result(summary),
                     lines=render.actions_lines(summary.get("actions")))
    return 0


def cmd_send(args):
    from . import multicastsend
    return multicastsend.cmd_send(args)
