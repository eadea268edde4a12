"""What the boot tests of pxeconf jobs share (a machine of the room of
tests/pxeconf/room.py runs a job that restores its disk): the room with
a sweep of what its namespaces left running, the job's --progress=json
events read from the console, the job's end as pxeconf recorded it, and
the guest's disk judged on the host."""

import contextlib
import json
import os
import signal
import subprocess

from tests.bootdisk_helpers import DIST
from tests.pxeconf import netboot_helpers as nb
from tests.pxeconf.room import Room, pxeconf
from tests.smalldisk import sha256


def ns_pids(ns):
    proc = subprocess.run(["ip", "netns", "pids", ns], capture_output=True,
                          text=True)
    return [int(p) for p in proc.stdout.split()]


def identity(pid):
    """(name, start time) of a live process, or None: a pid seen again
    later is the same process only if both agree."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    name = stat[stat.index("(") + 1:stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] == "Z":
        return None
    return name, fields[19]


@contextlib.contextmanager
def room_of(scratch):
    """The Room; on the way out the Lan stops what it started, then any
    process still alive that was inside its namespaces is killed (by pid;
    each one named in `leftovers`, which the test asserts empty)."""
    os.makedirs(scratch, exist_ok=True)
    room = Room(scratch)
    room.leftovers = []
    try:
        yield room
    finally:
        seen = {pid: identity(pid) for ns in room.lan.namespaces
                for pid in ns_pids(ns)}
        room.close()
        for pid, ident in seen.items():
            if ident is not None and identity(pid) == ident:
                room.leftovers.append(f"{pid} {ident[0]}")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def json_events(text):
    """The --progress=json objects among the console's lines."""
    found = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and "event" in event:
            found.append(event)
    return found


def give_job(room, name, text, label, mac, host):
    """The job NAME (script `text` as jobs/NAME.sh, rebooting after it)
    added to the room's site, given once to machine `mac` named `host`;
    returns when serve has reloaded the site and leased it."""
    (room.boot / "jobs" / f"{name}.sh").write_text(text)
    pxeconf("job", "add", name, "--bundle=env", f"--script=jobs/{name}.sh",
            f"--label={label}", f"--cmdline={nb.CONSOLE} "
            f"rd.on_success=reboot rd.on_failure=reboot",
            f"--site={room.site}")
    pxeconf("host", "add", mac, f"--job={name}", "--once", f"--name={host}",
            f"--site={room.site}")
    room.wait_machine(mac, "assigned the job (the site file reloaded)",
                      lambda m: m["state"] == "assigned" and
                      m["job"] == name)


def job_done(room, vm, mac, command):
    """The machine's job ended `done` with exit 0 and local boot next,
    its --progress=json reached pxeconf (the API's machine object) and
    the console, whose last end event is `command`'s with exit 0: that
    event."""
    machine = room.wait_machine(mac, "done", lambda m: m["state"] == "done")
    assert machine["result"]["exit"] == 0, machine
    assert machine["next"] == "local", machine
    progress = machine["progress"]
    assert progress and progress["total"] and progress["done"], machine
    shown = json_events(vm.boot.plain())
    assert any(e["event"] == "progress" and e.get("task") == command
               for e in shown), vm.why()
    end = [e for e in shown if e["event"] == "end"]
    assert end and end[-1]["command"] == command and \
        end[-1]["exit_code"] == 0, vm.why()
    return end[-1]


def restored_as_on_host(disk, digest, image, scratch):
    """The guest's disk passes fsck and the golden file's digest,
    verify-target against the image, and equals byte for byte a restore
    of the image onto a blank disk on the host."""
    assert nb.check_restored(disk, digest, scratch / "check") == []
    check = subprocess.run([DIST / "rdeploy", "verify-target", disk, image],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    host = nb.blank_disk(scratch / "host.img")
    subprocess.run([DIST / "rdeploy", "restore", image, host, "--yes",
                    "--quiet"], check=True)
    assert sha256(disk) == sha256(host)
