"""Run diskimage.netboot.dnsmasqproc.Dnsmasq with the config file argv[1]
(run by tests/netboot/test_dnsmasqproc.py inside a network namespace).
One JSON line per event on stdout: {"started": pid}, {"log": line},
{"died": message}, {"stopped": true}, {"error": message, "class": name};
"stop" on stdin stops it."""

import json
import sys
import threading
from pathlib import Path

from diskimage.errors import DiskImageError
from diskimage.netboot.dnsmasqproc import Dnsmasq


_LOCK = threading.Lock()


def say(**event):
    with _LOCK:
        print(json.dumps(event), flush=True)


def main():
    text = Path(sys.argv[1]).read_text()
    died = threading.Event()

    def on_exit(error):
        say(died=str(error), kind=type(error).__name__)
        died.set()

    proc = Dnsmasq(text, Path(sys.argv[2]), lambda line: say(log=line),
                   on_exit=on_exit)
    try:
        proc.start()
    except DiskImageError as exc:
        say(error=str(exc), kind=type(exc).__name__)
        return
    say(started=proc.pid)
    threading.Thread(target=lambda: (sys.stdin.readline(), died.set()),
                     daemon=True).start()
    died.wait()
    proc.stop()
    say(stopped=True)


if __name__ == "__main__":
    main()
