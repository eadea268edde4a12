"""An environment bundle: the imaging environment as the files a service
partition (`bwpart install --env=DIR`) copies, and the description that
names them:

    vmlinuz, initrd.img            kernel and environment
    shimx64.efi, grubx64.efi,      with --secure-boot: the signed chain
      mmx64.efi                    (shim-signed, grub-efi-amd64-signed's
                                   grubx64.efi.signed: the disk GRUB)
    bundle.json                    what the directory holds (below)

bundle.json (UTF-8 JSON, one object):

    format          1
    version         the toolkit's version (diskimage.__version__)
    id              a unique build id: uuid4, 32 lower-case hex digits
    built           when, ISO 8601 UTC ("2026-12-01T23:40:00+00:00")
    kernel_release  the release in vmlinuz's header ("6.1.0-57-amd64")
    cmdline         the kernel command line of the boot entries
    files           {name: sha256 of the file, 64 lower-case hex digits}
    secure_boot     true when the kernel was checked to be signed and
                    (in a bundle) the signed loaders are in `files`

A PXE directory (pxe.py) carries a bundle.json too, whose `files` names
only vmlinuz and initrd.img: its grubx64.efi is the network GRUB, which
does not boot from a disk.

The directory is written as `bootdisk pxe` writes its own: refused when it
exists and is not empty (without force), or is a file, or a symlink sits
at a folder inside it; every file is written as NAME.partial and renamed,
the boot files and then bundle.json last, so a directory cut short has no
description that vouches for it.
"""

import datetime
import hashlib
import json
import os
import uuid

from diskimage import __version__
from diskimage.errors import InputError

from . import initramfs, media, secureboot
from .media import INITRD_NAME, KERNEL_NAME

FORMAT = 1
BUNDLE_JSON = "bundle.json"
#: The signed loaders a --secure-boot bundle holds: name -> LOADERS name.
SIGNED = {"shimx64.efi": "shimx64.efi", "grubx64.efi": "grubx64.efi",
          "mmx64.efi": "mmx64.efi"}


def check_dir(out, force, subdirs=()):
    """Refuse an output directory `out` bootdisk cannot fill (module
    docstring); `subdirs` are the folders it will make inside."""
    out = os.fspath(out)
    if os.path.exists(out) and not os.path.isdir(out):
        raise InputError(f"{out}: exists and is not a directory")
    if os.path.isdir(out) and os.listdir(out) and not force:
        raise InputError(f"{out}: exists and is not empty (give --force to "
                         f"write into it)")
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        raise InputError(f"{parent}: no such directory for the output")
    for sub in subdirs:
        path = os.path.join(out, sub)
        if os.path.islink(path):
            # makedirs would follow it, and files be written where it points
            raise InputError(f"{path}: is a symlink; bootdisk writes only "
                             f"inside {out} (remove the link)")
        if os.path.lexists(path) and not os.path.isdir(path):
            raise InputError(f"{path}: exists and is not a directory")


def write_dir(out, files, last=(), subdirs=()):
    """Write `files` ({relative name: bytes}) into `out` (checked by
    check_dir), those named in `last` after the others; returns the
    warnings of the partial files."""
    os.makedirs(out, exist_ok=True)
    for sub in subdirs:
        path = os.path.join(out, sub)
        try:
            os.mkdir(path)           # never through a link made meanwhile
        except FileExistsError:
            if os.path.islink(path) or not os.path.isdir(path):
                raise InputError(f"{path}: is a symlink or not a directory "
                                 f"(made while bootdisk ran); nothing more "
                                 f"written") from None
    warnings = []
    for name in sorted(files, key=lambda n: (n in last, last.index(n)
                                             if n in last else 0)):
        initramfs.write_atomic(os.path.join(out, name), files[name],
                               force=True, warnings=warnings)
    return warnings


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def describe(manifest, cmdline, files, secure_boot):
    """The bundle.json dict of an environment (`manifest`: initramfs's)
    whose `files` ({name: bytes}) it names."""
    return {
        "format": FORMAT,
        "version": __version__,
        "id": uuid.uuid4().hex,
        "built": datetime.datetime.now(datetime.timezone.utc)
        .isoformat(timespec="seconds"),
        "kernel_release": manifest["kernel"]["release"],
        "cmdline": cmdline,
        "files": {name: sha256(data) for name, data in sorted(files.items())},
        "secure_boot": bool(secure_boot),
    }


def encode(info):
    return (json.dumps(info, indent=1, sort_keys=True) + "\n").encode()


def build_bundle(spec, out, force=False, secure_boot=False):
    """Write the bundle directory `out`.  Returns the initramfs manifest,
    with "bundle": the bundle.json dict."""
    out = os.fspath(out)
    check_dir(out, force)
    if secure_boot:
        secureboot.check_spec_kernel(spec)
        chain = {name: secureboot.loader(source)
                 for name, source in SIGNED.items()}
    initrd, manifest, spec = initramfs.build_bytes(spec)
    files = {KERNEL_NAME: media.read(spec.kernel), INITRD_NAME: initrd}
    if secure_boot:
        files.update({name: media.read(path) for name, path in chain.items()})
    info = describe(manifest, spec.cmdline, files, secure_boot)
    files[BUNDLE_JSON] = encode(info)
    manifest["warnings"] = write_dir(out, files, last=(BUNDLE_JSON,))
    manifest["bundle"] = info
    return manifest


def read_info(directory):
    """bundle.json of `directory` as a dict, with "mismatched": the names
    in its `files` whose sha256 differs or that are missing; None when
    there is no bundle.json."""
    path = os.path.join(directory, BUNDLE_JSON)
    try:
        with open(path, "rb") as f:
            info = json.loads(f.read())
    except FileNotFoundError:
        return None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not JSON ({exc})") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT or \
            not isinstance(info.get("files"), dict):
        raise InputError(f"{path}: not a bundle.json of format {FORMAT}")
    mismatched = []
    for name, digest in sorted(info["files"].items()):
        full = os.path.join(directory, name)
        try:
            with open(full, "rb") as f:
                if sha256(f.read()) != digest:
                    mismatched.append(name)
        except OSError:
            mismatched.append(name)
    info["mismatched"] = mismatched
    return info
