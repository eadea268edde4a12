"""diskimage.pipeline.ordered_map, the engine under capture, restore and
verify: results in input order, errors where they belong, nothing left
running once the consumer stops, and a signal that raises in the consumer
(Ctrl-C, TERM, HUP: cliutil/runner.py) at any moment ends the map with
that signal's exception and nothing else."""

import json
import random
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from diskimage.pipeline import ordered_map

from .rdeploy_helpers import ROOT, env


def _shuffled_sleep(x):
    time.sleep(random.random() / 1000)
    return x * x


def test_results_come_in_input_order():
    assert list(ordered_map(_shuffled_sleep, range(300), 4)) == \
        [x * x for x in range(300)]


def test_an_error_of_the_work_comes_after_the_results_before_it():
    def work(x):
        if x == 7:
            raise ValueError("seven")
        return x

    seen = []
    with pytest.raises(ValueError, match="seven"):
        for x in ordered_map(work, range(100), 3):
            seen.append(x)
    assert seen == list(range(7))


def test_an_error_of_the_input_comes_after_the_items_before_it():
    def items():
        yield from range(5)
        raise OSError("the disk went away")

    seen = []
    with pytest.raises(OSError, match="went away"):
        for x in ordered_map(lambda x: x, items(), 2):
            seen.append(x)
    assert seen == list(range(5))


def test_stopping_early_leaves_no_thread_running():
    before = set(threading.enumerate())
    results = ordered_map(_shuffled_sleep, range(10**9), 3)
    assert [next(results) for _ in range(10)] == [x * x for x in range(10)]
    results.close()
    assert set(threading.enumerate()) == before


# A thread sends SIGHUP to its own process at a random moment of each map,
# whose consumer runs a handler that raises (as the runner's does): in the
# wait for a result, while the feeder starts, during the clean-up.  Before
# the fix the consumer waited in threading.Condition.wait, which such a
# signal can cut between its release of the lock and its `try`: the `with`
# around it then raised "RuntimeError: cannot release un-acquired lock"
# (rdeploy exit 70 instead of 129, once in a CI run), and a signal in the
# clean-up left the feeder and the workers running (hundreds of threads
# after 2000 maps).
STRESS = textwrap.dedent("""
    import gc, json, os, random, signal, sys, threading, time
    from diskimage.pipeline import ordered_map

    class Stop(Exception):
        pass

    def handler(signum, frame):
        raise Stop

    signal.signal(signal.SIGHUP, handler)
    go = threading.Event()
    done = threading.Event()

    def killer():
        while not done.is_set():
            go.wait()
            go.clear()
            time.sleep(random.random() * 0.003)
            os.kill(os.getpid(), signal.SIGHUP)

    def work(x):
        time.sleep(0.0002)
        return x

    threading.Thread(target=killer, daemon=True).start()
    baseline = threading.active_count()
    stops, others = 0, []
    for _ in range(int(sys.argv[1])):
        try:
            go.set()
            for _ in ordered_map(work, range(10**9), 2):
                pass
        except Stop:
            stops += 1
        except BaseException as exc:
            others.append(f"{type(exc).__name__}: {exc}")
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    done.set()
    go.set()
    print(json.dumps({"stops": stops, "others": others,
                      "leaked": threading.active_count() - baseline,
                      "gc": gc.isenabled()}))
""")


def test_a_signal_at_any_moment_ends_the_map_cleanly():
    maps = 2000
    result = subprocess.run([sys.executable, "-c", STRESS, str(maps)],
                            env=env(), cwd=ROOT, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["others"] == []
    assert report["stops"] == maps
    assert report["leaked"] == 0
    assert report["gc"] is True
    assert "Traceback" not in result.stderr, result.stderr
