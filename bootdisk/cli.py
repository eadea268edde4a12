"""bootdisk - build boot media that carry the frozen toolkit and run a job.

Usage:
  bootdisk initrd -o OUT [--add=SRC:DEST]...
                [--trust=PUBKEY]... [options]
  bootdisk iso -o OUT [--secure-boot] [--add=SRC:DEST]...
             [--trust=PUBKEY]... [options]
  bootdisk usb -o OUT [--size=SIZE] [--secure-boot] [--add=SRC:DEST]...
             [--trust=PUBKEY]... [options]
  bootdisk pxe -o DIR [--secure-boot] [--add=SRC:DEST]...
             [--trust=PUBKEY]... [options]
  bootdisk bundle -o DIR [--secure-boot] [--add=SRC:DEST]...
                [--trust=PUBKEY]... [options]
  bootdisk info ARTIFACT [--json]
  bootdisk toolkit [-o OUT] [options]
  bootdisk help [COMMAND]
  bootdisk (-h | --help)
  bootdisk --version

Commands:
  initrd   Write the imaging environment as a compressed initramfs: busybox,
           the frozen toolkit (every command on PATH) with its libraries,
           kernel modules for common disks, NICs and filesystems, and an
           /init that brings the network up by DHCP, runs the job, prints
           "bootdisk: job finished: exit 0" or "bootdisk: job FAILED: exit N"
           and then powers off, reboots or starts a shell.
  iso      A hybrid ISO: boots as a CD and as a disk (USB stick), under BIOS
           (isolinux) and UEFI (GRUB), straight to the job.
  usb      A USB disk image: MBR, one FAT32 partition, syslinux for BIOS and
           EFI/BOOT/BOOTX64.EFI for UEFI.
  pxe      A network-boot directory: kernel, initrd, pxelinux.0 with
           pxelinux.cfg/default for BIOS, and GRUB's bootx64.efi with
           grub.cfg for UEFI; serve DIR by TFTP.  DIR also holds
           bundle.json (as a bundle does).
  bundle   An environment bundle for `bwpart install --env=DIR`: DIR/vmlinuz,
           DIR/initrd.img and DIR/bundle.json (format, toolkit version, a
           unique build id, build time, kernel release, command line, the
           sha256 of every file, secure_boot); with --secure-boot also the
           signed loaders shimx64.efi, grubx64.efi and mmx64.efi.
  info     What an artifact (initrd, ISO, USB image or PXE directory) holds:
           kernel release, modules, binaries, job, sizes, and what the
           toolkit printed when it was started in the medium's root (by
           chroot) at build time.
  toolkit  Freeze the toolkit (the multi-call binary that media carry) with
           PyInstaller, from the recipe installed with the package, into
           the cache (or OUT); takes minutes.  The cache is
           ~/.cache/rdeploy-toolkit/VERSION/deploytool, under
           $XDG_CACHE_HOME instead of ~/.cache when that is set.  initrd,
           iso, usb and pxe do this themselves when they find no toolkit.
           Takes --force and --quiet.  Needs PyInstaller:
           pip install 'rdeploy-toolkit[freeze]'.
  help     Show this text, or only the part about COMMAND (as
           `bootdisk COMMAND --help` does).

Options:
  -o OUT --output=OUT   Where to write (a directory for pxe); a file, not
                        "-".  For toolkit: instead of the cache.
  --job=FILE            A shell script, run by busybox sh in /tmp with every
                        toolkit command on PATH; its exit status decides
                        between --on-success and --on-failure.  Without it,
                        give rd.job=http://HOST/job.sh on the kernel command
                        line (fetched with wget at boot).
  --kernel=VMLINUZ      The kernel (default: the newest /boot/vmlinuz-*
                        that has modules, from linux-image-amd64).
  --modules=DIR         Its modules (default: /lib/modules/RELEASE).
  --add=SRC:DEST        Put a host file or directory at DEST; repeatable.
  --trust=PUBKEY        A public key (rdeploy keygen's KEYFILE.pub) the
                        environment trusts; repeatable.  With it, every
                        restore on the medium requires an image signed
                        by one of these keys (rdeploy sign), checked
                        before anything is written; no option turns that
                        off.  The keys go to /etc/rdeploy/trusted/.
  --cmdline=TEXT        Kernel command line of the boot entries
                        [default: console=tty0 console=ttyS0,115200 panic=10].
  --on-success=ACTION   poweroff, reboot or shell [default: poweroff].
  --on-failure=ACTION   poweroff, reboot or shell [default: shell].
  --toolkit=FILE        The frozen multi-call binary (default: this binary
                        when frozen, else dist/deploytool of `make freeze`,
                        else the one `bootdisk toolkit` cached; when there
                        is none, it is built there first, said on stderr).
  --compress=CODEC      gzip or zstd: how the initramfs is compressed
                        [default: gzip].
  --timeout=SECONDS     Boot menu timeout before the job entry [default: 3].
  --size=SIZE           USB image size, e.g. 128M (default: what the files
                        need, plus room).
  --secure-boot         UEFI boots the signed chain: shim (signed by
                        Microsoft) -> Debian's signed GRUB -> the signed
                        kernel (shim-signed, grub-efi-amd64-signed).  An
                        unsigned kernel is refused.  BIOS boot is as
                        without it.
  --force               Replace an existing OUT.
  -q --quiet            Print nothing but errors (else one summary line on
                        stderr).
  --json                Print JSON.
  -h --help             Show this text.
  --version             Show the version.

Kernel command line words the environment reads:
  rd.job=URL            fetch the job at boot (overrides --job)
  rd.on_success=ACTION  rd.on_failure=ACTION   override the actions

Exit codes:
  0 success; 1 other failure (a tool or PyInstaller failed, I/O error);
  2 usage error; 3 bad input (missing kernel, module directory, job file
  or boot loader, modules of another kernel, OUT exists without --force,
  OUT is a symlink to nothing, --secure-boot with an unsigned kernel or
  without the signed loaders, a --trust file that is not a public key,
  OUT.partial is a symlink or not a file, a
  filesystem without locks, a toolkit whose library closure cannot be
  computed or that does not start in the medium's root); 6 no space left
  for OUT; 7 --compress=zstd without the zstandard package; 9 busy:
  another bootdisk is writing OUT.partial now; 10 a tool is not installed
  (mkfs.fat, mtools, syslinux, grub-mkstandalone, ldd: named with its
  Debian package; PyInstaller, to build the toolkit: named with the
  extra to install); 70 internal error; 130 interrupted
  (143 SIGTERM, 129 SIGHUP).

Examples:
  bootdisk initrd -o restore.initrd --job=restore.sh
  qemu-system-x86_64 -kernel /boot/vmlinuz-$(uname -r) -initrd restore.initrd \\
      -append console=ttyS0 -nographic
  bootdisk iso -o lab.iso --job=restore.sh --on-failure=shell
  bootdisk usb -o stick.img --cmdline="console=tty0 rd.job=http://srv/j.sh"
  bootdisk pxe -o /srv/tftp --job=restore.sh && bootdisk info /srv/tftp
  pip install 'rdeploy-toolkit[freeze]' && bootdisk toolkit
"""

import json
import os
import sys

from cliutil import toolkit as toolkits
from cliutil.runner import parse, run
from cliutil.text import safe
from diskimage import __version__
from diskimage.errors import UsageError
from diskimage.host.partial import refuse_existing
from diskimage.sizes import format_size, parse_size

from . import info as infos, trust as trusts
from .initramfs import Spec, build_initrd, check_values
from .initramfs import _split_add as split_add


def _spec(args):
    default = Spec()
    return Spec(
        kernel=args["--kernel"],
        modules=args["--modules"],
        job=args["--job"],
        adds=tuple(args["--add"] or ()),
        cmdline=args["--cmdline"],
        on_success=args["--on-success"] or default.on_success,
        on_failure=args["--on-failure"] or default.on_failure,
        toolkit=args["--toolkit"],
        compress=args["--compress"] or default.compress,
        trust=tuple(args["--trust"] or ()))


def _timeout(args):
    try:
        value = int(args["--timeout"])
    except (TypeError, ValueError):
        raise UsageError(f"--timeout takes whole seconds, not "
                         f"{args['--timeout']!r}") from None
    if not 0 <= value <= 600:
        raise UsageError("--timeout must be 0 to 600 seconds")
    return value


def _size(args):
    return None if args["--size"] is None else parse_size(args["--size"])


def _values(args):
    """Every option value converted and checked before any file is read
    (a usage error comes before "no such kernel")."""
    spec = _spec(args)
    check_values(spec)
    for add in spec.adds:
        split_add(add)
    trusts.load(spec.trust)     # a bad key refused before any freezing
    if args["--output"] == "-":     # "-" is stdout in the toolkit
        raise UsageError("OUT \"-\" (stdout): bootdisk writes files "
                         "(and pxe a directory); give a name")
    return spec, _timeout(args), _size(args)


def _main(argv):
    args = parse(__doc__, argv, f"bootdisk {__version__}")
    name = next(c for c in ("info", "toolkit", "initrd", "iso", "usb", "pxe",
                          "bundle") if args[c])
    try:
        return _build(args, name)
    except UsageError as exc:
        if "see '" in str(exc):
            raise
        raise UsageError(f"{exc}; see 'bootdisk {name} --help'") from None


def _build(args, name):
    if name == "info":
        report = infos.describe(args["ARTIFACT"])
        if args["--json"]:
            print(json.dumps(report, indent=1))
        else:
            sys.stdout.write(infos.render(report))
        return 0
    if name == "toolkit":
        return _freeze(args)
    (spec, timeout, size), out = _values(args), args["--output"]
    force, secure = args["--force"], args["--secure-boot"]
    if spec.toolkit is None:
        if name not in ("pxe", "bundle"):   # refused before minutes of freezing
            refuse_existing(out, force)
        spec.toolkit = _find_or_freeze(args["--quiet"])
    if name == "initrd":
        manifest = build_initrd(spec, out, force=force)
        what = "initramfs"
    elif name == "iso":
        from .iso import build_iso
        manifest = build_iso(spec, out, timeout=timeout, force=force,
                             secure_boot=secure)
        what = "ISO"
    elif name == "usb":
        from .usb import build_usb
        manifest = build_usb(spec, out, size=size, timeout=timeout,
                             force=force, secure_boot=secure)
        what = "USB image"
    elif name == "pxe":
        from .pxe import build_pxe
        manifest = build_pxe(spec, out, timeout=timeout, force=force,
                             secure_boot=secure)
        what = "PXE directory"
    else:
        from .bundle import build_bundle
        manifest = build_bundle(spec, out, force=force, secure_boot=secure)
        what = "bundle"
    if manifest["toolkit"].get("started") is None:
        print("bootdisk: warning: the toolkit was not started in the "
              "medium's root to prove it runs (chroot needs root)",
              file=sys.stderr)
    for line in manifest.get("warnings", ()):
        print(f"bootdisk: warning: {safe(line)}", file=sys.stderr)
    if args["--quiet"]:
        return 0
    print(f"bootdisk: wrote {what} {out}: kernel "
          f"{manifest['kernel']['release']}, {len(manifest['modules'])} "
          f"modules, initramfs {format_size(manifest['compressed'])}",
          file=sys.stderr)
    return 0


def _freeze(args):
    bare = parse(__doc__, ["toolkit"], "")      # what no option gives
    given = [option for option, value in args.items()
             if option.startswith("-") and value != bare[option]
             and option not in ("--output", "--force", "--quiet")]
    if given:
        raise UsageError(f"toolkit takes only -o, --force and --quiet, "
                         f"not {given[0]}")
    if args["--output"] == "-":
        raise UsageError("OUT \"-\" (stdout): the toolkit is a file; give "
                         "a name")
    warnings = []
    out = toolkits.freeze(args["--output"], force=args["--force"],
                          warnings=warnings)
    _warn(warnings)
    if not args["--quiet"]:
        print(f"bootdisk: wrote toolkit {out} "
              f"({format_size(os.path.getsize(out))})", file=sys.stderr)
    return 0


def _find_or_freeze(quiet):
    """The frozen toolkit to put on the medium: the one found, else one
    frozen now into the cache (said on stderr), else a one-line error
    naming the extra to install."""
    found = toolkits.find()
    if found:
        return found
    if not toolkits.can_freeze():
        raise toolkits.cannot_freeze_error("--toolkit")
    if not quiet:
        print(f"bootdisk: no frozen toolkit found; building it with "
              f"PyInstaller into {toolkits.cache_path()} (minutes, once per "
              f"version; `bootdisk toolkit` does this step alone)",
              file=sys.stderr)
    warnings = []
    path = toolkits.freeze(warnings=warnings)
    _warn(warnings)
    return path


def _warn(lines):
    for line in lines:
        print(f"bootdisk: warning: {safe(line)}", file=sys.stderr)


def main(argv=None, exiting=None):
    """`exiting` (default: when argv is None): the process exits when this
    returns (cliutil.runner.run)."""
    return run("bootdisk", _main, sys.argv[1:] if argv is None else argv,
               exiting=argv is None if exiting is None else exiting)
