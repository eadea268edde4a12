"""diskimage.signalsafe.Flag: an Event whose wait a raising signal
handler leaves whole (the main thread of pxeconf serve waits on it)."""

import signal
import threading

import pytest

from diskimage.signalsafe import Flag


def test_a_wait_that_times_out_is_false():
    flag = Flag()
    assert flag.wait(0.01) is False
    assert not flag.is_set()


def test_set_wakes_every_waiter_and_stays_set():
    flag = Flag()
    woken = []
    waiters = [threading.Thread(target=lambda: woken.append(flag.wait(60)))
               for _ in range(3)]
    for thread in waiters:
        thread.start()
    flag.set()
    for thread in waiters:
        thread.join(60)
    assert woken == [True, True, True]
    assert flag.is_set() and flag.wait(0) and flag.wait()


class _Alarm(Exception):
    pass


def test_a_signal_raising_in_the_wait_leaves_it_usable():
    def ring(signum, frame):
        raise _Alarm

    old = signal.signal(signal.SIGALRM, ring)
    try:
        flag = Flag()
        for _ in range(20):
            signal.setitimer(signal.ITIMER_REAL, 0.002)
            with pytest.raises(_Alarm):
                flag.wait(60)
        threading.Timer(0.01, flag.set).start()
        assert flag.wait(60) is True
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
