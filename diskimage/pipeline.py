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
    """
    keep_freed_buffers()
    threads = max(1, threads)
    depth = depth or threads + 2
    pending = queue.Queue(maxsize=depth)
    stop = threading.Event()
    pool = ThreadPoolExecutor(max_workers=threads,
                              thread_name_prefix="rdi-worker")

    def put(item):
        while not stop.is_set():
            try:
                pending.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def feed():
        try:
            for item in items:
                if not put(pool.submit(func, item)):
                    return
        except BaseException as exc:  # handed to the consumer, in order
            put(_Failed(exc))
            return
        put(_END)

    feeder = threading.Thread(target=feed, name="rdi-feeder", daemon=True)
    pause = paused_gc()
    pause.__enter__()
    feeder.start()
    try:
        while True:
            item = pending.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.exc
            yield item.result()
    finally:
        stop.set()
        while True:
            try:
                item = pending.get_nowait()
            except queue.Empty:
                break
            if hasattr(item, "cancel"):
                item.cancel()
        feeder.join(timeout=2.0)  # a feeder blocked on a pipe read is a daemon
        pool.shutdown(wait=True, cancel_futures=True)
        pause.__exit__(None, None, None)
