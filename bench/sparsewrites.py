"""What the host filesystem charges for writes spread over a huge sparse
file (issue 19, the 1 TiB restore): N pieces of 4 MiB written with pwrite
one after the other into a 12 GiB file, then spread evenly over a 1 TiB
sparse file, each case ending in one fsync; the system time of the writes
and of the fsync (getrusage), the fsync's wall time, and the extents the
file ends in (filefrag).

    python3 bench/sparsewrites.py [DIR] [--pieces=N]

DIR (default /var/tmp) must hold N * 4 MiB (default 512: 2 GiB); the
files are deleted after each case.  Prints one line per case, two rounds.
"""

import os
import resource
import subprocess
import sys
import time

CHUNK = 4 << 20


def case(path, size, spread, pieces):
    buf = os.urandom(CHUNK)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.ftruncate(fd, size)
        step = (size // pieces) // CHUNK * CHUNK if spread else CHUNK
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        for i in range(pieces):
            os.pwrite(fd, buf, i * step)
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        t1 = time.monotonic()
        os.fsync(fd)
        r2 = resource.getrusage(resource.RUSAGE_SELF)
        t2 = time.monotonic()
    finally:
        os.close(fd)
    frag = subprocess.run(["filefrag", path], capture_output=True,
                          text=True).stdout.strip().rsplit(":", 1)[-1]
    os.unlink(path)
    return (f"{'spread over' if spread else 'packed in'} "
            f"{size >> 30} GiB: writes sys {r1.ru_stime - r0.ru_stime:.2f}"
            f" s, fsync sys {r2.ru_stime - r1.ru_stime:.2f} s (fsync wall "
            f"{t2 - t1:.2f} s);{frag}")


def main(argv):
    folder = next((a for a in argv if not a.startswith("--")), "/var/tmp")
    pieces = next((int(a.split("=", 1)[1]) for a in argv
                   if a.startswith("--pieces=")), 512)
    path = os.path.join(folder, f"sparsewrites-{os.getpid()}.img")
    for _ in range(2):
        print(case(path, 12 << 30, False, pieces), flush=True)
        print(case(path, 1 << 40, True, pieces), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
