"""pxeconf init, build and dnsmasq: parse, call diskimage.netboot, render."""

import json
import os
import sys

from diskimage.errors import InputError, UsageError
from diskimage.netboot import bootroot, configs, dnsmasqconf


def run(command, args):
    return {"init": cmd_init, "build": cmd_build,
            "dnsmasq": cmd_dnsmasq}[command](args)


def _print_json(value):
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=True) + "\n")


def cmd_init(args):
    record = bootroot.init(args["DIR"], force=args["--force"])
    if args["--json"]:
        _print_json({"directory": os.path.abspath(args["DIR"]),
                     "loaders": record})
    return 0


def _site(args):
    from diskimage.netboot import site as sitemodel
    site = sitemodel.load(args["--site"])
    if args["--server"]:
        site = site.for_server(args["--server"])
    return site


def _address(args, site):
    address = args["--address"] or site.settings.address
    if not address:
        raise InputError(f"{site.path}: no address clients reach this "
                         f"server at: give --address=ADDR or set address "
                         f"in [site]")
    return address


def _journal(site):
    return os.path.join(os.path.dirname(os.path.abspath(site.path)),
                        "state", "journal.jsonl")


def boots(site):
    """{mac: jobs.Boot} of every machine in the site file: what its
    configs must say now, from the journal (jobs.Machines)."""
    from diskimage.netboot import jobs
    journal = _journal(site)
    machines = jobs.Machines(site, journal)     # syncs with the site
    try:
        return {mac: machines.next_boot(mac) for mac in site.hosts}
    finally:
        machines.close()


def build_files(site, address):
    server_url = f"http://{address}:{site.settings.http_port}/"
    return configs.build(site, boots(site), server_url, address)


def cmd_build(args):
    site = _site(args)
    address = _address(args, site)
    files = build_files(site, address)
    root = site.settings.root
    written = configs.write(root, files)
    removed = configs.prune(root, set(files))
    if args["--json"]:
        _print_json({"root": root, "written": written, "removed": removed})
    return 0


def cmd_dnsmasq(args):
    site = _site(args)
    address = _address(args, site)
    port = site.settings.http_port
    if args["--proxy"]:
        text = dnsmasqconf.proxy_config(site, address, args["--proxy"],
                                        args["--interface"], port)
    else:
        first, comma, last = args["--dhcp"].partition(",")
        if not comma:
            raise UsageError(f"--dhcp={args['--dhcp']}: give FIRST,LAST "
                             f"(e.g. 10.0.0.100,10.0.0.200)")
        text = dnsmasqconf.dhcp_config(site, address, first, last,
                                       args["--interface"], port)
    dnsmasqconf.check(text)
    output = args["--output"]
    if output in (None, "-"):
        sys.stdout.write(text)
    else:
        configs_output(output, text)
    return 0


def configs_output(path, text):
    from diskimage.host.partial import partial_file
    with partial_file(path, replace=True, mode=0o644) as out:
        out.write(text.encode())
