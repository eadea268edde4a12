"""rdeploy swarm prepare, seed and receive (usage in cli.py): option values
converted and checked here, the work in diskimage.swarm."""

import sys
import time

from cliutil.progress import json_line
from cliutil.runner import whole_number
from cliutil.text import safe
from diskimage.errors import UsageError
from diskimage.sizes import format_size

from . import imagecmds, remotecmds, render, targetcmds


def _rate(args, name):
    """A megabits-per-second option in bytes per second (None: no cap)."""
    text = args.get(name)
    if text is None:
        return None
    try:
        mbps = float(text)
    except ValueError:
        mbps = 0
    if not 0.1 <= mbps <= 100000:
        raise UsageError(f"{name} takes megabits per second (0.1 to "
                         f"100000), not {text!r}")
    return round(mbps * 1e6 / 8)


def _peers(args):
    from diskimage.swarm.session import peer_address
    return [peer_address(p) for p in args.get("--peer") or ()]


def _listen(args):
    from diskimage.swarm.session import listen_address
    return listen_address(args["--listen"])


def _seconds(args, name, *, zero=False):
    text = args.get(name)
    if text is None or text == "forever":
        return None
    if zero:
        try:
            number = int(text)
        except ValueError:
            raise UsageError(f"{name} takes a whole number of seconds, not "
                             f"{text!r}") from None
        if number < 0:
            raise UsageError(f"{name} must be 0 or more, not {number}")
        return number
    return whole_number(text, name)


def _piece_size(args):
    """--piece-size: a power of two from 64K to 64M (UsageError else)."""
    from diskimage.sizes import parse_size
    text = args["--piece-size"]
    if text is None:
        return None
    try:
        size = parse_size(text)
    except UsageError:
        size = None
    if not size or size & (size - 1) or not 64 << 10 <= size <= 64 << 20:
        raise UsageError(f"--piece-size takes a power of two from 64K to "
                         f"64M (64K, 128K, ... 1M, 2M, 4M, ... 64M), not "
                         f"{text!r}")
    return size


def _line(name, summary):
    rate = summary["uploaded_bytes"] / max(summary.get("seconds", 0), 1e-3)
    return (f"{name}: uploaded {format_size(summary['uploaded_bytes'])} "
            f"({format_size(rate)}/s); {summary['peers_seen']} peers "
            f"connected, {summary['peers_fed']} received data")


# -- prepare ----------------------------------------------------------------

def cmd_prepare(args):
    from diskimage.swarm.rawview import prepare

    peers = _peers(args)
    piece = _piece_size(args)
    for url in args["--web-seed"] + args["--tracker"]:
        if not url.lower().startswith(("http://", "https://", "udp://")):
            raise UsageError(f"--web-seed and --tracker take http(s) URLs "
                             f"(a tracker also udp://), not {url!r}")
    with imagecmds.progress_for(args, "swarm prepare") as progress, \
            remotecmds.image_arg(args) as image:
        summary = prepare(image, args["--output"],
                          web_seeds=args["--web-seed"],
                          trackers=args["--tracker"], peers=peers,
                          piece_size=piece, force=args["--force"],
                          progress=progress)
        print(summary["magnet"])
        _prepare_warnings(args, progress, summary, peers)
        line = (f"rdeploy: wrote {summary['torrent']} and {summary['raw']}: "
                f"{summary['pieces']} pieces of "
                f"{format_size(summary['piece_size'])}, "
                f"{summary['wanted_pieces']} wanted "
                f"({format_size(summary['wanted_bytes'])} of a "
                f"{format_size(summary['disk_size'])} disk) in "
                f"{summary['seconds']:.1f} s; infohash {summary['infohash']}")
        progress.end(line, summary)
    return 0


def _prepare_warnings(args, progress, summary, peers):
    """Each web seed tried (webprobe); a magnet link nobody could fetch
    the metadata of."""
    import os
    from diskimage.swarm.webprobe import problem
    name = os.path.basename(summary["raw"])
    for url in args["--web-seed"]:
        text = problem(url, name)
        if text:
            progress.warn(text)
    if not peers and not args["--tracker"]:
        progress.warn("the magnet link names no peer (--peer) and no "
                      "tracker (--tracker): a receiver of it must find a "
                      "peer by the DHT or LSD to fetch the torrent's "
                      "metadata (web seeds cannot serve it); the .torrent "
                      "file needs none")


# -- seed ---------------------------------------------------------------------

def _tracker_port(args):
    text = args["--run-tracker"]
    if text is None:
        return None
    port = whole_number(text, "--run-tracker")
    if not 1024 <= port <= 65535:
        raise UsageError(f"--run-tracker takes a port from 1024 to 65535 "
                         f"(opentracker runs as nobody), not {port}")
    return port


def cmd_seed(args):
    from diskimage.swarm.seeder import seed

    listen, upload = _listen(args), _rate(args, "--upload-rate")
    tracker = _tracker_port(args)
    with imagecmds.progress_for(args, "swarm seed") as progress:
        shown = [0.0]

        def status(summary):
            now = time.monotonic()
            if progress.json and now - shown[0] >= 2:
                shown[0] = now
                json_line("status", progress.stream, command="swarm seed",
                          **summary)

        def ready():
            if progress.json:
                json_line("ready", progress.stream, command="swarm seed",
                          listen=list(listen), tracker_port=tracker,
                          torrents=list(args["TORRENT"]))
            elif not progress.quiet:
                where = f"{listen[0] or '*'}:{listen[1]}"
                also = f"; opentracker on port {tracker}" if tracker else ""
                print(f"rdeploy: seeding {len(args['TORRENT'])} torrent(s) "
                      f"on {safe(where)}{also}; Ctrl-C ends it",
                      file=sys.stderr, flush=True)

        try:
            seed(args["TORRENT"], listen=listen, upload_rate=upload,
                 tracker_port=tracker, progress=status, ready=ready,
                 step_back=not args["--serve-all"])
        except KeyboardInterrupt as exc:
            summary = getattr(exc, "summary", None)
            if summary is not None:
                _seed_summary(progress, summary)
                exc.done = (f"seeded for {summary['seconds']:.0f} s, "
                            f"uploaded "
                            f"{format_size(summary['uploaded_bytes'])}")
            raise
    return 0


def _seed_summary(progress, summary):
    if progress.json:
        json_line("summary", progress.stream, command="swarm seed",
                  result=summary)
        return
    if progress.quiet:
        return
    for torrent in summary["torrents"]:
        torrent = dict(torrent, seconds=summary["seconds"])
        print(f"rdeploy: {safe(_line(torrent['torrent'], torrent))}",
              file=sys.stderr, flush=True)


# -- receive ------------------------------------------------------------------

def _confirm(args, progress):
    """Asked before anything is fetched: the whole disk is overwritten."""
    targetcmds.confirm_overwrite(
        args, progress, "swarm receive",
        f"the swarm's image will overwrite everything on "
        f"{safe(args['TARGET'])}.")


def _receive_values(args):
    seed_until = None if args["--seed-until"] is None else \
        whole_number(args["--seed-until"], "--seed-until")
    return {"listen": _listen(args), "peers": _peers(args),
            "upload_rate": _rate(args, "--upload-rate"),
            "download_rate": _rate(args, "--download-rate"),
            "seed_time": _seconds(args, "--seed-time", zero=True) or 0,
            "seed_until": seed_until, "wait": _seconds(args, "--wait"),
            "new_ids": args["--new-ids"]}


def _status_view(progress):
    """The swarm's state each tick: a JSON `swarm` event (every second),
    or the bar's tail (peers, rates)."""
    shown = [0.0]

    def status(state):
        now = time.monotonic()
        if now - shown[0] < 1:
            return
        shown[0] = now
        if progress.json:
            json_line("swarm", progress.stream, command="swarm receive",
                      **state)
        elif progress.bar is not None:
            progress.bar.set_postfix_str(
                f"peers {state['peers']}, web seeds {state['web_seeds']}, "
                f"down {format_size(state['download_rate'])}/s, "
                f"up {format_size(state['upload_rate'])}/s", refresh=False)
    return status


def _receive_line(summary):
    seconds = summary["seconds"]
    return (f"rdeploy: received {summary['source']} onto "
            f"{summary['target']}: {format_size(summary['wanted_bytes'])} "
            f"in {seconds:.1f} s (web seeds "
            f"{format_size(summary['web_seed_bytes'])}, peers "
            f"{format_size(summary['peer_bytes'])}; uploaded "
            f"{format_size(summary['uploaded_bytes'])}); every chunk and "
            f"the root digest checked" +
            (f"; seeded {summary['seed_seconds']:.0f} s" if
             summary["seed_seconds"] else "") +
            ("; resumed" if summary["resumed"] else ""))


def cmd_receive(args):
    from diskimage import sighold
    from diskimage.swarm import libtorrent
    from diskimage.swarm.receiver import receive
    from diskimage.swarm.source import load
    from diskimage.trust.policy import refuse_stream

    values = _receive_values(args)
    source, target = args["SOURCE"], args["TARGET"]
    ca_file = remotecmds.ca_file(args, source)
    refuse_stream("a swarm")
    with imagecmds.progress_for(args, "swarm receive") as progress:
        libtorrent()
        _confirm(args, progress)
        desc = load(source, ca_file=ca_file,
                    on_retry=remotecmds.retry_note("rdeploy", progress))
        summary = receive(desc, target, source_name=source,
                          progress=progress,
                          check_progress=progress.stage("check"),
                          status=_status_view(progress), warn=progress.warn,
                          **values)
        sighold.committed(target)
        progress.end(_receive_line(summary), summary,
                     lines=render.actions_lines(summary["actions"]))
    return 0
