"""Build the imaging environment as a compressed newc initramfs.

What goes in (and where):

    /init, /etc/bootdisk/udhcpc.script   the scripts of initscript.py
    /bin/busybox + a link per applet     busybox-static
    /usr/bin/deploytool + links          the frozen toolkit, one link per command
    its shared-library closure           at the paths ldd names (closure.py)
    /usr/bin/udp-receiver + its closure  udpcast's receiver (udpcast.py)
    /lib/modules/<release>/...           the chosen modules, uncompressed,
                                         and /etc/bootdisk/modules, their
                                         load order
    /etc/bootdisk/job                    the job (--job)
    /etc/bootdisk/config                 on-success / on-failure actions
    /etc/bootdisk/manifest.json          what is inside, for `bootdisk info`
    --add SRC:DEST                       extra files or directory trees
"""

import dataclasses
import datetime
import gzip
import hashlib
import json
import os
import shlex

from cliutil import toolkit as toolkits
from diskimage import __version__
from diskimage.errors import InputError, UnsupportedError, UsageError
from diskimage.host.partial import partial_file, refuse_existing
from diskimage.host import tools

from . import cpio, initscript, kernel as kernels, startcheck, udpcast
from . import trust as trusts
from .closure import library_closure

ACTIONS = ("poweroff", "reboot", "shell")
COMPRESSORS = ("gzip", "zstd")
DEFAULT_CMDLINE = "console=tty0 console=ttyS0,115200 panic=10"
MANIFEST = "etc/bootdisk/manifest.json"
TOOLKIT_DIR = "usr/bin"


@dataclasses.dataclass
class Spec:
    """What goes into the environment; paths are host paths."""
    kernel: str = None           # default: the newest /boot/vmlinuz-*
    modules: str = None          # default: /lib/modules/<kernel release>
    job: str = None
    adds: tuple = ()             # ("SRC:DEST", ...)
    cmdline: str = None          # default: DEFAULT_CMDLINE
    on_success: str = "poweroff"
    on_failure: str = "shell"
    toolkit: str = None          # default: cliutil.toolkit.find()
    busybox: str = "/bin/busybox"
    compress: str = "gzip"
    module_names: tuple = kernels.DEFAULT_MODULES
    trust: tuple = ()            # public key files (--trust), bootdisk/trust.py
    udp_receiver: str = None     # default: udp-receiver on the system PATH


def default_toolkit():
    """The frozen multi-call binary found (cliutil.toolkit.find: this one
    when frozen, the source tree's dist/deploytool, the cached one), or
    None."""
    return toolkits.find()


def _readable(path, what):
    if not os.path.exists(path):
        raise InputError(f"{path}: no such {what}")
    if not os.path.isfile(path):
        raise InputError(f"{path}: {what} is not a regular file")
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as exc:
        raise InputError(f"{path}: cannot read the {what}: {exc.strerror}") \
            from None


def check_values(spec):
    """The spec's words that need no file: the on-success/on-failure
    actions and the compressor (a usage error before any file is read)."""
    for name in ("on_success", "on_failure"):
        if getattr(spec, name) not in ACTIONS:
            raise UsageError(f"--{name.replace('_', '-')} takes "
                             f"{', '.join(ACTIONS)}, not "
                             f"{getattr(spec, name)!r}")
    if spec.compress not in COMPRESSORS:
        raise UsageError(f"--compress takes {', '.join(COMPRESSORS)}, not "
                         f"{spec.compress!r}")


def check_spec(spec):
    """Fill in the defaults and check every input before anything is built.
    Returns (spec, kernel release, ModuleTree)."""
    check_values(spec)
    spec = dataclasses.replace(spec)
    spec.kernel = spec.kernel or kernels.default_kernel()
    _readable(spec.kernel, "kernel")
    release = kernels.kernel_release(spec.kernel)
    spec.modules = spec.modules or kernels.module_dir_for(release)
    tree = kernels.ModuleTree(spec.modules)
    tree.check_release(release)
    if spec.job is not None:
        _readable(spec.job, "job file")
    spec.toolkit = spec.toolkit or default_toolkit()
    if spec.toolkit is None:
        raise InputError("no frozen toolkit binary: run `bootdisk toolkit` "
                         "(or give --toolkit)")
    if not os.path.isfile(spec.toolkit):
        raise InputError(f"{spec.toolkit}: no frozen toolkit binary (run "
                         f"`bootdisk toolkit`, or give --toolkit)")
    _readable(spec.busybox, "busybox (install busybox-static)")
    spec.udp_receiver = spec.udp_receiver or udpcast.find()
    _readable(spec.udp_receiver, "udp-receiver (install udpcast)")
    for add in spec.adds:
        src, dest = _split_add(add)
        if not os.path.exists(src):
            raise InputError(f"--add={add}: {src}: no such file or directory")
    if spec.cmdline is None:
        spec.cmdline = DEFAULT_CMDLINE
    trusts.load(spec.trust)     # InputError for a file that is no key
    spec.trust = tuple(os.path.abspath(p) for p in spec.trust)
    return _absolute(spec), release, tree


def _absolute(spec):
    """Every host path of `spec` made absolute against the directory the
    command was started in, once the checks (whose messages name what the
    user gave) are done: a relative name is then the file the user meant
    wherever it is used (a name without a slash given to exec is looked
    up on PATH; a tool may run in a scratch directory)."""
    for name in ("kernel", "modules", "job", "toolkit", "busybox",
                 "udp_receiver"):
        if getattr(spec, name):
            setattr(spec, name, os.path.abspath(getattr(spec, name)))
    adds = []
    for add in spec.adds:
        src, dest = _split_add(add)
        adds.append(f"{os.path.abspath(src)}:{dest}")
    spec.adds = tuple(adds)
    return spec


def _split_add(text):
    src, sep, dest = text.rpartition(":")
    if not sep or not src or not dest.startswith("/"):
        raise UsageError(f"--add takes SRC:/ABSOLUTE/DEST, not {text!r}")
    return src, dest


class Tree:
    """The files of the environment, kept in the order they are added;
    parent directories are created on the way."""

    def __init__(self):
        self.entries = {}

    def _parents(self, path):
        parts = path.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            parent = "/".join(parts[:i])
            if parent not in self.entries:
                self.entries[parent] = ("dir", 0o755)

    def directory(self, path, perm=0o755):
        self._parents(path)
        self.entries.setdefault(path.strip("/"), ("dir", perm))

    def file(self, path, data, perm=0o644):
        self._parents(path)
        self.entries[path.strip("/")] = ("file", data, perm)

    def symlink(self, path, target):
        self._parents(path)
        self.entries.setdefault(path.strip("/"), ("link", target))

    def add_host(self, src, dest):
        """A host file, or a directory tree, at `dest`."""
        if os.path.isdir(src):
            self.directory(dest)
            for entry in sorted(os.listdir(src)):
                self.add_host(os.path.join(src, entry), f"{dest}/{entry}")
        elif os.path.islink(src):
            self.symlink(dest, os.readlink(src))
        else:
            with open(src, "rb") as f:
                self.file(dest, f.read(), os.stat(src).st_mode & 0o777)

    def write(self, writer):
        for name, entry in self.entries.items():
            if entry[0] == "dir":
                writer.directory(name, entry[1])
            elif entry[0] == "file":
                writer.file(name, entry[1], entry[2])
            else:
                writer.symlink(name, entry[1])
        writer.close()


def _applets(busybox):
    proc = tools.run([busybox, "--list-full"], check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise InputError(f"{busybox}: cannot list its applets "
                         f"(is it busybox?)")
    return proc.stdout.split()


def _toolkit_commands(toolkit):
    proc = tools.run([toolkit, "--list"], check=False, env={}, inherit=False)
    if proc.returncode != 0:
        raise InputError(f"{toolkit}: does not run as the frozen toolkit "
                         f"({proc.stderr.strip()[:200]})")
    return proc.stdout.split()


def populate(spec, release, modtree):
    """(Tree, manifest) of the environment."""
    tree = Tree()
    for path in ("dev", "proc", "sys", "tmp", "run", "root", "mnt",
                 "etc/bootdisk", "usr/sbin", "sbin", "bin", "usr/bin"):
        tree.directory(path)
    tree.file("init", initscript.INIT.encode(), 0o755)
    tree.file("etc/bootdisk/udhcpc.script", initscript.UDHCPC_SCRIPT.encode(),
              0o755)
    tree.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
    tree.file("etc/group", b"root:x:0:\n")
    tree.file("etc/bootdisk/version", f"bootdisk {__version__}\n".encode())

    # The toolkit first, so that its commands win over any applet name.
    commands = _toolkit_commands(spec.toolkit)
    tree.add_host(spec.toolkit, f"{TOOLKIT_DIR}/deploytool")
    for name in commands:
        tree.symlink(f"{TOOLKIT_DIR}/{name}", "deploytool")
    libraries = library_closure(spec.toolkit) | library_closure(spec.busybox)
    for loaded, real in libraries.items():
        tree.add_host(real, loaded)
    receiver = udpcast.add(tree, spec.udp_receiver, libraries)

    tree.add_host(spec.busybox, "bin/busybox")
    applets = _applets(spec.busybox)
    for path in applets:
        if path.strip("/") not in tree.entries:
            tree.symlink(path, "/bin/busybox")

    order, builtin, missing = modtree.resolve(spec.module_names)
    mod_root = f"lib/modules/{release}"
    tree.directory(mod_root)
    lines, dep_lines, modules_bytes = [], [], 0
    for name in order:
        rel = modtree.files[name]
        for suffix in (".xz", ".gz", ".zst"):
            if rel.endswith(suffix):
                rel = rel[:-len(suffix)]
        data = modtree.read(name)
        modules_bytes += len(data)
        tree.file(f"{mod_root}/{rel}", data)
        lines.append(rel)
    for name in order:
        deps = [modtree.files[d].rsplit(".ko", 1)[0] + ".ko"
                for d in modtree.deps[name]]
        dep_lines.append(f"{lines[order.index(name)]}: {' '.join(deps)}"
                         .rstrip())
    tree.file("etc/bootdisk/modules", ("\n".join(lines) + "\n").encode())
    tree.file(f"{mod_root}/modules.dep", ("\n".join(dep_lines) + "\n")
              .encode())

    job_name = None
    if spec.job:
        tree.add_host(spec.job, "etc/bootdisk/job")
        job_name = os.path.basename(spec.job)
    config = {"ON_SUCCESS": spec.on_success, "ON_FAILURE": spec.on_failure,
              "JOB": "/etc/bootdisk/job" if spec.job else ""}
    tree.file("etc/bootdisk/config", "".join(
        f"{k}={shlex.quote(v)}\n" for k, v in config.items()).encode())
    for add in spec.adds:
        src, dest = _split_add(add)
        tree.add_host(src, dest)
    trusted = trusts.add(tree, trusts.load(spec.trust))

    manifest = {
        "bootdisk": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc)
        .isoformat(timespec="seconds"),
        "kernel": {"release": release, "file": os.path.abspath(spec.kernel)},
        "cmdline": spec.cmdline,
        "modules": order, "modules_bytes": modules_bytes,
        "modules_builtin": builtin,
        "modules_missing": missing,
        "toolkit": {"binary": f"/{TOOLKIT_DIR}/deploytool",
                    "commands": commands,
                    "size": os.path.getsize(spec.toolkit),
                    "libraries": sorted(libraries)},
        "udp_receiver": receiver,
        "busybox": {"applets": len(applets),
                    "size": os.path.getsize(spec.busybox)},
        "job": job_name,
        "job_digest": None,
        "on_success": spec.on_success, "on_failure": spec.on_failure,
        "added": [_split_add(a)[1] for a in spec.adds],
        "trusted_keys": trusted,
    }
    if spec.job:
        with open(spec.job, "rb") as f:
            manifest["job_digest"] = hashlib.sha256(f.read()).hexdigest()
    return tree, manifest


def _zstandard(what):
    """The zstandard module; UnsupportedError (exit 7) naming `what` when
    it is not installed."""
    try:
        import zstandard
    except ImportError:
        raise UnsupportedError(f"{what} needs the zstandard module "
                               f"(pip install zstandard)") from None
    return zstandard


def compress(data, method):
    if method == "gzip":
        return gzip.compress(data, compresslevel=9, mtime=0)
    zstandard = _zstandard("--compress=zstd")
    return zstandard.ZstdCompressor(level=19).compress(data)


def decompress(data):
    """The cpio bytes of an initramfs compressed by gzip or zstd (or none)."""
    if data[:2] == b"\x1f\x8b":
        return gzip.decompress(data)
    if data[:4] == b"\x28\xb5\x2f\xfd":
        zstandard = _zstandard("reading a zstd-compressed initramfs")
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return data


def build_bytes(spec):
    """(compressed initramfs bytes, manifest, checked spec)."""
    spec, release, modtree = check_spec(spec)
    tree, manifest = populate(spec, release, modtree)
    manifest["toolkit"]["started"] = startcheck.toolkit_starts(
        tree, manifest["toolkit"]["binary"], manifest["toolkit"]["libraries"],
        spec.toolkit)
    manifest["udp_receiver"]["started"] = startcheck.toolkit_starts(
        tree, udpcast.DEST, manifest["udp_receiver"]["libraries"],
        spec.udp_receiver, args=udpcast.START_ARGS, what="udp-receiver")
    buffer = _Buffer()
    writer = cpio.Writer(buffer)
    manifest["files"] = len(tree.entries) + 1
    tree.file(MANIFEST, json.dumps(manifest, indent=1).encode())
    tree.write(writer)
    manifest["uncompressed"] = writer.size
    data = compress(buffer.getvalue(), spec.compress)
    manifest["compressed"] = len(data)
    manifest["compression"] = spec.compress
    return data, manifest, spec


class _Buffer:
    def __init__(self):
        self.parts = []

    def write(self, data):
        self.parts.append(data)

    def getvalue(self):
        return b"".join(self.parts)


def partial_output(path, force=False, warnings=None):
    """A context: a binary file open on a new NAME.partial, created
    exclusively and locked (diskimage.host.partial: another bootdisk writing it
    is exit 9, a planted symlink is refused, never followed; one left by a
    run that died is replaced and said in `warnings`).  Renamed to `path`
    when the block ends well (over an existing file only with `force`),
    removed when it fails, so nothing half made looks complete."""
    return partial_file(path, replace=force, warnings=warnings)


def write_atomic(path, data, force=False, warnings=None):
    """Write `data` to NAME.partial, then rename it to `path`."""
    refuse_existing(path, force)
    with partial_output(path, force, warnings) as f:
        f.write(data)


def build_initrd(spec, out, force=False):
    """Write the initramfs to `out`.  Returns the manifest."""
    refuse_existing(out, force)
    warnings = []
    # The partial first: a second writer is refused before the work.
    with partial_output(out, force, warnings) as f:
        data, manifest, _ = build_bytes(spec)
        f.write(data)
    manifest["warnings"] = warnings
    return manifest
