"""An ordered, bounded, parallel map: the engine under capture, restore and
verify.

One feeder thread walks the input (reading the disk or the image), a pool of
workers transforms items (compression, checksums: C code that releases the
GIL), and the caller consumes results in input order.  At most `depth`
results are in flight, so memory stays bounded whatever the disk size.
"""

import queue
import threading
from concurrent.futures import ThreadPoolExecutor

_END = object()


class _Failed:
    def __init__(self, exc):
        self.exc = exc


def ordered_map(func, items, threads, depth=None):
    """Yield func(item) for each item of the iterable, in order.

    Reading `items` happens on its own thread and overlaps both the work and
    the consumer.  An exception from `items` or `func` is raised here, in
    order; closing the generator early stops the feeder.
    """
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
