"""pxeconf - network boot beside the site's DHCP server: menus, per-machine
one-shot jobs, every loader's configs, proxyDHCP, and a TFTP/HTTP server
with a web console.

Usage:
  pxeconf init DIR [--force] [--json]
  pxeconf menu add NAME (--kernel=PATH --initrd=PATH | --bundle=DIR | --local | --job=NAME) [--label=TEXT] [--cmdline=TEXT] [--site=FILE]
  pxeconf menu rm NAME [--site=FILE]
  pxeconf menu list [--json] [--site=FILE]
  pxeconf menu default NAME [--timeout=SECONDS] [--site=FILE]
  pxeconf job add NAME --script=FILE (--bundle=DIR | --kernel=PATH --initrd=PATH) [--label=TEXT] [--cmdline=TEXT] [--retries=N] [--site=FILE]
  pxeconf job rm NAME [--site=FILE]
  pxeconf job list [--json] [--site=FILE]
  pxeconf host add MAC [--job=NAME] [--once | --always] [--name=NAME] [--menu=NAME] [--site=FILE]
  pxeconf host rm MAC [--site=FILE]
  pxeconf host list [--json] [--site=FILE]
  pxeconf build [--server=NAME] [--address=ADDR] [--json] [--site=FILE]
  pxeconf dnsmasq (--proxy=NET | --dhcp=RANGE) [--interface=IF] [--address=ADDR] [--uefi=LOADER] [--server=NAME] [-o FILE] [--force] [--site=FILE]
  pxeconf serve --listen=ADDR [--proxy-dhcp=NET] [--interface=IF] [--uefi=LOADER] [--http-port=PORT] [--tftp-port=PORT] [--token-file=FILE] [--server=NAME] [--site=FILE]
  pxeconf status [--json] [--site=FILE]
  pxeconf report EVENT [--server-url=URL] [--lease=ID] [--exit=N] [--log=FILE] [--fetch=FILE] [--kernel-cmdline=FILE]
  pxeconf help [COMMAND]
  pxeconf (-h | --help)
  pxeconf --version

Commands:
  init     Make DIR a site: DIR/pxeconf.site (a commented site file to
           edit), DIR/boot/ (the served root) with the loaders copied from
           Debian's packages, and DIR/state/ (the journal).
  menu     The boot menu's entries, and its default entry and timeout.
  job      Jobs: a shell script run by the imaging environment (a bootdisk
           PXE bundle), with its status reported back to this server; the
           script reaches the environment as rd.job= on the kernel command
           line (so the bundle itself is made without --job).
  host     Machines by MAC: a name, an assigned job (runs once, then the
           machine boots locally; --always: at every boot) or a menu entry
           of its own.  --once or --always alone on a machine that has a
           job: keep the job, with a new lease.
  build    Write every loader's configs into the boot root: pxelinux,
           GRUB (both per-machine names) and iPXE, menu and per-machine.
  dnsmasq  Print (or write to FILE) a dnsmasq configuration: proxyDHCP
           beside the site's DHCP server (--proxy=NET), or full DHCP on an
           isolated network (--dhcp=FIRST,LAST); checked by dnsmasq --test.
  serve    Run the PXE service on ADDR: TFTP, HTTP (files, the status API
           and the web console at /), with --proxy-dhcp a dnsmasq in
           proxyDHCP mode, and a BitTorrent seeder of the site file's
           swarm-seed torrents; until Ctrl-C or SIGTERM.
  status   Every machine known: name, firmware, job, state, progress, last
           result (from the journal).
  report   Inside the imaging environment: tell the server it booted from
           that the job is started, its progress (lines on stdin), done or
           failed.  URL and lease come from the kernel command line
           (rd.pxeconf=URL rd.pxeconf.lease=ID) unless given.  The
           option --fetch: started first fetches the job (rd.job=URL), 5
           tries 1, 2, 4 and 8 s apart; a job not fetched is reported
           failed and never started.
  help     Show this text, or only the part about COMMAND.

Options:
  --site=FILE           The site file [default: pxeconf.site].
  --force               init: write into a DIR that is not empty; dnsmasq:
                        replace a FILE not written by pxeconf dnsmasq.
  --kernel=PATH         A kernel inside the boot root.
  --initrd=PATH         Its initrd inside the boot root.
  --bundle=DIR          A `bootdisk pxe` directory inside the boot root
                        (its vmlinuz and initrd.img).
  --local               The entry boots the local disk.
  --job=NAME            The job a machine runs (host add), or a menu entry
                        that runs a job by hand (menu add).
  --script=FILE         The job's shell script, inside the boot root.
  --label=TEXT          What the menu shows.
  --cmdline=TEXT        More kernel command line words.
  --retries=N           Boots after "started" with no ending that run the
                        job again before it is marked failed.
  --timeout=SECONDS     How long the menu waits for a choice.
  --once                The job runs once; after "done" the machine boots
                        locally (the default).
  --always              The job runs at every boot.
  --name=NAME           The machine's name.
  --menu=NAME           The menu entry this machine boots (no job).
  --server=NAME         Apply the site file's [server NAME] overrides.
  --address=ADDR        build, dnsmasq: the address clients reach this
                        server at (default: the site file's address).
  --proxy=NET           proxyDHCP for the network NET (e.g. 10.0.0.0/24).
  --dhcp=RANGE          Full DHCP handing out FIRST,LAST.
  --interface=IF        The interface dnsmasq answers on.
  --uefi=LOADER         dnsmasq, serve: what UEFI PXE clients get: ipxe
                        (snponly.efi) or shim (shimx64.efi then the signed
                        GRUB, for Secure Boot) [default: ipxe].
  -o FILE --output=FILE Write the dnsmasq configuration to FILE.
  --listen=ADDR         The address to serve on (explicit: never all).
  --proxy-dhcp=NET      Also run dnsmasq in proxyDHCP mode for NET.
  --http-port=PORT      HTTP port (default: the site file's http-port,
                        which is 80 unless set).
  --tftp-port=PORT      TFTP port [default: 69].
  --token-file=FILE     The console's token: read from FILE, or made and
                        written there (mode 0600) and printed once.
  --server-url=URL      report: the server (default: rd.pxeconf=).
  --lease=ID            report: the job's lease (default: rd.pxeconf.lease=).
  --exit=N              report done/failed: the job's exit status.
  --log=FILE            report done or failed: send the tail of FILE.
  --fetch=FILE          report started: first fetch the job into FILE.
  --kernel-cmdline=FILE  report: the kernel command line to read
                        [default: /proc/cmdline].
  --json                Print JSON.
  -h --help             Show this text.
  --version             Show the version.

Exit codes:
  0 success; 1 other failure (a tool failed, dnsmasq died, an I/O error);
  2 usage error; 3 bad input (a site file error, named with file, line and
  field; an unknown entry, job or MAC; DIR not empty); 6 no space left;
  9 busy (another pxeconf is editing the site file; the port is taken;
  build while pxeconf serve runs on the site);
  10 a tool or loader is not installed (named with its Debian package);
  70 internal error; 130 interrupted (143 SIGTERM, 129 SIGHUP).

Examples:
  pxeconf init /srv/pxe && cd /srv/pxe
  bootdisk pxe -o boot/env
  pxeconf job add restore --bundle=env --script=jobs/restore.sh
  pxeconf host add 52:54:00:12:34:56 --job=restore --once --name=pc01
  pxeconf serve --listen=10.0.0.2 --proxy-dhcp=10.0.0.0/24
"""

import importlib
import sys

from cliutil.runner import parse, run
from diskimage import __version__

#: subcommand -> module of this package holding run(args) -> int
HANDLERS = {
    "init": "buildcmds", "build": "buildcmds", "dnsmasq": "buildcmds",
    "menu": "sitecmds", "job": "sitecmds", "host": "sitecmds",
    "status": "sitecmds",
    "serve": "servecmds", "report": "servecmds",
}


def _main(argv):
    args = parse(__doc__, argv, f"pxeconf {__version__}")
    command = next(name for name in HANDLERS if args.get(name))
    module = importlib.import_module(f"{__package__}.{HANDLERS[command]}")
    return module.run(command, args)


def main(argv=None, exiting=None):
    """`exiting` (default: when argv is None): the process exits when this
    returns (cliutil.runner.run)."""
    return run("pxeconf", _main, sys.argv[1:] if argv is None else argv,
               exiting=argv is None if exiting is None else exiting)
