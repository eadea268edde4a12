"""The journal: a restarted server replays it to the same state; a line
cut short by a power cut loses only that line; a file not ours is refused."""

import json
import os

import pytest

from diskimage.errors import BusyError, InputError
from diskimage.netboot import journal
from diskimage.netboot.jobs import Machines, StaleLease
from tests.netboot.jobsite import MAC1, MAC2, T0, Host, make_site
from tests.netboot.test_jobs import Clock


def site(directory):
    return make_site(directory, hosts=[
        Host(MAC1, name="pc01", job="restore", assigned=T0),
        Host(MAC2, name="pc02", job="restore", once=False, assigned=T0)])


def open_machines(path, logs=None):
    return Machines(site(path.parent), path,
                    log=logs.append if logs is not None else None,
                    clock=Clock())


def busy_history(path):
    """Two machines through most of the states; returns the snapshot and
    the leases."""
    ms = open_machines(path)
    l1, l2 = ms.next_boot(MAC1).lease, ms.next_boot(MAC2).lease
    ms.booted(MAC1, "bios")
    ms.report(l1, "started", log=["partitioning"])
    ms.booted(MAC1, "bios")                        # reset: attempt 1
    l1 = ms.next_boot(MAC1).lease
    ms.report(l1, "started")
    ms.report(l1, "progress", progress={"done": 10, "total": 40})
    ms.report(l1, "progress", progress={"done": 30, "total": 40},
              log=["copying"])
    ms.booted(MAC2, "efi")
    ms.report(l2, "started")
    ms.report(l2, "done", exit=0)                  # always: a new lease
    ms.booted("52:54:00:00:00:99", "ipxe-efi")     # a stranger
    state = ms.snapshot()
    ms.close()
    return state, l1, l2


def test_replay_gives_the_same_state(tmp_path):
    path = tmp_path / "journal.jsonl"
    state, l1, l2 = busy_history(path)
    ms = open_machines(path)
    assert ms.snapshot() == state
    # The leases are the same too: the one running is still accepted...
    assert ms.report(l1, "done", exit=0)["state"] == "done"
    # ...and the one replaced is still refused.
    with pytest.raises(StaleLease):
        ms.report(l2, "started")
    ms.close()
    again = open_machines(path)
    assert again.machine(MAC1)["state"] == "done"
    assert again.next_boot(MAC1).kind == "local"
    again.close()


def test_every_line_is_json_with_a_header(tmp_path):
    path = tmp_path / "journal.jsonl"
    busy_history(path)
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""
    assert json.loads(lines[0]) == {"journal": "pxeconf", "version": 1}
    records = [json.loads(x) for x in lines[1:-1]]
    assert {r["ev"] for r in records} >= {"lease", "seen", "started",
                                          "rerun", "progress", "done"}
    assert all(r["mac"] and r["at"] for r in records)
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("cut", [1, 7, 20])
def test_a_cut_short_last_line_loses_only_that_line(tmp_path, cut):
    path = tmp_path / "journal.jsonl"
    ms = open_machines(path)
    lease = ms.next_boot(MAC1).lease
    ms.report(lease, "started")
    whole = path.read_bytes()
    ms.report(lease, "done", exit=0)
    ms.close()
    data = path.read_bytes()
    last = data[len(whole):]
    path.write_bytes(whole + last[:len(last) - cut])   # the power cut
    logs = []
    ms = open_machines(path, logs)
    assert ms.machine(MAC1)["state"] == "started"     # done was lost
    assert len(logs) == 1 and "cut short" in logs[0] and \
        str(path) in logs[0]
    assert path.read_bytes() == whole                 # truncated back
    ms.report(lease, "done", exit=0)                  # and appends again
    ms.close()
    ms = open_machines(path)
    assert ms.machine(MAC1)["state"] == "done"
    ms.close()


def test_a_header_cut_short(tmp_path):
    path = tmp_path / "journal.jsonl"
    path.write_bytes(b'{"journal": "pxe')
    logs = []
    ms = open_machines(path, logs)
    assert "cut short" in logs[0]
    ms.close()
    assert json.loads(path.read_bytes().split(b"\n")[0])["journal"] == \
        "pxeconf"


@pytest.mark.parametrize("content,words", [
    (b"# my notes\n", "not a pxeconf journal"),
    (b'{"journal": "other", "version": 1}\n', "not a pxeconf journal"),
    (b'{"journal": "pxeconf", "version": 9}\n', "version 9"),
    (b'{"journal": "pxeconf", "version": 1}\nnot json\n{"ev": "x"}\n',
     "journal.jsonl:2: not a journal record"),
    (b'{"journal": "pxeconf", "version": 1}\n{"mac": "x"}\n',
     "journal.jsonl:2: a journal record without"),
    (b"\x7fELF\x02\x01", "not a pxeconf journal")])
def test_a_journal_not_ours(tmp_path, content, words):
    path = tmp_path / "journal.jsonl"
    path.write_bytes(content)
    with pytest.raises(InputError) as err:
        open_machines(path)
    assert words in str(err.value) and str(path) in str(err.value)
    assert "\n" not in str(err.value)
    assert path.read_bytes() == content               # left as it was


def test_one_server_per_journal(tmp_path):
    path = tmp_path / "journal.jsonl"
    ms = open_machines(path)
    with pytest.raises(BusyError):
        open_machines(path)
    ms.close()
    open_machines(path).close()


def test_readers_replay_without_the_lock(tmp_path):
    path = tmp_path / "journal.jsonl"
    ms = open_machines(path)
    ms.booted(MAC1, "bios")
    records = journal.read(path)
    assert [r["ev"] for r in records][-1] == "seen"
    assert journal.read(tmp_path / "missing") == []
    ms.close()


def test_a_long_journal_is_compacted_to_the_same_state(tmp_path):
    path = tmp_path / "journal.jsonl"
    state, l1, l2 = busy_history(path)
    before = len(path.read_bytes().splitlines())
    ms = Machines(site(tmp_path), path, clock=Clock(), compact_at=5)
    assert ms.snapshot() == state
    ms.close()
    lines = path.read_bytes().splitlines()
    assert len(lines) < before
    assert [json.loads(x)["ev"] for x in lines[1:]] == ["machine"] * 3
    assert not (tmp_path / "journal.jsonl.partial").exists()
    ms = open_machines(path)
    assert ms.snapshot() == state
    assert ms.report(l1, "done", exit=0)["state"] == "done"
    with pytest.raises(StaleLease):
        ms.report(l2, "started")
    ms.close()


def test_a_record_not_ours(tmp_path):
    path = tmp_path / "journal.jsonl"
    path.write_bytes(b'{"journal": "pxeconf", "version": 1}\n'
                     b'{"ev": "lease", "mac": "52:54:00:12:34:56"}\n')
    with pytest.raises(InputError) as err:
        open_machines(path)
    assert "journal.jsonl:2: a journal record 'lease'" in str(err.value)
    path.write_bytes(b'{"journal": "pxeconf", "version": 1}\n'
                     b'{"ev": "reboot", "mac": "52:54:00:12:34:56"}\n')
    with pytest.raises(InputError):
        open_machines(path)
    open_machines(path.with_name("other.jsonl")).close()   # lock released


def test_status_reads_while_the_server_holds_the_journal(tmp_path):
    from diskimage.netboot.jobs import status
    path = tmp_path / "journal.jsonl"
    ms = open_machines(path)
    lease = ms.next_boot(MAC1).lease
    ms.report(lease, "started")
    data = path.read_bytes()
    shown = {m["mac"]: m for m in status(site(tmp_path), path)}
    assert shown[MAC1]["state"] == "started"
    assert shown[MAC2]["state"] == "assigned"
    assert path.read_bytes() == data              # nothing written
    ms.close()
    assert status(site(tmp_path), tmp_path / "none.jsonl")[0]["state"] == \
        "assigned"
    assert not (tmp_path / "none.jsonl").exists()


WRITE_FAILS = r"""
import resource, signal, sys, os
from diskimage.errors import NoSpaceError
from diskimage.netboot.jobs import Machines
from diskimage.netboot import site
path = sys.argv[1]
ms = Machines(site.load(sys.argv[2]), path)
lease = ms.next_boot("52:54:00:12:34:56").lease
size = os.path.getsize(path)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (size + 10, size + 10))
try:
    ms.report(lease, "started")
except NoSpaceError as exc:
    print("refused:", exc)
print(ms.machine("52:54:00:12:34:56")["state"], os.path.getsize(path) == size)
"""


def test_a_record_that_cannot_be_written_changes_nothing(tmp_path):
    import subprocess
    import sys
    path = tmp_path / "journal.jsonl"
    site(tmp_path)
    out = subprocess.run([sys.executable, "-c", WRITE_FAILS, str(path),
                          str(tmp_path / "pxeconf.site")],
                         capture_output=True, text=True, check=True)
    lines = out.stdout.splitlines()
    assert lines[0].startswith(f"refused: {path}: cannot write the journal:"
                               f" no space left")
    assert lines[1] == "assigned True"
    ms = open_machines(path)                  # still a whole journal
    assert ms.machine(MAC1)["state"] == "assigned"
    ms.close()
