"""An ordered, bounded, parallel map: the engine under capture, restore and
verify.

One feeder thread walks the input (reading the disk or the image), a pool of
workers transforms items (compression, checksums: C code that releases the
GIL), and the caller consumes results in input order.  At most `depth`
results are in flight, so memory stays bounded whatever the disk size.

Two process-wide settings make the chunk traffic cheap (measured with
bench/run.py and py-spy, see docs/BENCHMARKS.md): the cyclic garbage
collector is paused while a map runs (its full passes over every object
alive, such as the used-block run lists, took 5-10% of the consuming
thread; chunk records hold no cycles), and glibc keeps freed chunk-sized
blocks for reuse instead of handing them back to the kernel, which made
every new 4 MiB buffer cost 1024 page faults and a kernel memset (40% of
the throughput on incompressible data).
"""

import contextlib
import ctypes
import gc
import queue
import threading
from concurrent.futures import ThreadPoolExecutor

from . import sighold

_END = object()
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_heap_tuned = False


def keep_freed_buffers():
    """Ask glibc to keep freed blocks of up to 32 MiB in the heap (no
    trimming, no mmap per buffer), so chunk buffers are reused rather than
    page-faulted in again.  Idempotent; a no-op without glibc."""
    global _heap_tuned
    if _heap_tuned:
        return
    _heap_tuned = True
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_MMAP_THRESHOLD, 32 << 20)
    mallopt(_M_TRIM_THRESHOLD, 32 << 20)


@contextlib.contextmanager
def paused_gc():
    """No automatic cyclic garbage collection inside the block (the state
    before it is restored after)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


class _Failed:
    def __init__(self, exc):
        self.exc = exc


def ordered_map(func, items, threads, depth=None):
    """Yield func(item) for each item of the iterable, in order.

    Reading `items` happens on its own thread and overlaps both the work and
    the consumer.  An exception from `items` or `func` is raised here, in
    order; closing the generator early stops the feeder.

    Ctrl-C, SIGTERM and SIGHUP raise in the consumer (cliutil/runner.py)
    wherever it is, so the consumer waits only in queue.SimpleQueue.get,
    C code that a raising signal handler leaves whole.  queue.Queue.get and
    Future.result wait in threading.Condition.wait: a signal landing
    between its release of the lock and its `try` made the caller's `with`
    release the lock twice ("RuntimeError: cannot release un-acquired
    lock", exit 70 instead of "interrupted").  Starting the feeder (which
    waits in Condition.wait too) and the clean-up hold the signals
    (diskimage.sighold); one that comes meanwhile is raised after.
    """
    keep_freed_buffers()
    threads = max(1, threads)
    depth = depth or threads + 2
    pending = queue.SimpleQueue()   # (slot, future), then _END or _Failed
    room = queue.SimpleQueue()      # a token per free place in `pending`
    for _ in range(depth):
        room.put(True)
    stop = threading.Event()
    pool = ThreadPoolExecutor(max_workers=threads,
                              thread_name_prefix="rdi-worker")

    def work(slot, item):
        try:
            slot.put((func(item), None))
        except BaseException as exc:  # handed to the consumer, in order
            slot.put((None, exc))

    def make_room():
        while not stop.is_set():
            try:
                room.get(timeout=0.1)
            except queue.Empty:
                continue
            return not stop.is_set()
        return False

    def feed():
        try:
            for item in items:
                if not make_room():
                    return
                slot = queue.SimpleQueue()
                pending.put((slot, pool.submit(work, slot, item)))
        except BaseException as exc:  # handed to the consumer, in order
            pending.put(_Failed(exc))
            return
        pending.put(_END)

    feeder = threading.Thread(target=feed, name="rdi-feeder", daemon=True)
    pause = None
    try:
        with sighold.held():
            pause = paused_gc()
            pause.__enter__()
            feeder.start()
        while True:
            entry = pending.get()
            if entry is _END:
                return
            if isinstance(entry, _Failed):
                raise entry.exc
            room.put(True)
            value, exc = entry[0].get()
            if exc is not None:
                raise exc
            yield value
    finally:
        with sighold.held():
            stop.set()
            room.put(True)          # wakes a feeder waiting for room
            while True:
                try:
                    entry = pending.get_nowait()
                except queue.Empty:
                    break
                if isinstance(entry, tuple):
                    entry[1].cancel()
            if feeder.ident is not None:
                # a feeder blocked on a pipe read is a daemon
                feeder.join(timeout=2.0)
            pool.shutdown(wait=True, cancel_futures=True)
            if pause is not None:
                pause.__exit__(None, None, None)
