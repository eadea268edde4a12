"""pxeconf serve and pxeconf report: the service, and the imaging
environment's reports to it (diskimage.netboot.serve and .client)."""

import ipaddress
import sys
import threading

from cliutil.text import safe
from diskimage.errors import DiskImageError, UsageError
from diskimage.netboot import client

REPORT_EVENTS = ("started", "relay", "done", "failed")


_SAYING = threading.Lock()


def _say(line):
    """One line on stderr, whole (the servers' threads log too)."""
    with _SAYING:
        sys.stderr.write(f"pxeconf: {safe(line)}\n")
        sys.stderr.flush()


def _port(value, name):
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise UsageError(f"{name} takes a port number, not {value!r}") \
            from None
    if not 0 <= port <= 65535:
        raise UsageError(f"{name} must be a port from 0 to 65535, not {port}")
    return port


def _listen(value):
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise UsageError(f"--listen takes an IP address, not {value!r}") \
            from None
    if address.is_unspecified:
        raise UsageError(f"--listen={value}: an explicit address, not all "
                         f"of them")
    if address.version != 4:
        raise UsageError(f"--listen={value}: an IPv4 address (TFTP and "
                         f"DHCP boot clients speak IPv4)")
    return str(address)


def _network(value):
    if value is None:
        return None
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        raise UsageError(f"--proxy-dhcp takes a network such as "
                         f"10.0.0.0/24, not {value!r}") from None


def _uefi(value):
    from diskimage.netboot.dnsmasqconf import UEFI_LOADERS
    if value not in UEFI_LOADERS:
        raise UsageError(f"--uefi={value}: one of {', '.join(UEFI_LOADERS)}")
    return value


def serve(args):
    from diskimage.netboot import serve as service
    service.serve(
        args["--site"], _listen(args["--listen"]),
        http_port=None if args["--http-port"] is None
        else _port(args["--http-port"], "--http-port"),
        tftp_port=_port(args["--tftp-port"], "--tftp-port"),
        proxy_net=_network(args["--proxy-dhcp"]),
        interface=args["--interface"], uefi=_uefi(args["--uefi"]),
        token_file=args["--token-file"],
        server=args["--server"], log=_say)
    return 0


def report(args):
    event = args["EVENT"]
    if event not in REPORT_EVENTS:
        raise UsageError(f"report: EVENT is one of "
                         f"{', '.join(REPORT_EVENTS)}, not {event!r}")
    exit_code = None
    if args["--exit"] is not None:
        if event not in ("done", "failed"):
            raise UsageError("--exit goes with done or failed")
        try:
            exit_code = int(args["--exit"])
        except ValueError:
            raise UsageError(f"--exit takes a number, not "
                             f"{args['--exit']!r}") from None
    if args["--log"] is not None and event not in ("done", "failed"):
        raise UsageError("--log goes with done or failed")
    if args["--fetch"] is not None and event != "started":
        raise UsageError("--fetch goes with started")
    cmdline = args["--kernel-cmdline"]
    url, lease = client.find(args["--server-url"], args["--lease"], cmdline)
    reporter = client.Reporter(url, lease, log=lambda l: _say(f"report {l}"))
    if args["--fetch"] is not None:
        _fetch(reporter, client.find_job(cmdline), args["--fetch"])
    if event == "relay":
        relay = client.Relay(reporter, log=lambda l: _say(f"report {l}"))
        relay.run(sys.stdin.buffer, sys.stdout.buffer)
        return 0
    log = None
    if args["--log"] is not None:
        try:
            log = client.tail(args["--log"])
        except OSError as exc:
            _say(f"report: {args['--log']}: {exc.strerror}; sent without "
                 f"the log")
    if event == "done" and exit_code is None:
        exit_code = 0
    reporter.send(event, exit=exit_code, log=log)
    return 0


def _fetch(reporter, job_url, path):
    """The job into `path` before "started"; a job that cannot be fetched
    is reported failed with the fetch's error (and never started)."""
    try:
        client.fetch(job_url, path, log=lambda l: _say(f"report {l}"))
    except client.Unfetched as exc:
        try:
            reporter.send("failed", log=[f"pxeconf report: job not "
                                         f"fetched: {exc}"])
        except DiskImageError as also:
            raise client.Unfetched(f"{exc}; and failed was not reported: "
                                   f"{also}") from None
        raise client.Unfetched(f"{exc}; reported failed") from None


def run(command, args):
    return serve(args) if command == "serve" else report(args)
