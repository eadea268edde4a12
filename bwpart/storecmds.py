"""bwpart status and bwpart store ls|add|rm: what the service partition
holds."""

import json

from . import options, render


def cmd_status(args):
    from diskimage.service.status import status

    state = status(args["DISK"])
    if args["--json"]:
        print(json.dumps(state, indent=2, default=str))
    else:
        print(render.status_text(args["DISK"], state))
    return 0


def cmd_store(args):
    from diskimage.service import store

    service = options.service(args["DISK"])
    if args["ls"]:
        images = store.ls(service)
        if args["--json"]:
            print(json.dumps(images, indent=2, default=str))
        elif images:
            print(render.store_table(images))
        return 0
    if args["add"]:
        summary = store.add(service, args["IMAGE"], name=args["--name"],
                            progress=options.steps())
        render.summary(f"{args['DISK']}: stored {summary['name']} "
                       f"({summary['volumes']} volume"
                       f"{'' if summary['volumes'] == 1 else 's'})")
        return 0
    store.rm(service, args["NAME"])
    return 0


COMMANDS = {"status": cmd_status, "store": cmd_store}


def run(command, args):
    return COMMANDS[command](args)
