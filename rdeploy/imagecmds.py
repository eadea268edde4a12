"""rdeploy's commands on images: capture, restore, verify and info (option
values converted and checked here, before any file is opened; the library
does the work; render.py and cliutil.render word the results).  cli.py
holds the usage text and the dispatch."""

import json
import os
import sys

from cliutil import render as shared
from cliutil.progress import MODES, Progress
from cliutil.runner import whole_number
from cliutil.confirm import typed_yes
from cliutil.text import safe
from diskimage import sighold
from diskimage.errors import InputError, TargetError, UsageError

from . import remotecmds, render, targetcmds, trustcmds


def _partition_list(text):
    if text is None:
        return None
    try:
        numbers = sorted({int(p) for p in text.split(",") if p.strip()})
    except ValueError:
        raise UsageError(f"--partitions takes numbers like 1,3, not {text!r}")\
            from None
    if not numbers or numbers[0] < 1:
        raise UsageError(f"--partitions takes numbers like 1,3, not {text!r}")
    return numbers


def _threads(args):
    if args["--threads"] in (None, "all cores"):
        return None
    return whole_number(args["--threads"], "--threads")


def progress_for(args, label):
    mode = args["--progress"]
    if mode not in MODES:
        raise UsageError(f"--progress takes {', '.join(MODES[:-1])} or "
                         f"{MODES[-1]}, not {mode!r}")
    return Progress(mode, label, quiet=args["--quiet"])


def _result(summary, *drop):
    """A library summary as the JSON `result` of the end event."""
    return {k: v for k, v in summary.items() if k not in drop}


def _open_image(path, ca_file=None, progress=None):
    """The image input for IMAGE: stdin for "-", an HttpInput for an
    http(s) URL (diskimage.remote), else its volumes."""
    from diskimage.image.volumes import PipeInput
    from diskimage.remote import open_input
    if path == "-":
        if sys.stdin.isatty():
            raise InputError("stdin is a terminal; pipe an image into "
                             "rdeploy, or give a file")
        return PipeInput(sys.stdin.buffer.raw)
    return open_input(path, ca_file=ca_file,
                      on_retry=remotecmds.retry_note("rdeploy", progress))


def _capture_values(args):
    """capture's option values, converted and checked before any file is
    opened (a usage error comes before "no such file")."""
    from diskimage.capture import SECTOR_SIZES
    from diskimage.image.compression import Compressor
    from diskimage.sizes import parse_size_at_least
    from diskimage.image.volumes import MIN_SPLIT

    if args["--compress"] == "none" and args["--level"] is not None:
        raise UsageError("--level does not go with --compress=none "
                         "(chunks are stored as they are); drop it, or "
                         "choose lz4 or zstd")
    level = None if args["--level"] is None else \
        whole_number(args["--level"], "--level")
    split = None
    if args["--split"] is not None:
        if args["IMAGE"] == "-":
            raise UsageError("--split needs an image file, not stdout")
        split = parse_size_at_least(args["--split"], MIN_SPLIT, "--split",
                                    "4K")
    sector_size = None
    if args["--sector-size"] is not None:
        sector_size = whole_number(args["--sector-size"], "--sector-size")
        if sector_size not in SECTOR_SIZES:
            raise UsageError(f"--sector-size must be 512, 1024, 2048 or "
                             f"4096, not {sector_size}")
    return {"compressor": Compressor(args["--compress"], level),
            "sector_size": sector_size,
            "split": split, "threads": _threads(args),
            "partitions": _partition_list(args["--partitions"])}


def _sealer(args):
    """capture's Sealer for --encrypt (the passphrase asked or read here,
    before any file is opened), else None."""
    from cliutil.passphrase import from_args
    from diskimage.image.seal import Sealer
    source = from_args(args, what=args["IMAGE"], encrypting=True)
    if not args["--encrypt"]:
        if source.given:
            raise UsageError("--passphrase-file and --passphrase-env go "
                             "with --encrypt when capturing")
        return None
    return Sealer.create(source)


def _passphrase(args):
    from cliutil.passphrase import from_args
    image = args["IMAGE"]
    return from_args(args, what="the image on stdin" if image == "-"
                     else remotecmds.shown(image))


def cmd_capture(args):
    from diskimage.capture import capture
    from diskimage.image.volumeout import StreamOutput, VolumeOutput

    values = _capture_values(args)
    sealer = _sealer(args)
    with progress_for(args, "capture") as progress:
        if args["IMAGE"] == "-":
            if sys.stdout.isatty():
                raise InputError("stdout is a terminal; redirect the image "
                                 "to a file or a pipe")
            output = StreamOutput(sys.stdout.buffer)
        else:
            output = VolumeOutput(args["IMAGE"], values["split"],
                                  replace=args["--force"])
        summary = capture(args["SOURCE"], output,
                          compressor=values["compressor"],
                          partitions=values["partitions"],
                          raw=args["--raw"], threads=values["threads"],
                          description=args["--description"],
                          progress=progress,
                          sector_size=values["sector_size"],
                          allow_mounted=args["--yes"],
                          mounted_hint="give --yes to capture it anyway",
                          sealer=sealer)
        for warning in summary["warnings"]:
            progress.warn(warning)
        progress.end(render.capture_line(args["SOURCE"], args["IMAGE"],
                                         summary), _result(summary))
    return 0


def _confirm(args, plan, progress):
    if args["--yes"]:
        return
    # True whether TARGET exists or restore would create it.
    if progress.json:
        raise TargetError(f"restore needs --yes to write {args['TARGET']} "
                          f"(--progress=json never asks)")
    if args["IMAGE"] == "-" or not sys.stdin.isatty():
        raise TargetError(f"restore needs --yes to write {args['TARGET']} "
                          f"(no terminal to ask on)")
    print(f"rdeploy: about to write {safe(plan.describe())}.",
          file=sys.stderr)
    typed_yes("Everything on it will be overwritten.", args["TARGET"])


def _sizes(specs):
    from diskimage.sizes import parse_size
    sizes = {}
    for spec in specs:
        number, _, size = spec.partition("=")
        if not number.isdigit() or int(number) < 1 or not size:
            raise UsageError(f"--size takes N=SIZE like 2=20G, not {spec!r}")
        sizes[int(number)] = parse_size(size)
    return sizes


def _layout_mode(args):
    if args["--grow"]:
        return "grow"
    if args["--resize"] is None:
        return "keep"
    if args["--resize"] != "proportional":
        raise UsageError(f"--resize takes proportional, not "
                         f"{args['--resize']!r}")
    return "proportional"


def _restore_values(args):
    """restore's option values, converted and checked before any file is
    opened."""
    into = None if args["--into"] is None else \
        whole_number(args["--into"], "--into")
    mode, sizes = _layout_mode(args), _sizes(args["--size"])
    partitions = _partition_list(args["--partitions"])
    if (partitions or into) and (mode != "keep" or sizes):
        raise UsageError("--grow, --resize and --size lay out a whole "
                         "disk; they do not go with --partitions or "
                         "--into")
    if args.get("--delta") and (into or mode != "keep" or sizes):
        raise UsageError("--delta writes the image in place over the same "
                         "layout; it does not go with --grow, --resize, "
                         "--size or --into")
    return {"into": into, "mode": mode, "sizes": sizes,
            "partitions": partitions,
            "threads": _threads(args) or os.cpu_count()}


def cmd_restore(args):
    from diskimage.image.reader import RecordStream
    from diskimage.restore import plan_restore, run_restore

    values = _restore_values(args)
    ca_file = remotecmds.ca_file(args)
    keys = trustcmds.restore_keys(args)
    with progress_for(args, "restore") as progress:
        passphrase = _passphrase(args)
        checked = keys and trustcmds.check_before_restore(
            args, keys, values["threads"], progress, passphrase=passphrase)
        with _open_image(args["IMAGE"], ca_file, progress) as source:
            stream = trustcmds.checked_stream(
                source, checked, args["IMAGE"], passphrase=passphrase) \
                if checked else RecordStream(source, passphrase=passphrase)
            plan = plan_restore(
                stream, args["TARGET"], partitions=values["partitions"],
                into=values["into"], mode=values["mode"],
                sizes=values["sizes"], new_ids=args["--new-ids"],
                overwrite_protected=args["--overwrite-protected"],
                tmpdir=args["--tmpdir"], delta=bool(args.get("--delta")))
            resume = targetcmds.restore_marker(plan, args["--resume"],
                                               progress)
            if args["--dry-run"]:
                print(render.plan_text(plan.to_dict()))
                progress.end(result=plan.to_dict())
                return 0
            _confirm(args, plan, progress)
            summary = run_restore(
                plan, threads=values["threads"],
                verify=args["--verify"], progress=progress,
                readback_progress=progress.stage("read-back"),
                resume=resume, image_name=targetcmds.image_name(
                    args["IMAGE"]),
                # the commit point: from there on an interrupt does not
                # undo the restore (diskimage.sighold)
                committed=lambda: sighold.committed(args["TARGET"]))
        progress.end(render.restore_line(remotecmds.shown(args["IMAGE"]),
                                         args["TARGET"], summary),
                     trustcmds.signed_result(_result(summary), checked),
                     lines=render.actions_lines(summary.get("actions")) +
                     trustcmds.signed_lines(checked))
    return 0


def cmd_verify(args):
    from diskimage.image.verify import verify

    threads = _threads(args) or os.cpu_count()
    ca_file = remotecmds.ca_file(args)
    keys = trustcmds.verify_keys(args)
    with progress_for(args, "verify") as progress:
        with _open_image(args["IMAGE"], ca_file, progress) as source:
            passphrase = _passphrase(args)
            summary = verify(source, threads=threads, progress=progress,
                             passphrase=passphrase)
        signed, signer = trustcmds.verify_signature(
            args, keys, summary, passphrase=passphrase)
        line = shared.verify_line(remotecmds.shown(args["IMAGE"]), summary)
        if not args["--quiet"]:
            print(line)     # the result, on stdout
            if signed:
                print(signed)
        result = _result(summary, "metadata")
        if signer:
            result["signature"] = signer
        progress.end(line if progress.json else None, result)
    return 0


def cmd_info(args):
    from diskimage.image.info import image_info

    source = _passphrase(args)
    with remotecmds.image_arg(args) as image:
        info = image_info(image, passphrase=source if source.given else None)
    text = shared.sealed_text if "root" in info and "areas" not in info \
        else shared.info_text
    print(json.dumps(info, indent=2) if args["--json"] else text(info))
    return 0
