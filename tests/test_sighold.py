"""diskimage.sighold (as imgx edits and loop devices use it): the signals
that end a command wait while a step that must not be cut in half runs
(losetup, mount), also when another thread is alive (tqdm's monitor, a
feeder waiting on a pipe), and are handled once the step is over.  A real
process under the real runner, real signals."""

import signal
import subprocess
import sys
import textwrap

import pytest

from tests.signals import INTERRUPTIBLE

from .imgx_helpers import ROOT

CHILD = textwrap.dedent("""
    import sys, threading, time
    from cliutil.runner import run
    from imgx.editfs import sigint_held

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
