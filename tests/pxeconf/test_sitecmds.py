"""pxeconf menu|job|host: through pxeconf.cli.main(argv), and as a program
for its exit codes, its one-line errors and a SIGTERM during an edit."""

import json
import os
import signal
import subprocess
import sys

import pytest

from diskimage.netboot.site import load
from pxeconf.cli import main
from tests.signals import AT_COMMIT, INTERRUPTIBLE
from tests.site_helpers import ROOT, SITE, env, error_line, make_site, \
    pxeconf


@pytest.fixture
def site(tmp_path, monkeypatch):
    path = make_site(tmp_path)
    monkeypatch.chdir(tmp_path)         # --site defaults to ./pxeconf.site
    return path


def cli(*argv):
    return main(list(argv), exiting=False)


def test_menu_commands(site, capsys):
    assert cli("menu", "add", "shell", "--bundle=env", "--label=A shell",
               "--cmdline=rd.on_success=shell") == 0
    assert cli("menu", "add", "k", "--kernel=k/vmlinuz",
               "--initrd=k/initrd.img") == 0
    assert cli("menu", "add", "by-hand", "--job=restore") == 0
    assert cli("menu", "default", "shell", "--timeout=12") == 0
    assert capsys.readouterr() == ("", "")      # silent on success
    assert cli("menu", "list") == 0
    assert capsys.readouterr().out == (
        "DEFAULT  NAME     LABEL                     BOOTS                     "
        "CMDLINE\n"
        "         local    Boot from the local disk  local disk                "
        "-\n"
        "         rescue   Rescue shell              bundle env                "
        "rd.on_success=shell\n"
        "*        shell    A shell                   bundle env                "
        "rd.on_success=shell\n"
        "         k        k                         k/vmlinuz + k/initrd.img  "
        "-\n"
        "         by-hand  by-hand                   job restore               "
        "-\n")
    assert cli("menu", "list", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert (listed["default"], listed["timeout"]) == ("shell", 12)
    assert [e["name"] for e in listed["entries"]] == \
        ["local", "rescue", "shell", "k", "by-hand"]
    assert listed["entries"][3]["kernel"] == "k/vmlinuz"
    assert cli("menu", "rm", "k") == 0
    assert "k" not in load(site).entries


def test_job_commands(site, capsys):
    assert cli("job", "add", "wipe", "--script=jobs/wipe.sh", "--bundle=env",
               "--retries=4", "--label=Wipe the disk") == 0
    assert cli("job", "list") == 0
    assert capsys.readouterr().out == (
        "NAME     LABEL                  SCRIPT           BOOTS       RETRIES\n"
        "restore  Restore the lab image  jobs/restore.sh  bundle env  2\n"
        "wipe     Wipe the disk          jobs/wipe.sh     bundle env  4\n")
    assert cli("job", "list", "--json") == 0
    jobs = json.loads(capsys.readouterr().out)["jobs"]
    assert [(j["name"], j["retries"]) for j in jobs] == \
        [("restore", 2), ("wipe", 4)]
    assert cli("job", "rm", "wipe") == 0
    assert list(load(site).jobs) == ["restore"]


def test_host_commands(site, capsys):
    assert cli("host", "add", "52-54-00-AA-BB-CC", "--job=restore", "--once",
               "--name=pc02") == 0
    first = load(site).hosts["52:54:00:aa:bb:cc"]
    assert (first.name, first.job, first.once) == ("pc02", "restore", True)
    assert cli("host", "add", "525400aabbcc", "--job=restore", "--once") == 0
    again = load(site).hosts["52:54:00:aa:bb:cc"]
    assert again.name == "pc02" and again.assigned > first.assigned
    assert cli("host", "add", "52:54:00:AA:BB:CD", "--menu=rescue") == 0
    assert cli("host", "list", "--json") == 0
    hosts = json.loads(capsys.readouterr().out)["hosts"]
    assert [(h["mac"], h["name"], h["job"], h["once"], h["menu"])
            for h in hosts] == [
        ("52:54:00:12:34:56", "pc01", "restore", True, None),
        ("52:54:00:aa:bb:cc", "pc02", "restore", True, None),
        ("52:54:00:aa:bb:cd", "", None, None, "rescue")]
    assert cli("host", "list") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["MAC", "NAME", "JOB", "ONCE", "ASSIGNED",
                              "MENU"]
    assert out[3].split() == ["52:54:00:aa:bb:cd", "-", "-", "-", "-",
                              "rescue"]
    assert len({line.index("NAME") if i == 0 else len(line.split()[0])
                for i, line in enumerate(out)}) <= 2     # aligned
    assert cli("host", "rm", "52:54:00:aa:bb:cd") == 0
    # One default: a job runs once unless --always, as in the site file.
    assert cli("host", "add", "52:54:00:12:34:56", "--job=restore") == 0
    assert load(site).hosts["52:54:00:12:34:56"].once is True
    assert cli("host", "add", "52:54:00:12:34:56", "--always") == 0
    always = load(site).hosts["52:54:00:12:34:56"]
    assert (always.job, always.once, always.name) == ("restore", False,
                                                      "pc01")
    # --once alone on a machine with a job: keeps it, with a new lease
    assert cli("host", "add", "52:54:00:12:34:56", "--once") == 0
    once = load(site).hosts["52:54:00:12:34:56"]
    assert (once.job, once.once) == ("restore", True)
    assert once.assigned > always.assigned
    text = site.read_text()
    assert "# pc01 is the teacher's machine\n" in text
    assert "   # lease\n" in text


@pytest.mark.parametrize("argv,code,message", [
    (["host", "add", "52:54:00:aa:bb:cc", "--job=restor"], 3,
     "pxeconf.site: host 52:54:00:aa:bb:cc: job: no job named 'restor' "
     "(jobs: restore); nothing changed"),
    (["host", "add", "52:54:00:aa:bb", "--job=restore"], 3,
     "'52:54:00:aa:bb': not a MAC address (six bytes in hex, e.g. "
     "52:54:00:12:34:56)"),
    (["host", "add", "52:54:00:aa:bb:cc", "--once"], 3,
     "pxeconf.site: host 52:54:00:aa:bb:cc: has no job: --once and "
     "--always are for a job (give --job=NAME)"),
    (["host", "add", "52:54:00:aa:bb:cc", "--always", "--menu=rescue"], 2,
     "host add: --once and --always are for a job, not --menu"),
    (["host", "add", "52:54:00:aa:bb:cc", "--once", "--always"], 2, ""),
    (["host", "add", "ff:ff:ff:ff:ff:ff", "--job=restore"], 3,
     "'ff:ff:ff:ff:ff:ff': the broadcast MAC, not a machine's"),
    (["host", "add", "52:54:00:aa:bb:cc", "--job=restore", "--menu=rescue"],
     2, "host add: give --job or --menu, not both; see 'pxeconf --help'"),
    (["host", "rm", "52:54:00:aa:bb:cc"], 3, "pxeconf.site: host "
     "52:54:00:aa:bb:cc: no such host (hosts: 52:54:00:12:34:56)"),
    (["menu", "default", "resque"], 3, "pxeconf.site: menu resque: no such "
     "entry (entries: local, rescue)"),
    (["menu", "default", "rescue", "--timeout=soon"], 2, "--timeout takes a "
     "whole number from 0 to 3600, not 'soon'; see 'pxeconf --help'"),
    (["menu", "add", "x", "--bundle=../outside"], 3, "pxeconf.site: menu x: "
     "bundle: '..' in the path (traversal)"),
    (["menu", "rm", "local"], 3, "pxeconf.site:5: menu local: 'local' is "
     "the default entry ([site] default, line 5): make another the default "
     "first (pxeconf menu default NAME)"),
    (["job", "rm", "restore"], 3, "pxeconf.site:26: job restore: 'restore' "
     "is the job of a machine ([host 52:54:00:12:34:56] job, line 26): give "
     "the machine another first"),
    (["job", "add", "j", "--script=/etc/passwd", "--bundle=env"], 3,
     "pxeconf.site: job j: script: /etc/passwd: an absolute path"),
    (["host", "list", "--site=other.site"], 3, "other.site: no such site "
     "file; run `pxeconf init DIR` to make a site, or give --site=FILE"),
])
def test_errors_exit_codes(site, argv, code, message):
    before = site.read_bytes()
    result = pxeconf(*argv, cwd=site.parent)
    assert result.returncode == code, result.stderr
    assert error_line(result).startswith(message), result.stderr
    assert result.stdout == ""
    assert site.read_bytes() == before


def test_a_broken_site_file_names_its_line(site):
    site.write_text(SITE.replace("job = restore\nonce", "job = restor\nonce"))
    result = pxeconf("host", "list", cwd=site.parent)
    assert result.returncode == 3
    assert error_line(result) == ("pxeconf.site:26: host 52:54:00:12:34:56: "
                                  "job: no job named 'restor' (jobs: "
                                  "restore)")


HOLD = """
import sys
from diskimage.netboot import siteedit
with siteedit.locked(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_busy_while_another_edits(site):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(site)],
                              env=env(), cwd=ROOT, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        result = pxeconf("host", "add", "52:54:00:aa:bb:cc", "--name=x",
                         cwd=site.parent)
        assert result.returncode == 9
        assert error_line(result) == ("pxeconf.site: another pxeconf is "
                                      "editing this site file; nothing "
                                      "changed (try again when it is done)")
        assert site.read_text() == SITE
        assert pxeconf("host", "list", cwd=site.parent).returncode == 0
    finally:
        holder.stdin.close()
        assert holder.wait(timeout=30) == 0


@pytest.mark.parametrize("moment,code,whole", [
    ("partial", 143, "old"), ("step", 0, "new")])
def test_sigterm_during_an_edit(site, moment, code, whole):
    result = subprocess.run(
        [sys.executable, "-c", AT_COMMIT, str(int(signal.SIGTERM)), moment,
         "1", "pxeconf", "host", "add", "52:54:00:aa:bb:cc", "--name=x"],
        env=env(), cwd=site.parent, capture_output=True, text=True,
        timeout=60, **INTERRUPTIBLE)
    assert result.returncode == code, result.stderr
    text = site.read_text()
    if whole == "old":
        assert text == SITE
        assert "interrupted by SIGTERM" in result.stderr
    else:
        assert text.startswith(SITE) and "[host 52:54:00:aa:bb:cc]" in text
        load(site)
    assert sorted(os.listdir(site.parent)) == ["boot", "pxeconf.site"]


def test_help_of_the_site_commands(site):
    for command in ("menu", "job", "host"):
        result = pxeconf(command, "--help", cwd=site.parent)
        assert result.returncode == 0
        assert f"pxeconf {command} add" in result.stdout


def test_status_reads_the_journal_without_touching_it(site, capsys):
    from diskimage.netboot.jobs import Machines
    from diskimage.netboot.status import journal_path
    journal = journal_path(site)
    assert journal == str(site.parent / "state" / "journal.jsonl")
    assert cli("status", "--json") == 0         # no journal yet: idle
    (machine,) = json.loads(capsys.readouterr().out)["machines"]
    assert (machine["mac"], machine["name"], machine["state"]) == \
        ("52:54:00:12:34:56", "pc01", "assigned")
    assert not os.path.exists(site.parent / "state")
    server = Machines(load(site), journal)      # as `pxeconf serve` holds it
    try:
        server.booted("52:54:00:12:34:56", "bios")
        server.booted("52:54:00:00:00:99", "efi")    # unknown, recorded
        lease = server.next_boot("52:54:00:12:34:56").lease
        server.report(lease, "started")
        server.report(lease, "progress", progress={"done": 50, "total": 200})
        before = open(journal, "rb").read()
        result = pxeconf("status", "--json", cwd=site.parent)
        assert result.returncode == 0, result.stderr
        machines = {m["mac"]: m for m in json.loads(result.stdout)["machines"]}
        assert machines["52:54:00:12:34:56"]["state"] == "started"
        assert machines["52:54:00:12:34:56"]["firmware"] == "bios"
        assert machines["52:54:00:12:34:56"]["progress"]["percent"] == 25
        assert machines["52:54:00:00:00:99"]["state"] == "unknown"
        result = pxeconf("status", cwd=site.parent)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0].split() == ["MAC", "NAME", "FIRMWARE", "STATE", "JOB",
                                    "PROGRESS", "LAST", "SEEN", "RESULT",
                                    "NEXT"]
        assert lines[1].split()[:3] == ["52:54:00:00:00:99", "-", "efi"]
        assert lines[2].split()[:6] == ["52:54:00:12:34:56", "pc01", "bios",
                                        "started", "restore", "25%"]
        assert open(journal, "rb").read() == before     # read, not written
    finally:
        server.close()


def test_status_of_a_journal_not_ours(site):
    (site.parent / "state").mkdir()
    (site.parent / "state" / "journal.jsonl").write_text("hello\n")
    result = pxeconf("status", cwd=site.parent)
    assert result.returncode == 3
    assert "journal.jsonl: not a pxeconf journal" in error_line(result)
