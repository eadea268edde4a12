"""The site file's edits: only the lines an edit must change change (every
comment and every other line byte for byte), the result is validated before
it replaces the file, and one editor at a time (flock: BusyError)."""

import os
import subprocess
import sys

import pytest

from diskimage.errors import BusyError
from diskimage.netboot import siteedit
from diskimage.netboot.site import Entry, Host, Job, load
from diskimage.netboot.sitefile import SiteError
from tests.site_helpers import ROOT, SITE, env, make_site


@pytest.fixture
def path(tmp_path):
    return make_site(tmp_path)


def test_add_entry_goes_after_the_last_entry(path):
    siteedit.add_entry(path, Entry("k", "Kernel #1", kernel="k/vmlinuz",
                                   initrd="k/initrd.img", cmdline="quiet"))
    assert path.read_text() == SITE.replace(
        "cmdline = rd.on_success=shell   # stay\n",
        "cmdline = rd.on_success=shell   # stay\n\n[menu k]\n"
        "label = \"Kernel #1\"\nkernel = k/vmlinuz\ninitrd = k/initrd.img\n"
        "cmdline = quiet\n")
    assert load(path).entries["k"].label == "Kernel #1"
    assert list(load(path).entries) == ["local", "rescue", "k"]


def test_default_rewritten_in_place_keeps_the_comment_column(path):
    siteedit.set_default(path, "rescue", timeout=30)
    assert path.read_text() == SITE.replace(
        "timeout = 5              # seconds",
        "timeout = 30             # seconds").replace(
        "default = local          # no job: local",
        "default = rescue         # no job: local")


def test_default_added_to_a_site_section_that_lacks_it(tmp_path):
    text = "# top\n\n[menu a]\nlocal = yes\n"
    path = make_site(tmp_path, text)
    siteedit.set_default(path, "a")
    assert path.read_text() == "# top\n\n[site]\ndefault = a\n\n" \
        "[menu a]\nlocal = yes\n"
    siteedit.set_default(path, "a", timeout=0)
    assert path.read_text() == "# top\n\n[site]\ndefault = a\ntimeout = 0\n" \
        "\n[menu a]\nlocal = yes\n"
    with pytest.raises(SiteError, match=r"menu b: no such entry \(entries: "
                       r"a\)"):
        siteedit.set_default(path, "b")


def test_remove_takes_its_own_comment_and_keeps_the_rest(path):
    siteedit.remove_entry(path, "rescue")
    assert path.read_text() == SITE.replace(
        "[menu rescue]            # a shell\nlabel = Rescue shell\n"
        "bundle = env\ncmdline = rd.on_success=shell   # stay\n\n", "")
    siteedit.remove_host(path, "52-54-00-12-34-56")
    assert path.read_text().endswith("script = jobs/restore.sh\n")
    assert "# pc01" not in path.read_text()
    assert "# the local disk\n[menu local]" in path.read_text()


def test_host_add_new_lease_and_keep(path):
    before = load(path).hosts["52:54:00:12:34:56"]
    siteedit.add_host(path, Host("525400123456", job="restore", once=False),
                      keep=True)
    first = load(path).hosts["52:54:00:12:34:56"]
    assert (first.name, first.once, first.line) == ("pc01", False, 24)
    assert first.assigned > before.assigned
    siteedit.add_host(path, Host("52:54:00:12:34:56", job="restore"),
                      keep=True)
    second = load(path).hosts["52:54:00:12:34:56"]
    assert second.assigned > first.assigned      # a new lease, even at once
    text = path.read_text()
    assert f"assigned = {second.assigned}   # lease\n" in text
    assert "# pc01 is the teacher's machine\n[host 52:54:00:12:34:56]\n" \
        "name = pc01\njob = restore\nonce = yes\n" in text
    siteedit.add_host(path, Host("52:54:00:12:34:56", menu="rescue"))
    assert path.read_text().endswith("[host 52:54:00:12:34:56]\n"
                                     "menu = rescue\n")
    siteedit.add_host(path, Host("52:54:00:00:00:02", name="pc02"))
    assert path.read_text().endswith("menu = rescue\n\n"
                                     "[host 52:54:00:00:00:02]\n"
                                     "name = pc02\n")


def test_jobs(path):
    siteedit.add_job(path, Job("wipe", "Wipe #1", "jobs/wipe.sh",
                               bundle="env", retries=0))
    assert "script = jobs/restore.sh\n\n[job wipe]\nlabel = \"Wipe #1\"\n" \
        "bundle = env\nscript = jobs/wipe.sh\nretries = 0\n\n# pc01" \
        in path.read_text()
    assert load(path).jobs["wipe"].retries == 0
    with pytest.raises(SiteError, match=r":23: job wipe: exists; remove it "
                       r"first \(pxeconf job rm wipe\)"):
        siteedit.add_job(path, Job("wipe", "", "jobs/wipe.sh", bundle="env"))
    siteedit.add_job(path, Job("wipe", "", "jobs/wipe.sh", kernel="k/vmlinuz",
                               initrd="k/initrd.img"), replace=True)
    assert "[job wipe]\nscript = jobs/wipe.sh\nkernel = k/vmlinuz\n" \
        "initrd = k/initrd.img\n" in path.read_text()
    siteedit.remove_job(path, "wipe")
    assert path.read_text() == SITE


def test_a_refused_edit_changes_nothing(path):
    before = path.read_bytes()
    cases = [
        (lambda: siteedit.remove_job(path, "restore"),
         r":26: job restore: 'restore' is the job of a machine \(\[host "
         r"52:54:00:12:34:56\] job, line 26\): give the machine another"),
        (lambda: siteedit.remove_entry(path, "local"),
         r":5: menu local: 'local' is the default entry \(\[site\] "
         r"default, line 5\): make another the default first \(pxeconf "
         r"menu default NAME\)$"),
        (lambda: siteedit.add_host(path, Host("52:54:00:00:00:09",
                                              job="restor")),
         r"pxeconf.site: host 52:54:00:00:00:09: job: no job named 'restor' "
         r"\(jobs: restore\); nothing changed"),
        (lambda: siteedit.add_entry(path, Entry("x", "", kernel="k/nope",
                                                initrd="k/initrd.img")),
         r"pxeconf.site: menu x: kernel: k/nope: no such file"),
        (lambda: siteedit.add_entry(path, Entry("x", "two\nlines",
                                                local=True)),
         r"label: a control character"),
        (lambda: siteedit.add_entry(path, Entry("x]", "", local=True)),
         r"menu x\]: not a name"),
        (lambda: siteedit.remove_host(path, "52:54:00:00:00:09"),
         r"host 52:54:00:00:00:09: no such host \(hosts: "
         r"52:54:00:12:34:56\)"),
        (lambda: siteedit.add_entry(path, Entry("rescue", "", local=True)),
         r":13: menu rescue: exists"),
    ]
    for edit, message in cases:
        with pytest.raises(SiteError, match=message):
            edit()
        assert path.read_bytes() == before
    assert sorted(os.listdir(path.parent)) == ["boot", "pxeconf.site"]


def test_a_broken_file_is_not_edited(path):
    path.write_text(SITE + "[menu z]\ncolour = red\n")
    with pytest.raises(SiteError, match=r":30: menu z: colour: unknown key"):
        siteedit.add_host(path, Host("52:54:00:00:00:01", name="x"))


def test_crlf_no_final_newline_mode_and_symlink(tmp_path):
    path = make_site(tmp_path, "")
    path.write_bytes(b"\xef\xbb\xbf[site]\r\ntimeout = 5\r\n\r\n"
                     b"[menu a]\r\nlocal = yes")
    os.chmod(path, 0o600)
    link = tmp_path / "link.site"
    os.symlink("pxeconf.site", link)
    siteedit.add_entry(link, Entry("b", "", local=True))
    siteedit.set_default(link, "b")
    assert path.read_bytes() == (b"\xef\xbb\xbf[site]\r\ntimeout = 5\r\n"
                                 b"default = b\r\n\r\n[menu a]\r\n"
                                 b"local = yes\r\n\r\n[menu b]\r\n"
                                 b"local = yes\r\n")
    assert os.path.islink(link)
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_a_stale_partial_is_replaced(path):
    (path.parent / "pxeconf.site.partial").write_text("left by a crash")
    warnings = siteedit.add_host(path, Host("52:54:00:00:00:01", name="x"))
    assert len(warnings) == 1 and "left by an earlier run" in warnings[0]
    assert sorted(os.listdir(path.parent)) == ["boot", "pxeconf.site"]


HOLD = """
import sys
from diskimage.netboot import siteedit
with siteedit.locked(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_another_editor_is_refused_at_once(path):
    before = path.read_bytes()
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)],
                              env=env(), cwd=ROOT, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(BusyError, match=r"pxeconf.site: another pxeconf "
                           r"is editing this site file; nothing changed"):
            siteedit.add_host(path, Host("52:54:00:00:00:01", name="x"))
        assert path.read_bytes() == before
    finally:
        holder.stdin.close()
        assert holder.wait(timeout=30) == 0
    siteedit.add_host(path, Host("52:54:00:00:00:01", name="x"))
    assert "52:54:00:00:00:01" in load(path).hosts


EDITOR = """
import sys
from diskimage.errors import BusyError
from diskimage.netboot import siteedit
from diskimage.netboot.site import Host
for i in range(int(sys.argv[3])):
    mac = "52:54:00:%02x:00:%02x" % (int(sys.argv[2]), i)
    try:
        siteedit.add_host(sys.argv[1], Host(mac, name="h%s-%d" % (sys.argv[2], i)))
    except BusyError:
        print("busy", mac, flush=True)
    else:
        print("added", mac, flush=True)
"""


def test_two_editors_at_once_lose_no_edit(path):
    editors = [subprocess.Popen([sys.executable, "-c", EDITOR, str(path),
                                 str(n), "40"], env=env(), cwd=ROOT,
                                stdout=subprocess.PIPE, text=True)
               for n in (1, 2)]
    outputs = [p.communicate(timeout=120)[0] for p in editors]
    assert [p.returncode for p in editors] == [0, 0]
    said = [line.split() for out in outputs for line in out.splitlines()]
    assert len(said) == 80
    added = {mac for word, mac in said if word == "added"}
    assert set(load(path).hosts) == added | {"52:54:00:12:34:56"}
    assert sorted(os.listdir(path.parent)) == ["boot", "pxeconf.site"]


def test_a_host_spelled_by_hand_is_found_and_kept(tmp_path):
    text = "[menu local]\nlocal = yes\n\n[job restore]\nbundle = env\n" \
        "script = jobs/restore.sh\n\n[host 52-54-00-AB-CD-EF]  # by hand\n" \
        "job = restore\nassigned = 2026-12-01T16:30:00Z\n"
    path = make_site(tmp_path, text)
    siteedit.add_host(path, Host("52:54:00:ab:cd:ef", name="pc09"), keep=True)
    assert path.read_text() == text.replace(
        "assigned = 2026-12-01T16:30:00Z\n",
        "assigned = 2026-12-01T16:30:00Z\nname = pc09\n")
    host = load(path).hosts["52:54:00:ab:cd:ef"]
    assert (host.name, host.job, host.assigned) == \
        ("pc09", "restore", "2026-12-01T16:30:00Z")     # the same lease
    siteedit.remove_host(path, "52:54:00:AB:CD:EF")
    assert path.read_text() == text.split("\n\n[host")[0] + "\n"


def test_a_last_possible_assigned_stamp(path):
    """A stamp no later time can follow (9999-12-31T23:59:59Z, by hand)
    is an error at its line, not a traceback, and the file is kept."""
    text = path.read_text()
    stamp = load(path).hosts["52:54:00:12:34:56"].assigned
    path.write_text(text.replace(stamp, "9999-12-31T23:59:59Z"))
    before = path.read_bytes()
    with pytest.raises(SiteError, match=r":\d+: host 52:54:00:12:34:56: "
                       r"assigned: 9999-12-31T23:59:59Z: no later time"):
        siteedit.add_host(path, Host("52:54:00:12:34:56", job="restore"))
    assert path.read_bytes() == before


@pytest.mark.parametrize("text,remove,message", [
    ("[site]\nfallback = rescue\n[menu local]\nlocal = yes\n[menu rescue]\n"
     "local = yes\n", ("menu", "rescue"), r":2: menu rescue: 'rescue' is the "
     r"fallback entry \(\[site\] fallback, line 2\)"),
    ("[menu local]\nlocal = yes\n[menu rescue]\nlocal = yes\n"
     "[host 52:54:00:00:00:07]\nmenu = rescue\n", ("menu", "rescue"),
     r":6: menu rescue: 'rescue' is the menu entry of a machine \(\[host "
     r"52:54:00:00:00:07\] menu, line 6\): give the machine another"),
    ("[menu local]\nlocal = yes\n[server a]\nentries = local, rescue\n"
     "[menu rescue]\nlocal = yes\n", ("menu", "rescue"),
     r":4: menu rescue: 'rescue' is in the menu's entries \(\[server a\] "
     r"entries, line 4\)"),
    ("[menu local]\nlocal = yes\n[job j]\nbundle = env\nscript = "
     "jobs/wipe.sh\n[menu wipe]\njob = j\n", ("job", "j"),
     r":7: job j: 'j' is run by a menu entry \(\[menu wipe\] job, line 7\)"
     r": remove that entry first \(pxeconf menu rm NAME\)"),
])
def test_what_is_in_use_is_not_removed(tmp_path, text, remove, message):
    path = make_site(tmp_path, text)
    before = path.read_bytes()
    edit = siteedit.remove_entry if remove[0] == "menu" \
        else siteedit.remove_job
    with pytest.raises(SiteError, match=message):
        edit(path, remove[1])
    assert path.read_bytes() == before
