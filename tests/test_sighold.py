"""diskimage.sighold (as imgx edits and loop devices use it): the signals
that end a command wait while a step that must not be cut in half runs
(losetup, mount), also when another thread is alive (tqdm's monitor, a
feeder waiting on a pipe), and are handled once the step is over.  A real
process under the real runner, real signals."""

import os
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest

from tests.signals import INTERRUPTIBLE, wait_for

from .imgx_helpers import ROOT

CHILD = textwrap.dedent("""
    import sys, threading, time
    from cliutil.runner import run
    from diskimage.edit.editfs import sigint_held

    def main(argv):
        if "thread" in argv:
            threading.Thread(target=time.sleep, args=(60,),
                             daemon=True).start()
        with sigint_held():             # diskimage.sighold.held()
            print("held", flush=True)
            sys.stdin.readline()            # the step: as long as the test
            for _ in range(100000):         # wants, then Python code that
                pass                        # runs pending handlers
            print("step done", flush=True)
        print("after the hold", flush=True)
        sys.stdin.readline()                # not held: a signal ends it
        print("not interrupted", flush=True)
        return 0

    sys.exit(run("t", main, sys.argv[1:]))
""")

SIGNALS = pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM,
                                          signal.SIGHUP],
                                  ids=["INT", "TERM", "HUP"])


def child(*argv):
    return subprocess.Popen([sys.executable, "-c", CHILD, *argv], cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **INTERRUPTIBLE)


@SIGNALS
@pytest.mark.parametrize("threads", [[], ["thread"]], ids=["alone", "thread"])
def test_a_signal_during_the_hold_ends_the_command_after_the_step(sig,
                                                                   threads):
    proc = child(*threads)
    try:
        assert proc.stdout.readline() == "held\n"
        proc.send_signal(sig)
        proc.stdin.write("step over\n")
        proc.stdin.flush()
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert out == "step done\n", (out, err)
    assert proc.returncode == 128 + sig, err
    assert err.startswith("t: interrupted"), err


@SIGNALS
@pytest.mark.parametrize("threads", [[], ["thread"]], ids=["alone", "thread"])
def test_after_the_hold_a_signal_is_handled_at_once(sig, threads):
    """The handlers and the mask are back after the hold: a signal is not
    noted and forgotten."""
    proc = child(*threads)
    try:
        assert proc.stdout.readline() == "held\n"
        proc.stdin.write("step over\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == "step done\n"
        assert proc.stdout.readline() == "after the hold\n"
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert out == "", (out, err)
    assert proc.returncode == 128 + sig, err
    assert err.startswith("t: interrupted"), err


MOUNT_CHILD = textwrap.dedent("""
    import os, sys
    from cliutil.runner import run
    from diskimage.host import fuse, loop

    def main(argv):
        image, mnt = argv
        with loop.loop_device(image, 0, os.path.getsize(image)) as dev:
            with fuse.exfat_mount(dev, mnt):
                print("in the mount", flush=True)
        return 0

    sys.exit(run("t", main, sys.argv[1:]))
""")


@pytest.mark.needs("mount.exfat-fuse", "mkfs.exfat", root=True)
@SIGNALS
def test_a_signal_while_a_fuse_mount_comes_up_leaves_no_mount(tmp_path, sig):
    """Ctrl-C (or SIGTERM, SIGHUP) while mount.exfat-fuse mounts (here one
    that, once mounted, waits for the test to let it return): the mount is
    there by then, and fuse.exfat_mount must unmount it, not raise
    before its clean-up is armed (ntfs_mount alike)."""
    image = tmp_path / "fs.img"
    with open(image, "wb") as f:
        f.truncate(8 << 20)
    subprocess.run(["mkfs.exfat", image], check=True, capture_output=True)
    mnt, gate, shim = tmp_path / "mnt", tmp_path / "gate", tmp_path / "bin"
    shim.mkdir()
    (shim / "mount.exfat-fuse").write_text(
        f"#!/bin/sh\n{shutil.which('mount.exfat-fuse')} \"$@\"; rc=$?\n"
        f"while [ ! -e {gate} ]; do sleep 0.01; done; exit $rc\n")
    (shim / "mount.exfat-fuse").chmod(0o755)
    env = dict(os.environ, PATH=f"{shim}:{os.environ['PATH']}")
    proc = subprocess.Popen([sys.executable, "-c", MOUNT_CHILD, image, mnt],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **INTERRUPTIBLE)
    try:
        wait_for(lambda: str(mnt) in open("/proc/mounts").read()
                 or proc.poll() is not None, what="the mount")
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(sig)
        gate.touch()
        out, err = proc.communicate(timeout=60)
        mounted = str(mnt) in open("/proc/mounts").read()
        looped = str(image) in subprocess.run(
            ["losetup", "-a"], capture_output=True, text=True).stdout
    finally:
        gate.touch()
        proc.kill()
        if str(mnt) in open("/proc/mounts").read():
            subprocess.run(["umount", "-l", mnt])
        for line in subprocess.run(["losetup", "-j", image], text=True,
                                   capture_output=True).stdout.splitlines():
            subprocess.run(["losetup", "-d", line.split(":")[0]])
    assert out == "", (out, err)
    assert proc.returncode == 128 + sig, err
    assert not mounted and not looped


def test_forget_committed_keeps_a_late_signal():
    """forget_committed() clears the names committed (also one committed
    after a look at them) but keeps a signal noted after the commit: the
    next started() raises it, once."""
    from diskimage import sighold
    got = []
    old = signal.signal(signal.SIGUSR1, lambda s, f: got.append(s))
    try:
        sighold.reset()
        sighold.committed("/srv/boot/grub/grub.cfg")
        sighold.late(signal.SIGUSR1)
        sighold.committed("/srv/boot/pxelinux.cfg/default")
        sighold.forget_committed()
        assert sighold.committed_names() == []
        assert sighold.after_commit()         # no new start: still after
        sighold.started()
        assert got == [signal.SIGUSR1]
        sighold.started()
        assert got == [signal.SIGUSR1]
    finally:
        signal.signal(signal.SIGUSR1, old)
        sighold.reset()
