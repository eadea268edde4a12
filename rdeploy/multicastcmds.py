"""rdeploy multicast send and receive (usage in cli.py): option values
converted and checked here, the work in diskimage.fleet."""

import re
import time

from cliutil.runner import whole_number
from cliutil.text import safe
from diskimage import sighold
from diskimage.sizes import format_size
from diskimage.errors import DiskImageError, InputError, UsageError

from . import imagecmds, remotecmds, render, targetcmds

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
    return whole_number(text, name)


def _confirm_join(args, progress):
    """Asked before joining: once the session runs, a receiver that
    waits for an answer would be dropped from it."""
    targetcmds.confirm_overwrite(
        args, progress, "multicast receive",
        f"the next multicast session's image will overwrite everything on "
        f"{safe(args['TARGET'])}.")


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

    from diskimage.trust.policy import refuse_stream

    values = imagecmds._restore_values(args)
    port, wait = _port(args), _seconds(args, "--wait")
    target = args["TARGET"]
    refuse_stream("a multicast session")
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


_FEC = re.compile(r"^[1-9][0-9]*x[1-9][0-9]*/[1-9][0-9]*$")


def _send_values(args):
    """send's option values, checked before anything is opened."""
    min_receivers = whole_number(args["--min-receivers"], "--min-receivers")
    rate = None
    if args["--rate"] is not None:
        try:
            rate = float(args["--rate"])
        except ValueError:
            rate = 0
        if not 0.1 <= rate <= 100000:
            raise UsageError(f"--rate takes megabits per second (0.1 to "
                             f"100000), not {args['--rate']!r}")
    fec = args["--fec"]
    if fec is not None and not _FEC.match(fec):
        raise UsageError(f"--fec takes STRIPESxREDUNDANCY/STRIPESIZE such "
                         f"as 8x8/128, not {fec!r}")
    return {"port": _port(args), "min_receivers": min_receivers,
            "max_wait": _seconds(args, "--max-wait"),
            "rate": None if rate is None else round(rate * 1000),
            "fec": fec, "interface": args["--interface"]}


def _source_opener(args):
    """What opens IMAGE afresh for each session (a file, split volumes or
    an http(s) URL: diskimage.remote), checked once here: an IMAGE that
    is not an image is refused before anyone joins."""
    from diskimage.image.format import MAGIC
    image = args["IMAGE"]
    if image == "-":
        raise UsageError("multicast send needs an image file or URL, not "
                         "stdin: every session sends the image again")

    ca_file = remotecmds.ca_file(args)

    def open_source():
        return imagecmds._open_image(image, ca_file)

    with open_source() as source:
        if source.read(len(MAGIC)) != MAGIC:
            raise InputError(f"{remotecmds.shown(image)}: not an rdeploy "
                             f"image")
    return open_source


def _session_line(image, summary):
    finished, dropped = summary["finished"], summary["dropped"] + \
        summary["left"]
    seconds = summary["seconds"]
    return (f"rdeploy: session {summary['session']}: sent {image} "
            f"({format_size(summary['bytes'])}) in {seconds:.1f} s "
            f"({format_size(summary['bytes'] / max(seconds, 1e-3))}/s); "
            f"finished: {', '.join(finished) or 'none'}; "
            f"dropped: {', '.join(dropped) or 'none'}")


def cmd_send(args):
    from cliutil.progress import json_line
    from diskimage.fleet.sender import send

    values = _send_values(args)
    image = remotecmds.shown(args["IMAGE"])
    with imagecmds.progress_for(args, "multicast send") as progress:
        open_source = _source_opener(args)

        def on_start(session):
            if progress.json:
                json_line("session", progress.stream,
                          command="multicast send", state="started",
                          session=session.number,
                          receivers=[r.address for r in
                                     session.receivers.values()])

        def on_session(summary):
            line = _session_line(image, summary)
            if progress.json:
                json_line("session", progress.stream,
                          command="multicast send", state="ended",
                          session=summary["session"], summary=line,
                          result=summary)
            elif not progress.quiet:
                progress.close()
                print(safe(line), file=progress.stream)

        summary = send(open_source, repeat=args["--repeat"],
                       on_session=on_session, on_start=on_start,
                       stage=lambda n: progress.stage(f"session {n}"),
                       **values)
        progress.end(_session_line(image, summary) if progress.json
                     else None, summary)
    return 0
