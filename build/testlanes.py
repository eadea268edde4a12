"""Run the test suite as two lanes at once: the QEMU boot tests (`-m boot`,
mostly waiting on emulated machines) and everything else (`-m "not boot"`,
mostly waiting on tools, disks and networks).  Run one after the other they
take about 76 minutes on a 2-core CI machine; side by side about 45.

Every line a lane prints is passed on with its lane's name in front, as it
comes; the exit status is the first lane's failure.  A lane with nothing
to run (pytest's 5: arguments that select no boot test, say) is not a
failure while the other ran tests; both with nothing is 5, which still
fails `make test`.  Each lane has its own --basetemp, so
neither removes the other's temporary directories.

Each lane runs in a mount namespace of its own (`unshare --mount`, where
it works): a test that mounts a filesystem it built (tests/fsbuild.py)
while the other lane starts `ip netns exec` (which copies every mount of
the moment into a namespace of its own, and keeps it for as long as its
command lives) would otherwise find it still mounted there after its
umount, its superblock saying "not cleanly unmounted" or "needs
recovery" when it is captured (the root mount here is private, so the
umount does not reach that copy).  Where unshare cannot (no unshare, or
not root) the lanes share the host's mounts as before.

    python build/testlanes.py [PYTEST_ARGS...]   (default: tests)
"""

import os
import subprocess
import sys
import tempfile
import threading

LANES = (("boot", "boot"), ("rest", "not boot"))


def _relay(name, stream, lock):
    # A line is passed on whole: pytest -q ends its row of dots with a
    # newline every 80 tests or so.
    for line in iter(stream.readline, b""):
        with lock:
            sys.stdout.buffer.write(f"[{name}] ".encode() + line)
            sys.stdout.buffer.flush()


def _own_mounts():
    """The prefix that runs a command in a mount namespace of its own, or
    [] where that fails.  --propagation unchanged: a chroot's / is not a
    mount point and cannot be made private (unshare's default fails
    there); copies of private mounts are private anyway."""
    cmd = ["unshare", "--mount", "--propagation", "unchanged", "--"]
    try:
        ok = subprocess.run(cmd + ["true"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL).returncode == 0
    except OSError:
        ok = False
    return cmd if ok else []


def main(argv):
    args = argv or ["tests"]
    prefix = _own_mounts()
    base = tempfile.mkdtemp(prefix="rdeploy-lanes-")
    lock = threading.Lock()
    procs, relays = [], []
    for name, marker in LANES:
        cmd = [*prefix, sys.executable, "-m", "pytest", "-q", "-p",
               "no:cacheprovider",
               "-m", marker, f"--basetemp={os.path.join(base, name)}", *args]
        # Unbuffered: pytest's dots and names come as they are printed
        # (a pipe would hold them in 8 KiB blocks, minutes on CI).
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL,
                                env=dict(os.environ, PYTHONUNBUFFERED="1"))
        relay = threading.Thread(target=_relay, args=(name, proc.stdout, lock))
        relay.start()
        procs.append((name, proc))
        relays.append(relay)
    try:
        codes = [(name, proc.wait()) for name, proc in procs]
    except KeyboardInterrupt:
        for _, proc in procs:
            proc.terminate()
        codes = [(name, proc.wait()) for name, proc in procs]
    for relay in relays:
        relay.join()
    for name, code in codes:
        print(f"[{name}] pytest exit {code}", flush=True)
    failed = [code for _, code in codes if code not in (0, 5)]
    if failed:
        return failed[0]
    return 5 if all(code == 5 for _, code in codes) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
