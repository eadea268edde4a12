"""bwpart install, update, remove: the changes to the disk's layout."""

import json
import sys

from . import options, render


def cmd_install(args):
    size = options.size(args)
    shrink = options.number(args, "--shrink")
    firmware = options.firmware(args)
    loader = options.choice(args, "--efi-loader", options.EFI_LOADERS) \
        or "shim"
    from diskimage.service.install import install
    from diskimage.service.plan import plan_install

    disk = args["DISK"]
    plan = plan_install(disk, args["--env"], size=size, shrink=shrink,
                        firmware=firmware, efi_loader=loader)
    if args["--json"] and args["--dry-run"]:
        print(json.dumps(plan.to_dict(), indent=2, default=str))
        return 0
    if not args["--json"]:
        print(render.lines(plan.lines()))
    elif not args["--yes"] and sys.stdin.isatty():
        # about to ask: the plan in words where the question is
        print(render.lines(plan.lines()), file=sys.stderr)
    if args["--dry-run"]:
        return 0
    options.confirm(args, "install",
                    f"add a service partition to {disk} as planned above")
    summary = install(plan, progress=options.steps())
    if args["--json"]:
        print(json.dumps({"plan": plan.to_dict(), "installed": summary},
                         indent=2, default=str))
    else:
        render.summary(f"{disk}: service partition "
                       f"{summary['partition']['number']} installed, "
                       f"environment in slot {summary['slot']}")
    return 0


def cmd_update(args):
    size = options.size(args)
    from diskimage.service.update import update

    summary = update(args["DISK"], args["--env"], size=size,
                     progress=options.steps())
    was = f" (was {summary['old_slot']})" if summary.get("old_slot") \
        else ""
    render.summary(f"{args['DISK']}: environment {summary['version']} in "
                   f"slot {summary['new_slot']}{was}; store kept")
    return 0


def cmd_remove(args):
    grow = options.number(args, "--grow")
    from diskimage.service.remove import check, remove
    from diskimage.service.status import status

    disk = args["DISK"]
    state = status(disk)
    if not state.get("installed"):
        options.service(disk)       # the TargetError: nothing to remove
    check(disk, grow=grow)          # a refusal before the plan is shown
    print(render.lines(render.remove_lines(disk, state, grow)))
    options.confirm(args, "remove",
                    f"remove the service partition of {disk} and put back "
                    f"what is listed above")
    summary = remove(disk, grow=grow, progress=options.steps())
    render.warnings(summary.get("notes", ()))
    render.summary(f"{disk}: service partition {summary['partition']} "
                   f"removed")
    return 0


COMMANDS = {"install": cmd_install, "update": cmd_update,
            "remove": cmd_remove}


def run(command, args):
    return COMMANDS[command](args)
