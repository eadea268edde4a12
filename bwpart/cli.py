"""bwpart - a hidden service partition on a PC's own disk that boots it into
the imaging environment until a job is done, then back as before; with a
local image store, an update that switches only when whole, and a removal
that puts every changed byte back.

Usage:
  bwpart install DISK --env=BUNDLE [--size=SIZE] [--shrink=N] [--firmware=FW] [--efi-loader=KIND] [--dry-run] [--yes] [--json]
  bwpart boot-next DISK --job=FILE [--tries=N] [--firmware=FW]
  bwpart status DISK [--json]
  bwpart update DISK --env=BUNDLE [--size=SIZE]
  bwpart remove DISK [--grow=N] [--yes]
  bwpart store ls DISK [--json]
  bwpart store add DISK IMAGE [--name=NAME]
  bwpart store rm DISK NAME
  bwpart service-boot ID
  bwpart help [COMMAND]
  bwpart (-h | --help)
  bwpart --version

Commands:
  install       Add the service partition to DISK: in free space at the
                end, or where partition N's filesystem and partition shrink
                first (--shrink=N); FAT32, the environment of BUNDLE (what
                `bootdisk bundle` or `bootdisk pxe` writes), a BIOS and a
                UEFI loader, and the record of every byte changed.  The
                plan is printed first; on a terminal it asks, otherwise it
                needs --yes.  Nothing is written before every check passed.
  boot-next     Boot the machine into the service environment at its next
                boots until the job (FILE, a shell script) succeeds or its
                tries (--tries) are used up, then as before.  UEFI: a Boot####
                entry and BootNext; BIOS: the active flag (MBR) or the
                legacy BIOS bootable attribute (GPT).
  status        Installed or not, the environment's version, the room, the
                store's images, the pending job and its tries, what is
                armed, the last result and what remove would restore.
  update        Write BUNDLE's environment beside the current one and switch
                to it only when whole (an interrupted update leaves the old
                one booting); the store is kept; --size grows the partition
                into free space right after it.
  remove        Put back every byte install and boot-next changed (table,
                flags, NVRAM entries), after showing what; on a terminal it
                asks, otherwise it needs --yes; --grow=N grows partition N
                (the one right before the service partition) back over the
                space.
  store         The local image store on the service partition: ls, add an
                image (split into volumes below 4 GiB), rm one.
  help          Show this text, or only the part about COMMAND.

Internal:
  service-boot  Run by the service environment at each service boot (its
                kernel command line carries rd.bwpart=ID): the pending job,
                its try counted, then armed again or put back; its steps
                as "bwpart: ..." lines on stderr.

Options:
  --env=BUNDLE          A bootdisk bundle directory (vmlinuz, initrd.img,
                        bundle.json).
  --size=SIZE           The service partition's size, a multiple of 1M, at
                        least 256M (install: default 1G; update: grow to).
  --shrink=N            Make room by shrinking partition N's filesystem and
                        partition first.
  --firmware=FW         bios or uefi (default: the running machine's).
  --efi-loader=KIND     shim (Debian's signed shim and GRUB, for Secure
                        Boot) or grub (a standalone GRUB, unsigned)
                        [default: shim].
  --dry-run             Print the plan and write nothing.
  --yes                 Go on without asking.
  --job=FILE            The job, a shell script run in the environment
                        (at most 128 KiB).
  --tries=N             Service boots before the job is given up
                        [default: 3].
  --grow=N              Grow partition N (the one right before the service
                        partition) over the space remove frees.
  --name=NAME           store add: the image's name in the store (default:
                        the image file's name without .rdi).
  --json                Print JSON.
  -h --help             Show this text.
  --version             Show the version.

Exit codes:
  0 success; 1 other failure (a tool failed, an I/O error); 2 usage error;
  3 bad input (no such disk, a bundle without bundle.json or with a file
  whose sha256 differs, a damaged service partition, not an .rdi image);
  5 refused before any write (no service partition, no room and nothing
  that can shrink, a mounted partition that would have to shrink,
  BitLocker or LUKS, a boot code it cannot change safely, already
  installed: use update, a table changed since install, not confirmed);
  6 no space left on the service partition (store add, update);
  8 failed after the first write (the message says what was done;
  bwpart remove undoes it); 9 busy: another bwpart is changing the disk;
  10 a tool is not installed (named with its Debian package);
  70 internal error; 130 interrupted (143 SIGTERM, 129 SIGHUP).

Examples:
  bootdisk bundle -o env --secure-boot
  bwpart install /dev/sda --env=env --shrink=2 --dry-run
  bwpart install /dev/sda --env=env --shrink=2 --yes
  bwpart boot-next /dev/sda --job=capture.sh --tries=3
  bwpart status /dev/sda --json
  bwpart store add /dev/sda lab.rdi
  bwpart update /dev/sda --env=env2
  bwpart remove /dev/sda --grow=2 --yes
"""

import importlib
import sys

from cliutil.runner import parse, run
from diskimage import __version__

#: subcommand -> module of this package holding run(command, args) -> int
HANDLERS = {
    "install": "installcmds", "update": "installcmds",
    "remove": "installcmds",
    "boot-next": "bootcmds", "service-boot": "bootcmds",
    "status": "storecmds", "store": "storecmds",
}


def _main(argv):
    args = parse(__doc__, argv, f"bwpart {__version__}")
    command = next(name for name in HANDLERS if args.get(name))
    module = importlib.import_module(f"{__package__}.{HANDLERS[command]}")
    return module.run(command, args)


def main(argv=None, exiting=None):
    """`exiting` (default: when argv is None): the process exits when this
    returns (cliutil.runner.run)."""
    return run("bwpart", _main, sys.argv[1:] if argv is None else argv,
               exiting=argv is None if exiting is None else exiting)
