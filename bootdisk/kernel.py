"""The kernel a boot medium starts and the modules it loads.

The default is the Debian kernel of the ``linux-image-amd64`` package:
``/boot/vmlinuz-<release>`` and ``/lib/modules/<release>``.  The release of a
kernel file is read from its bzImage header (the ``kernel_version`` pointer at
0x20E, see Documentation/x86/boot.rst), and every module carries the release
it was built for in its ``vermagic=``; a medium whose modules would not load
is refused before anything is written.

Modules are resolved by name with their dependencies from ``modules.dep``
(already transitive, listed from the module down), and the ``pre:`` soft
dependencies of ``modules.softdep`` (ext4 needs crc32c).  Modules built into
the kernel (``modules.builtin``) and modules this kernel lacks are reported,
not loaded.  Compressed modules (.ko.xz/.ko.gz/.ko.zst) are stored
uncompressed so busybox insmod loads them.
"""

import glob
import gzip
import lzma
import os
import re

from diskimage.errors import InputError

#: What the environment loads by default: storage (virtio, SATA/AHCI and
#: PIIX, NVMe, USB storage and its host controllers, SCSI disks and CDs),
#: network (virtio, e1000/e1000e, igb, r8169) and filesystems (ext4, vfat,
#: iso9660, ntfs3), with the code pages vfat and iso9660 mount with.
DEFAULT_MODULES = (
    "virtio_pci", "virtio_blk", "virtio_scsi", "virtio_net",
    "ahci", "ata_piix", "nvme", "sd_mod", "sr_mod",
    "xhci_pci", "ehci_pci", "ohci_pci", "uhci_hcd", "usb_storage", "uas",
    "e1000", "e1000e", "igb", "r8169",
    "ext4", "vfat", "iso9660", "ntfs3",
    "nls_cp437", "nls_iso8859_1", "nls_utf8",
    "efivarfs", "loop",
    "nls_ascii",    # Debian's vfat default iocharset: without it no mount
)

_SUFFIXES = (".ko", ".ko.xz", ".ko.gz", ".ko.zst")
_RELEASE = re.compile(rb"^([0-9][^\s\0]*)")


def module_name(path):
    """``kernel/fs/fat/vfat.ko.xz`` -> ``vfat``; dashes become underscores."""
    base = os.path.basename(path)
    for suffix in _SUFFIXES:
        if base.endswith(suffix):
            base = base[:-len(suffix)]
            break
    return base.replace("-", "_")


def kernel_release(path):
    """The release string (``6.1.0-27-amd64``) in a bzImage's header."""
    try:
        with open(path, "rb") as f:
            head = f.read(0x10000)
    except FileNotFoundError:
        raise InputError(f"{path}: no such kernel") from None
    except IsADirectoryError:
        raise InputError(f"{path}: a directory, not a kernel") from None
    return release_of(head, path)


def release_of(head, path="kernel"):
    """The release in the first 64 KiB of a bzImage, `head`."""
    if len(head) < 0x210 or head[0x202:0x206] != b"HdrS":
        raise InputError(f"{path}: not a bzImage kernel (no HdrS header)")
    pointer = int.from_bytes(head[0x20E:0x210], "little") + 0x200
    match = _RELEASE.match(head[pointer:pointer + 256])
    if pointer < 0x200 or not match:
        raise InputError(f"{path}: the kernel header holds no version")
    return match.group(1).decode()


def default_kernel():
    """The newest /boot/vmlinuz-* that has a /lib/modules directory."""
    found = []
    for path in glob.glob("/boot/vmlinuz-*"):
        release = path[len("/boot/vmlinuz-"):]
        if os.path.isdir(f"/lib/modules/{release}"):
            found.append((_version_key(release), path))
    if not found:
        raise InputError("no kernel in /boot with modules in /lib/modules "
                         "(install linux-image-amd64, or give --kernel and "
                         "--modules)")
    return max(found)[1]


def _version_key(release):
    return [int(p) if p.isdigit() else p for p in re.split(r"[.-]", release)]


def _read_module(path):
    if path.endswith(".xz"):
        return lzma.decompress(open(path, "rb").read())
    if path.endswith(".gz"):
        return gzip.decompress(open(path, "rb").read())
    if path.endswith(".zst"):
        import zstandard
        with open(path, "rb") as f:
            return zstandard.ZstdDecompressor().stream_reader(f).read()
    with open(path, "rb") as f:
        return f.read()


def vermagic(data):
    """The release in a module's ``vermagic=`` modinfo string, or None."""
    match = re.search(rb"vermagic=([^\s\0]+)", data)
    return match.group(1).decode() if match else None


class ModuleTree:
    """A /lib/modules/<release> directory: what it holds and how modules
    depend on each other."""

    def __init__(self, path):
        self.path = os.fspath(path)
        dep = os.path.join(self.path, "modules.dep")
        if not os.path.isdir(self.path):
            raise InputError(f"{self.path}: no such module directory")
        if not os.path.isfile(dep):
            raise InputError(f"{self.path}: no modules.dep (run depmod, or "
                             f"give the /lib/modules/<release> directory)")
        self.deps = {}       # name -> [dependency names, in modules.dep order]
        self.files = {}      # name -> path relative to self.path
        with open(dep) as f:
            for lineno, line in enumerate(f, 1):
                if ":" not in line:
                    raise InputError(f"{dep}:{lineno}: not a modules.dep line")
                target, _, rest = line.partition(":")
                name = module_name(target)
                self.files[name] = target.strip()
                self.deps[name] = [module_name(d) for d in rest.split()]
        self.builtin = set()
        self.softdeps = {}
        self.aliases = {}
        for line in self._lines("modules.builtin"):
            self.builtin.add(module_name(line))
        for line in self._lines("modules.softdep"):
            words = line.split()
            if len(words) >= 3 and words[0] == "softdep" and "pre:" in words:
                pre = words[words.index("pre:") + 1:]
                if "post:" in pre:
                    pre = pre[:pre.index("post:")]
                self.softdeps[words[1].replace("-", "_")] = pre
        for line in self._lines("modules.alias"):
            words = line.split()
            if len(words) == 3 and words[0] == "alias" and "*" not in words[1]:
                self.aliases.setdefault(words[1], []).append(
                    words[2].replace("-", "_"))

    def _lines(self, name):
        path = os.path.join(self.path, name)
        if not os.path.isfile(path):
            return []
        with open(path) as f:
            return [line.strip() for line in f if line.strip()]

    def _softdeps(self, name):
        found = []
        for word in self.softdeps.get(name, []):
            key = word.replace("-", "_")
            candidates = [key] if key in self.files else \
                self.aliases.get(word, [])
            found += [c for c in candidates if c in self.files]
        return found

    def resolve(self, names):
        """(load order, built in, missing) for the modules `names`: the load
        order puts every dependency before the modules needing it."""
        order, builtin, missing = [], [], []

        def add(name, chain):
            if name in order:
                return
            if name in chain:  # a cycle in modules.dep; do not loop on it
                return
            for pre in self._softdeps(name):
                add(pre, chain + (name,))
            for dep in reversed(self.deps[name]):
                add(dep, chain + (name,))
            if name not in order:
                order.append(name)

        for raw in names:
            name = raw.replace("-", "_")
            if name not in self.files and name not in self.builtin:
                known = [a for a in self.aliases.get(raw, []) +
                         self.aliases.get(f"fs-{raw}", []) if a in self.files]
                name = known[0] if known else name
            if name in self.files:
                add(name, ())
            elif name in self.builtin:
                builtin.append(name)
            else:
                missing.append(name)
        return order, builtin, missing

    def read(self, name):
        """The module's bytes, uncompressed."""
        return _read_module(os.path.join(self.path, self.files[name]))

    def check_release(self, release):
        """Refuse modules built for another kernel than `release`."""
        for name in ("ext4", "virtio_blk", *sorted(self.files)[:1]):
            if name in self.files:
                found = vermagic(self.read(name))
                if found is not None and found != release:
                    raise InputError(
                        f"{self.path}: modules are for kernel {found}, "
                        f"the kernel is {release} (give the matching "
                        f"--modules=/lib/modules/{release})")
                return


def module_dir_for(release):
    return f"/lib/modules/{release}"
