"""pxeconf init, build and dnsmasq: parse, call diskimage.netboot, render."""

import ipaddress
import json
import os
import sys

from diskimage.errors import BusyError, InputError, UsageError
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
    if args["--address"]:
        from diskimage.netboot.sitefile import _address as checked
        try:
            address = checked(address)
        except ValueError as exc:
            raise InputError(f"--address: {exc}") from None
    return address


def _journal(site):
    return os.path.join(os.path.dirname(os.path.abspath(site.path)),
                        "state", "journal.jsonl")


def boots(site):
    """{mac: jobs.Boot} of every machine in the site file: what its
    configs must say now, from the journal (jobs.Machines)."""
    from diskimage.netboot import jobs
    journal = _journal(site)
    try:
        machines = jobs.Machines(site, journal)     # syncs with the site
    except BusyError:
        raise BusyError(f"{journal}: pxeconf serve is running on this site "
                        f"and writes the configs itself") from None
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
    uefi = args["--uefi"]
    if args["--proxy"]:
        text = dnsmasqconf.proxy_config(site, address, args["--proxy"],
                                        args["--interface"], port, uefi=uefi)
    else:
        first, comma, last = args["--dhcp"].partition(",")
        if not comma:
            raise UsageError(f"--dhcp={args['--dhcp']}: give FIRST,LAST "
                             f"(e.g. 10.0.0.100,10.0.0.200)")
        _check_range(address, first, last)
        text = dnsmasqconf.dhcp_config(site, address, first, last,
                                       args["--interface"], port, uefi=uefi)
    output = args["--output"]
    if output not in (None, "-"):
        _check_output(output, site, args["--force"])
    dnsmasqconf.check(text)
    if output in (None, "-"):
        sys.stdout.write(text)
    else:
        configs_output(output, text)
    return 0


def _check_range(address, first, last):
    """FIRST <= LAST, and the server's ADDR on the range's network: the
    smallest network holding FIRST and LAST, taken as at least a /24 (a
    range gives no netmask; dnsmasq takes the interface's)."""
    try:
        low, high = (ipaddress.IPv4Address(a.strip()) for a in (first, last))
        server = ipaddress.IPv4Address(address)
    except ValueError:
        return              # dnsmasqconf names the one that is not
    if low > high:
        raise InputError(f"--dhcp={first},{last}: the first address is "
                         f"after the last")
    prefix = min(24, 32 - (int(low) ^ int(high)).bit_length())
    net = ipaddress.IPv4Network(f"{low}/{prefix}", strict=False)
    if server not in net:
        raise InputError(f"--address={address}: not in the network {net} of "
                         f"--dhcp={first},{last} (the clients could not "
                         f"reach it)")
    if low <= server <= high:
        raise InputError(f"--address={address}: inside --dhcp={first},"
                         f"{last}: it would be handed to a client")


HEADER = "# dnsmasq configuration written by pxeconf ("


def _check_output(path, site, force):
    """Refuse an output that would lose a file: the site file, anything in
    DIR/state/, a file not written by pxeconf dnsmasq (without --force),
    or one in a directory that is not there."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise InputError(f"{folder}: no such directory (the directory of "
                         f"-o {path})")
    real = os.path.realpath(path)
    home = os.path.dirname(os.path.realpath(site.path))
    state = os.path.join(home, "state")
    if real == os.path.realpath(site.path):
        raise InputError(f"-o {path}: is the site file; give the dnsmasq "
                         f"configuration a file of its own")
    if os.path.commonpath([real, state]) == state:
        raise InputError(f"-o {path}: inside {state}/ (pxeconf's own "
                         f"state); give another file")
    if force or not os.path.lexists(path):
        return
    try:
        with open(path, "rb") as f:
            first = f.readline(200)
    except OSError as exc:
        raise InputError(f"-o {path}: cannot read it: {exc.strerror}"
                         ) from None
    if not first.startswith(HEADER.encode()):
        raise InputError(f"-o {path}: exists and was not written by "
                         f"pxeconf dnsmasq; not replaced without --force")


def configs_output(path, text):
    from diskimage.host.partial import partial_file
    with partial_file(path, replace=True, mode=0o644) as out:
        out.write(text.encode())
