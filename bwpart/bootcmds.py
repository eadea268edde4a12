"""bwpart boot-next (arm the next boots for a job) and service-boot (what
the service environment runs at each of them)."""

from cliutil.runner import whole_number

from . import options, render


def cmd_boot_next(args):
    tries = whole_number(args["--tries"], "--tries")
    firmware = options.firmware(args)
    from diskimage.service.bootnext import boot_next

    summary = boot_next(args["DISK"], args["--job"], tries=tries,
                        firmware=firmware, progress=options.steps())
    render.warnings(summary.get("warnings", ()))
    render.summary(f"{args['DISK']}: the next boot runs {summary['job']} "
                   f"({summary['tries']} tries, {summary['firmware']})")
    return 0


def cmd_service_boot(args):
    """The steps go to stderr whatever it is (the environment sends them
    to the consoles); the exit status is the job's."""
    from diskimage.service import serviceboot

    return serviceboot.run(args["ID"], progress=options.steps(always=True))


COMMANDS = {"boot-next": cmd_boot_next, "service-boot": cmd_service_boot}


def run(command, args):
    return COMMANDS[command](args)
