"""The one way the toolkit runs the field's own tools (mkfs, fsck, sfdisk,
losetup, qemu-img ...), from the library and the commands, also from the
frozen binary on boot media.

:func:`run` waits for a tool and returns its CompletedProcess; :func:`start`
returns a running Popen for the callers that stream (QEMU's console, a FUSE
driver kept in the foreground).  A tool that is not installed raises
MissingToolError (exit 10), naming the tool and the Debian package that
provides it (:data:`PACKAGES`); one that exits non-zero, with `check`, or
outlives its `timeout`, raises ToolError (exit 1) with its last words.
Nothing prints.
"""

import os
import subprocess
import sys

from ..errors import MissingToolError, ToolError

SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: For the callers of start(): what Popen's stdin/stdout/stderr take, and
#: what Popen.wait(timeout) raises.
PIPE, DEVNULL, STDOUT = subprocess.PIPE, subprocess.DEVNULL, subprocess.STDOUT
TimeoutExpired = subprocess.TimeoutExpired

#: tool -> the Debian package that provides it (checked against `dpkg -S`
#: by tests/host/test_tools.py), for the message of a missing tool.
PACKAGES = {
    **dict.fromkeys(("mkfs.ext2", "mkfs.ext3", "mkfs.ext4", "mke2fs",
                     "e2fsck", "resize2fs", "tune2fs", "debugfs", "dumpe2fs",
                     "e2image", "filefrag"), "e2fsprogs"),
    **dict.fromkeys(("mkfs.fat", "mkfs.vfat", "fsck.fat", "fatlabel"),
                    "dosfstools"),
    **dict.fromkeys(("mcopy", "mdir", "mmd", "mdel", "mdeltree", "mtype",
                     "mmove", "mattrib", "minfo", "mshowfat"), "mtools"),
    **dict.fromkeys(("mkntfs", "ntfs-3g", "ntfsfix", "ntfsresize",
                     "ntfslabel", "ntfsinfo"), "ntfs-3g"),
    **dict.fromkeys(("mkfs.exfat", "fsck.exfat", "tune.exfat", "dump.exfat"),
                    "exfatprogs"),
    "mount.exfat-fuse": "exfat-fuse",
    **dict.fromkeys(("losetup", "mount", "umount"), "mount"),
    **dict.fromkeys(("blkid", "mkswap", "wipefs", "fsfreeze"), "util-linux"),
    **dict.fromkeys(("mkfs.xfs", "xfs_repair", "xfs_admin", "xfs_db",
                     "xfs_growfs", "xfs_info", "xfs_io"), "xfsprogs"),
    **dict.fromkeys(("mkfs.btrfs", "btrfs", "btrfstune"), "btrfs-progs"),
    "fallocate": "util-linux", "chattr": "e2fsprogs",
    "cryptsetup": "cryptsetup-bin",
    **dict.fromkeys(("pvcreate", "vgcreate", "lvcreate", "pvs", "vgs", "lvs",
                     "pvresize", "lvextend", "lvresize", "vgchange", "pvck",
                     "vgcfgbackup", "vgcfgrestore", "lvm", "lvremove",
                     "pvchange"), "lvm2"),
    "sfdisk": "fdisk",
    "sgdisk": "gdisk",
    "partx": "util-linux",          # bwpart: the kernel told of a new entry
    "qemu-img": "qemu-utils",
    "qemu-system-x86_64": "qemu-system-x86",
    "ldd": "libc-bin",
    "chroot": "coreutils",
    "busybox": "busybox-static",
    "grub-mkstandalone": "grub-common",
    "grub-script-check": "grub-common",
    "syslinux": "syslinux",
    "xorriso": "xorriso",
    "partclone.ext4": "partclone",
    "lz4": "lz4",
    "zstd": "zstd",
    # network boot (pxeconf) and its tests
    "dnsmasq": "dnsmasq-base",
    "tftp": "tftp-hpa",
    "atftp": "atftp",
    "in.tftpd": "tftpd-hpa",
    "curl": "curl",
    "chromium": "chromium",
    "ip": "iproute2",
    # the fault layers of tests/faults (tests/faultlayers.py)
    "nbdkit": "nbdkit",
    "nbdfuse": "libnbd-bin",
    "fusermount3": "fuse3",
    # multicast (diskimage.fleet)
    **dict.fromkeys(("udp-sender", "udp-receiver"), "udpcast"),
    # the swarm's tracker (diskimage.swarm.seeder)
    "opentracker": "opentracker",
}


def package_of(tool):
    """The Debian package that provides `tool` (a name or a path), or None
    when the table does not know it."""
    name = os.path.basename(os.fspath(tool))
    if name.startswith("partclone."):
        return "partclone"
    return PACKAGES.get(name)


def tool_env(extra=None):
    """The environment for a child tool: this one, with the sbin
    directories on PATH (an `env -i` start has no PATH at all), and in a
    frozen binary the library path PyInstaller replaced put back, so system
    tools load the system's libraries rather than the bundled ones."""
    env = dict(os.environ)
    path = env.get("PATH", "")
    missing = [d for d in SYSTEM_PATH.split(":") if d not in path.split(":")]
    env["PATH"] = ":".join(filter(None, [path] + missing))
    if getattr(sys, "frozen", False):
        original = env.pop("LD_LIBRARY_PATH_ORIG", None)
        if original is None:
            env.pop("LD_LIBRARY_PATH", None)
        else:
            env["LD_LIBRARY_PATH"] = original
        # A toolkit command started from the toolkit (bwpart service-boot's
        # job running rdeploy) is a program of its own: without this it
        # takes the parent's _PYI_* variables for its own, reuses the
        # parent's extraction directory without its library path, and
        # fails to load the bundled libffi.so.8.
        env["PYINSTALLER_RESET_ENVIRONMENT"] = "1"
    env.update(extra or {})
    return env


def _env(env, inherit):
    return tool_env(env) if inherit else dict(env or {})


def _missing(exc, args, cwd, what, package):
    """The MissingToolError for a FileNotFoundError of Popen, or None when
    it was about something else (a `cwd` that does not exist)."""
    if cwd is not None and exc.filename is not None and \
            os.fspath(exc.filename) == os.fspath(cwd):
        return None
    return MissingToolError(os.fspath(args[0]), package, what)


def _command(args):
    return " ".join(map(os.fspath, args))


def _text(data):
    return data.decode("utf-8", "replace") if isinstance(data, bytes) \
        else (data or "")


def run(args, *, check=True, input=None, env=None, cwd=None, text=True,
        timeout=None, inherit=True, what=None, package=None,
        no_tty=False):
    """Run a tool to its end; its CompletedProcess, output captured (str,
    UTF-8 with bad bytes replaced; bytes with ``text=False``).

    `input` goes to its stdin (else stdin is /dev/null); `env` is added to
    tool_env(), or, with ``inherit=False``, is the whole environment;
    `what` says what needed the tool and `package` where it comes from
    (else PACKAGES tells), in the message of a missing one; `no_tty`: the
    tool runs in a session of its own, with no controlling terminal, so
    one that asks on /dev/tty (mtools) cannot ask.
    Raises MissingToolError when it is not installed, and ToolError when it
    runs past `timeout` seconds (it is killed) or, with `check`, exits
    non-zero."""
    try:
        proc = subprocess.run(
            args, input=input, capture_output=True, env=_env(env, inherit),
            cwd=cwd, timeout=timeout,
            stdin=None if input is not None else subprocess.DEVNULL,
            start_new_session=no_tty,
            **({"encoding": "utf-8", "errors": "replace"} if text else {}))
    except FileNotFoundError as exc:
        error = _missing(exc, args, cwd, what, package)
        if error is None:
            raise
        raise error from None
    except subprocess.TimeoutExpired as exc:
        output = _text(exc.stdout) + _text(exc.stderr)
        raise ToolError(f"{_command(args)} did not finish within {timeout} "
                        f"s", None, output) from None
    if check and proc.returncode != 0:
        out, err = _text(proc.stdout), _text(proc.stderr)
        detail = (err.strip() or out.strip())[-2000:]
        raise ToolError(f"{_command(args)} failed with exit "
                        f"{proc.returncode}: {detail}", proc.returncode,
                        out + err)
    return proc


PR_SET_PDEATHSIG = 1


def _death_signal(signum=None):
    """A preexec_fn that has the child sent `signum` (SIGTERM) when the
    thread that starts it ends (the whole process killed, SIGKILL
    included), and sends it to itself if that happened before it could
    ask."""
    import ctypes
    import signal
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()
    signum = int(signal.SIGTERM if signum is None else signum)

    def preexec():
        prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), signum)
    return preexec


def _user(as_user):
    """Popen's arguments that run the child as (uid, gid); CPython sets
    them before it calls preexec_fn (the death signal)."""
    if as_user is None:
        return {}
    uid, gid = as_user
    return {"user": uid, "group": gid, "extra_groups": []}


def start(args, *, env=None, cwd=None, inherit=True, stdin=DEVNULL,
          stdout=None, stderr=None, what=None, package=None,
          die_with_parent=False, no_tty=False, death_signal=None,
          ignore_sigpipe=False, as_user=None):
    """Start a tool and return its Popen (bytes), for a caller that reads
    it as it runs or keeps it in the foreground; the caller waits for it.
    `env`, `inherit`, `what` and `package` as for run(); MissingToolError
    when it is not installed.

    `die_with_parent`: the tool gets SIGTERM when the *thread* calling
    start() ends (Linux's PR_SET_PDEATHSIG: it fires on the thread, not
    the process), so also when the process is SIGKILLed; call it from a
    thread that lives as long as the tool should.  The kernel forgets it
    when the tool changes its user or runs a set-user-ID program.
    `death_signal`: that signal instead of SIGTERM (udp-receiver says
    goodbye to its sender on SIGINT only).  `ignore_sigpipe`: the tool
    starts with SIGPIPE ignored (as Python runs), so a write to a reader
    that is gone fails with EPIPE, which it can handle, instead of
    killing it.  `no_tty` as for run().  `as_user`: (uid, gid) the tool
    runs as from its start (no supplementary groups), set before the death
    signal is asked for: a tool that dropped root by itself would lose its
    death signal (opentracker drops to "nobody")."""
    try:
        return subprocess.Popen(args, stdin=stdin, stdout=stdout,
                                stderr=stderr, env=_env(env, inherit),
                                cwd=cwd, preexec_fn=_death_signal(
                                    death_signal)
                                if die_with_parent else None,
                                start_new_session=no_tty,
                                restore_signals=not ignore_sigpipe,
                                **_user(as_user))
    except FileNotFoundError as exc:
        error = _missing(exc, args, cwd, what, package)
        if error is None:
            raise
        raise error from None


def stop_group(proc, signals, grace=3):
    """Stop `proc`, started in a session of its own (no_tty): each of
    `signals` in turn to its process group, the next one after `grace`
    seconds without an exit; waits for it and returns its exit status."""
    if proc.poll() is None:
        for signum in signals:
            try:
                os.killpg(proc.pid, signum)
            except ProcessLookupError:
                break
            try:
                proc.wait(grace)
                break
            except TimeoutExpired:
                continue
    return proc.wait()
