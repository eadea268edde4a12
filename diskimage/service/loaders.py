"""The loader files on the service FAT.

UEFI, in /EFI/rdeploy/ (never /EFI/BOOT/: the firmware's fallback scan
would find it there):

    kind "shim"  shimx64.efi, grubx64.efi, mmx64.efi: Debian's signed shim,
                 signed GRUB (which reads $prefix/grub.cfg, prefix
                 /EFI/debian on its own device, else $cmdpath/grub.cfg) and
                 MokManager; from the bundle when it carries them
                 (--secure-boot), else from the host's shim-signed and
                 grub-efi-amd64-signed
    kind "grub"  grubx64.efi alone: a standalone GRUB (grub-mkstandalone,
                 unsigned) whose embedded config takes $root from $cmdpath
                 and reads the same two configs the signed one does

BIOS: syslinux's volume boot record on the FAT (syslinux --offset
--directory /syslinux --install), with ldlinux.sys and ldlinux.c32 in
/syslinux; the disk's MBR code (biosboot) jumps to it.

At `bwpart update`, a bundle that carries the signed chain (shimx64.efi,
grubx64.efi and mmx64.efi, all three, listed in its bundle.json) replaces
the kind "shim" loaders (:func:`stage_efi`, :func:`commit_efi`); a
standalone GRUB (kind "grub") is left as it is, and so is a file whose
bytes are the bundle's already.  Each file is written as X.new and read
back (sha256) before any is renamed over X, and the renames come in this
order, inside update's:

    1. the new environment slot written (envslots.write_slot)
    2. grubx64.efi.new, mmx64.efi.new, shimx64.efi.new written, read back
    3. grubx64.efi.new -> grubx64.efi, mmx64.efi.new -> mmx64.efi
    4. the loader configs switched to the new slot (envslots.switch)
    5. shimx64.efi.new -> shimx64.efi, last

The rule: never a newer shim in front of an older GRUB or kernel.  Shim
carries the SBAT revocations (on its first run it writes the SbatLevel
variable and from then on refuses every GRUB and kernel of a lower SBAT
generation), so a new shim with the old GRUB may refuse to start it, and
may even make the old GRUB unbootable afterwards; the old shim with a
newer GRUB and kernel of the same signer (Debian's CA) starts them, as
after Debian's own upgrades, which move grub-efi-amd64-signed and the
kernel before shim-signed.  A cut between any two steps thus leaves a
pair that boots: old shim + old GRUB + old slot (before 3), old shim +
new GRUB + old or new slot (3, 4), new shim + new GRUB + new slot (after
5); a leftover X.new is written again by the next update.  A cut inside
one rename (one mmove run, fatfs.Fat.rename) may leave that one file
absent: the firmware then starts the next entry of BootOrder (the
production OS), and `bwpart update` again puts the file back.
"""

import os
import shutil
import tempfile

from ..errors import InputError, MissingToolError, TargetChangedError
from ..fs.fat.mtools import MTOOLS_ENV
from ..host import tools
from . import envslots, fatfs, layout
from .bundle import sha256_file

EFI_DIR = layout.EFI_DIR
SHIM_PATH = layout.EFI_SHIM
GRUB_PATH = layout.EFI_GRUB
SYSLINUX_DIR = layout.SYSLINUX_DIR

#: name on the FAT -> (host path, Debian package), for kind "shim".
HOST_SIGNED = {
    "shimx64.efi": ("/usr/lib/shim/shimx64.efi.signed", "shim-signed"),
    "grubx64.efi": ("/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed",
                    "grub-efi-amd64-signed"),
    "mmx64.efi": ("/usr/lib/shim/mmx64.efi.signed", "shim-signed"),
}
GRUB_EFI_DIR = ("/usr/lib/grub/x86_64-efi", "grub-efi-amd64-bin")
LDLINUX_C32 = ("/usr/lib/syslinux/modules/bios/ldlinux.c32",
               "syslinux-common")
GRUB_MODULES = ("part_msdos part_gpt fat search search_fs_file linux "
                "normal echo test serial terminal configfile sleep reboot "
                "halt all_video efi_gop efi_uga regexp")
KINDS = ("shim", "grub")
#: The order update renames the signed chain in (the module's text):
#: GRUB and MokManager before the configs switch, shim after them.
BEFORE_SWITCH = ("grubx64.efi", "mmx64.efi")
AFTER_SWITCH = ("shimx64.efi",)


def loader_path(kind):
    """The path on the FAT the firmware's Boot#### entry names."""
    return SHIM_PATH if kind == "shim" else GRUB_PATH


def standalone_config():
    """The config embedded in the standalone GRUB: $root is the device it
    was loaded from, then the configs the signed GRUB reads, in its
    order."""
    primary, fallback = envslots.PAIRS["uefi"]
    return ("regexp --set=1:bwdev '^\\(([^)]*)\\)' \"$cmdpath\"\n"
            "set root=\"$bwdev\"\n"
            f"if [ -e {primary} ]; then\n  source {primary}\n"
            f"else\n  source {fallback}\nfi\n").encode()


def signed_files(bundle=None):
    """{name on the FAT: local path} of the signed chain: the bundle's
    when it has all three, else the host's (MissingToolError naming the
    package)."""
    if bundle is not None and all(bundle.efi_file(n) for n in HOST_SIGNED):
        return {n: bundle.efi_file(n) for n in HOST_SIGNED}
    found = {}
    for name, (path, package) in HOST_SIGNED.items():
        if not os.path.isfile(path):
            raise MissingToolError(path, package, "the signed UEFI loaders "
                                   "(the bundle has none)")
        found[name] = path
    return found


def install_efi(fat, bundle=None, kind="shim"):
    """The UEFI loader files of `kind` into /EFI/rdeploy/, each read back;
    the path the Boot#### entry names."""
    if kind not in KINDS:
        raise InputError(f"--efi-loader={kind}: not shim or grub")
    fat.makedirs(EFI_DIR)
    if kind == "shim":
        for name, path in signed_files(bundle).items():
            # a bundle's file must read back as its bundle.json lists it
            # (swapped after bundle.load: refused), the host's as it is
            ours = bundle is not None and bundle.efi_file(name) == path
            fat.put_checked(path, f"{EFI_DIR}/{name}",
                            bundle.sha256(name) if ours else None)
        return SHIM_PATH
    scratch = tempfile.mkdtemp(prefix="bwpart-grub.")
    try:
        out = os.path.join(scratch, "grubx64.efi")
        make_standalone(out, scratch)
        fat.put_checked(out, GRUB_PATH)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return GRUB_PATH


def make_standalone(out, scratch):
    """A standalone x86_64 EFI GRUB at `out` with standalone_config()."""
    directory, package = GRUB_EFI_DIR
    if not os.path.isdir(directory):
        raise MissingToolError(directory, package, "the standalone GRUB")
    cfg = os.path.join(scratch, "embedded.cfg")
    with open(cfg, "wb") as f:
        f.write(standalone_config())
    tools.run(["grub-mkstandalone", "-O", "x86_64-efi", "-d", directory,
               "-o", out, f"--modules={GRUB_MODULES}",
               f"--install-modules={GRUB_MODULES}", "--locales=",
               "--fonts=", "--themes=", f"boot/grub/grub.cfg={cfg}"])


def install_bios(service):
    """syslinux's boot record on the service FAT and its files in
    /syslinux (ldlinux.sys and ldlinux.c32 by the installer; the
    host's ldlinux.c32 only when the installer wrote none)."""
    path, package = LDLINUX_C32
    if not os.path.isfile(path):
        raise MissingToolError(path, package, "the BIOS loader")
    with fatfs.open_fat(service) as fat:
        fat.makedirs(SYSLINUX_DIR)
    tools.run(["syslinux", "--offset", str(service.start), "--directory",
               SYSLINUX_DIR, "--install", os.fspath(service.disk)],
              env=MTOOLS_ENV, no_tty=True)
    with fatfs.open_fat(service) as fat:
        # syslinux 6 writes its own ldlinux.c32 (read-only, the one that
        # matches its ldlinux.sys): kept, never copied over (mtools would
        # ask before overwriting a read-only file); an older one that
        # writes only ldlinux.sys gets the host's.
        if not _nonempty(fat, f"{SYSLINUX_DIR}/ldlinux.c32"):
            fat.put_checked(path, f"{SYSLINUX_DIR}/ldlinux.c32")


def _nonempty(fat, fat_path):
    parent, name = fat_path.rsplit("/", 1)
    return any(n.lower() == name.lower() and size > 0 and not is_dir
               for n, size, is_dir in fat.ls(parent))


def bundle_signed(bundle):
    """{name: path} of the signed chain the bundle carries (all three
    names of HOST_SIGNED), or {} when it carries not all of them."""
    if bundle is None or not all(bundle.efi_file(n) for n in HOST_SIGNED):
        return {}
    return {n: bundle.efi_file(n) for n in HOST_SIGNED}


def stage_efi(fat, bundle, kind, progress=None):
    """Update's step 2: each signed loader of the bundle whose bytes the
    FAT's file does not hold written as X.new and read back.  Returns
    {name: sha256} of the files staged ({} for kind "grub" or a bundle
    without the chain): what :func:`commit_efi` renames."""
    files = bundle_signed(bundle) if kind == "shim" else {}
    staged = {}
    for name in BEFORE_SWITCH + AFTER_SWITCH:
        if name not in files:
            continue
        path = f"{EFI_DIR}/{name}"
        digest = sha256_file(files[name])
        if fat.exists(path) and fat.sha256(path) == digest:
            if fat.exists(path + layout.NEW_SUFFIX):     # an older update's
                fat.rm(path + layout.NEW_SUFFIX)
            continue
        if progress:
            progress(f"writing {path}{layout.NEW_SUFFIX}")
        fat.put_checked(files[name], path + layout.NEW_SUFFIX, digest)
        staged[name] = digest
    return staged


def commit_efi(fat, staged, names, progress=None):
    """Update's step 3 or 5: X.new renamed over X for each of `names`
    that :func:`stage_efi` staged, in that order, each read back after.
    Returns the FAT paths replaced."""
    done = []
    for name in names:
        if name not in staged:
            continue
        path = f"{EFI_DIR}/{name}"
        if progress:
            progress(f"replacing {path}")
        fat.rename(path + layout.NEW_SUFFIX, path)
        got = fat.sha256(path)
        if got != staged[name]:
            raise TargetChangedError(f"{fat.where}: {path} read back with "
                                     f"sha256 {got[:16]} after its rename, "
                                     f"not {staged[name][:16]}")
        done.append(path)
    return done
