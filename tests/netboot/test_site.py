"""The site file read into its model: values typed, defaults, references
and files checked, every error "FILE:LINE: FIELD: problem"."""

import os

import pytest

from diskimage.errors import InputError
from diskimage.netboot import site
from diskimage.netboot.site import SiteError, load, load_text
from tests.site_helpers import SITE, make_site


@pytest.fixture
def path(tmp_path):
    return make_site(tmp_path)


def test_the_model(path):
    s = load(path)
    assert s.settings == site.Settings(root=str(path.parent / "boot"),
                                       timeout=5, default="local", retries=2,
                                       fallback="local")
    assert list(s.entries) == ["local", "rescue"]
    rescue = s.entries["rescue"]
    assert (rescue.label, rescue.bundle, rescue.cmdline, rescue.line) == \
        ("Rescue shell", "env", "rd.on_success=shell", 13)
    assert (rescue.kernel_path, rescue.initrd_path) == \
        ("env/vmlinuz", "env/initrd.img")
    assert s.entries["local"].local and s.entries["local"].kernel_path is None
    job = s.jobs["restore"]
    assert (job.script, job.kernel_path, job.retries, job.line) == \
        ("jobs/restore.sh", "env/vmlinuz", None, 18)
    assert s.hosts == {"52:54:00:12:34:56": site.Host(
        "52:54:00:12:34:56", "pc01", "restore", True,
        "2026-12-01T16:30:00Z", line=24)}
    assert s.servers == {}


def test_the_template_loads_and_names_its_defaults(tmp_path):
    (tmp_path / "boot").mkdir()
    (tmp_path / "pxeconf.site").write_text(site.new_site_text())
    s = load(tmp_path / "pxeconf.site")
    assert (s.settings.timeout, s.settings.default, s.settings.fallback,
            s.settings.retries, s.settings.http_port) == \
        (5, "local", "local", 2, 80)
    assert list(s.entries) == ["local"] and not s.jobs and not s.hosts


def test_defaults_of_an_empty_file(tmp_path):
    path = make_site(tmp_path, "")
    s = load(path)
    assert s.settings.root == str(tmp_path / "boot")
    assert (s.settings.default, s.settings.fallback) == (None, None)
    assert load_text(path, "[menu local]\nlocal = yes\n").settings.fallback \
        == "local"


def test_kernel_entry_job_entry_and_values(path):
    s = load_text(path, SITE + """
[menu k]
kernel = ./k//vmlinuz
initrd = k/initrd.img
label = "Disk #2 "    # quoted: the '#' and the space are the label's
cmdline = quiet a#b console=ttyS0   # '#' inside a word is the value's

[menu by-hand]
job = restore

[job wipe]
kernel = k/vmlinuz
initrd = k/initrd.img
script = jobs/wipe.sh
retries = 0

[host 52-54-00-AB-CD-EF]
menu = rescue
fallback = rescue

[host 525400abcdee]
job = wipe
once = no
""")
    k = s.entries["k"]
    assert (k.kernel, k.initrd, k.label, k.cmdline) == \
        ("k/vmlinuz", "k/initrd.img", "Disk #2 ", "quiet a#b console=ttyS0")
    assert s.entries["by-hand"].job == "restore"
    assert s.entries["by-hand"].label == "by-hand"
    assert s.jobs["wipe"].retries == 0
    assert s.hosts["52:54:00:ab:cd:ef"].menu == "rescue"
    assert s.hosts["52:54:00:ab:cd:ee"].once is False


def test_servers(path):
    s = load_text(path, SITE + """
[server lab2]
address = 10.0.1.2
default = rescue
entries = rescue, local
http-port = 8080
""")
    assert s.servers == {"lab2": {"address": "10.0.1.2", "default": "rescue",
                                  "entries": ("rescue", "local"),
                                  "http_port": 8080}}
    lab2 = s.for_server("lab2")
    assert (lab2.settings.address, lab2.settings.default,
            lab2.settings.http_port, lab2.settings.timeout) == \
        ("10.0.1.2", "rescue", 8080, 5)
    assert [e.name for e in lab2.menu()] == ["rescue", "local"]
    assert [e.name for e in s.menu()] == ["local", "rescue"]
    assert s.settings.address is None
    with pytest.raises(SiteError, match=r"server lab3: no \[server lab3\] "
                       r"in the site file \(servers: lab2\)"):
        s.for_server("lab3")


def test_the_example_of_the_brief(tmp_path, monkeypatch):
    make_site(tmp_path, "[site]\ndefault = local\n\n[menu local]\n"
              "local = yes\n\n[job restore]\nbundle = env\n"
              "script = jobs/restore.sh\n\n# the teacher's machine\n"
              "[host 52-54-00-12-34-56]\nname = pc01\njob = restor\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SiteError) as caught:
        load("pxeconf.site")
    assert str(caught.value) == ("pxeconf.site:14: host 52:54:00:12:34:56: "
                                 "job: no job named 'restor' (jobs: "
                                 "restore)")
    assert isinstance(caught.value, InputError)
    assert caught.value.exit_code == 3
    assert (caught.value.path, caught.value.line, caught.value.field) == \
        ("pxeconf.site", 14, "host 52:54:00:12:34:56: job")


# (text appended to SITE or replacing a line of it, line, message)
ERRORS = [
    ("timout = 5", 7, r"site: timout: unknown key \(did you mean 'timeout'\?"),
    ("colour = red", 7, r"site: colour: unknown key \(keys of \[site\]: root"),
    ("[menus x]", 8, r"\[menus x\]: not a known section \(sections: \[site\]"),
    ("[menus x]", 8, r"\[job NAME\], \[host MAC\]\)$"),
    ("[Menu x]", 8, r"\[Menu x\]: write \[menu x\]: sections and keys are "
     r"lower case$"),
    ("Timeout = 5", 7, r"site: Timeout: unknown key \(did you mean "
     r"'timeout'\?\)"),
    ("[menu]", 8, r"\[menu\]: a section is \[menu NAME\]"),
    ("[site x]", 8, r"\[site x\]: \[site\] takes no name"),
    ("[host 52:54:00:12:34]", 8, r"'52:54:00:12:34': not a MAC address"),
    ("[menu bad/name]\nlocal = yes", 8, r"\[menu bad/name\]: .* not a name"),
    ("[menu rescue]\nlocal = yes", 16,
     r"menu rescue: a second \[menu rescue\] \(the first is at line 8\)"),
    ("[host 52-54-00-12-34-56]\nname = again", 27,
     r"host 52:54:00:12:34:56: a second .* \(the first is at line 8\)"),
    ("timeout = 7", 7, r"site: timeout: set twice in this section "
     r"\(first at line 4\)"),
    ("just words", 7, r":7: not a \[section\], a KEY = VALUE line"),
    ("http-port = soon", 7, r"site: http-port: 'soon' is not a whole "
     r"number"),
    ("http-port = 70000", 7, r"site: http-port: 70000 is out of range"),
    ("address = 10.0.0", 7, r"site: address: '10.0.0' is not an IPv4"),
    ("address = 0.0.0.0", 7, r"site: address: '0.0.0.0' is the "
     r"unspecified address"),
    ("address = 224.0.0.5", 7, r"site: address: .* is a multicast address"),
    ("address = 255.255.255.255", 7, r"site: address: .* is the broadcast "
     r"address"),
    ("[host ff:ff:ff:ff:ff:ff]", 8, r"\[host ff:ff:ff:ff:ff:ff\]: .*the "
     r"broadcast MAC.*unicast"),
    ("[host 01:00:5e:00:00:01]", 8, r"a multicast MAC"),
    ("label = \"open", 11, r"menu local: label: a quoted value without its"),
    ("local = maybe", 11, r"menu local: local: 'maybe' is not yes or no"),
    ("assigned = yesterday", 28, r"host .*: assigned: 'yesterday' is not a "
     r"UTC time"),
    ("assigned = 2026-13-01T16:30:00Z", 28, r"is not a UTC time"),
    ("default = nothing", 5, r"site: default: no entry named 'nothing' "
     r"\(entries: local, rescue\)"),
    ("fallback = gone", 7, r"site: fallback: no entry named 'gone'"),
    ("[server lab2]\nroot = /srv", 9, r"server lab2: root: unknown key "
     r"\(the boot root is the same for every server\)"),
    ("[server lab2]\nentries = rescue", 9, r"server lab2: entries: the "
     r"default entry 'local' is not in the entries of this menu \(rescue\)"),
    ("[server lab2]\nentries = rescue, rescue", 9, r"a name given twice"),
    ("[menu e]\nlabel = nothing to boot", 8, r"menu e: boots nothing"),
    ("[menu e]\nlocal = yes\nbundle = env", 9, r"menu e: local: and bundle: "
     r"an entry boots one of"),
    ("[menu e]\nkernel = k/vmlinuz", 9, r"menu e: kernel: without initrd"),
    ("[menu e]\nbundle = env\nkernel = k/vmlinuz\ninitrd = k/initrd.img",
     9, r"menu e: bundle: give a bundle or a kernel and an initrd"),
    ("[menu e]\nlocal = yes\ncmdline = quiet", 10, r"menu e: cmdline: a "
     r"local entry boots no kernel"),
    ("[menu e]\njob = nope", 9, r"menu e: job: no job named 'nope' "
     r"\(jobs: restore\)"),
    ("[job j]\nbundle = env", 8, r"job j: script: missing"),
    ("[job j]\nscript = jobs/wipe.sh", 8, r"job j: boots nothing"),
    ("[job j]\nbundle = env\nscript = jobs/wipe.sh\nlocal = yes", 11,
     r"job j: local: unknown key"),
    ("menu = rescue", 28, r"host 52:54:00:12:34:56: menu: and job: a "
     r"machine runs a job or boots a menu entry, not both"),
    ("[host 52:54:00:00:00:01]\nassigned = 2026-12-01T16:30:00Z", 9,
     r"host 52:54:00:00:00:01: assigned: set without job"),
    ("[host 52:54:00:00:00:01]\nname = pc01", 28, r"host 52:54:00:12:34:56: "
     r"name: 'pc01' is already the name of host 52:54:00:00:00:01"),
    ("[host 52:54:00:00:00:01]\nfallback = gone", 9, r"fallback: no entry "
     r"named 'gone'"),
    ("[host 52:54:00:00:00:01]\nname = two words", 9, r"'two words' is not "
     r"a name"),
]


@pytest.mark.parametrize("extra,line,message", ERRORS)
def test_errors_name_file_line_and_field(path, extra, line, message):
    lines = SITE.splitlines()
    first = extra.splitlines()[0]
    if extra.startswith("["):
        lines[7:7] = extra.splitlines() + [""]      # a new section at 8
    elif first.split(" =")[0] in ("assigned", "menu"):
        lines[27:27] = extra.splitlines()
        lines = [x for x in lines if x != "assigned = 2026-12-01T16:30:00Z   "
                 "# lease" or "assigned" not in extra]
    elif line == 11:
        lines[10:11] = extra.splitlines()
    elif line == 5:
        lines[4:5] = extra.splitlines()
    else:
        lines[6:6] = extra.splitlines()
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(SiteError) as caught:
        load(path)
    text = str(caught.value)
    assert text.startswith(f"{path}:{line}: "), text
    import re
    assert re.search(message, text), text
    assert "\n" not in text


FILES = [
    ("/etc/passwd", r"/etc/passwd: an absolute path; give it relative to "
     r"the boot root"),
    ("../secret", r"'\.\.' in the path \(traversal\) \(files must be inside"),
    ("env/../../secret", r"'\.\.' in the path \(traversal\)"),
    ("out/vmlinuz", r"out/vmlinuz: leads out of the boot root"),
    ("k", r"k: is a directory"),
    ("k/missing", r"k/missing: no such file in the boot root"),
    ("", r"empty"),
]


@pytest.mark.parametrize("value,message", FILES)
def test_files_must_be_inside_the_root(path, value, message):
    (path.parent / "secret").write_text("outside")
    os.symlink(path.parent, path.parent / "boot" / "out")
    text = SITE + f"\n[menu e]\nkernel = {value}\ninitrd = k/initrd.img\n"
    path.write_text(text)
    with pytest.raises(SiteError, match=f"^{path}:31: menu e: kernel: "
                       f"{message}"):
        load(path)


def test_a_bundle_holds_a_kernel_and_an_initrd(path):
    os.unlink(path.parent / "boot" / "env" / "initrd.img")
    with pytest.raises(SiteError, match=r":15: menu rescue: bundle: "
                       r"env/initrd.img: no such file in the boot root .* "
                       r"\(a bundle is a `bootdisk pxe` directory\)"):
        load(path)


def test_the_root_must_be_there(tmp_path):
    path = make_site(tmp_path, "[site]\nroot = nowhere\n")
    with pytest.raises(SiteError, match=r":2: site: root: .*/nowhere: no "
                       r"such directory"):
        load(path)
    path.write_text("# no root key\n")
    os.rename(tmp_path / "boot", tmp_path / "elsewhere")
    with pytest.raises(SiteError, match=r"pxeconf.site: site: root: "
                       r".*/boot: no such directory .*the default is 'boot'"):
        load(path)


def test_key_before_any_section(tmp_path):
    path = make_site(tmp_path, "# top\ntimeout = 5\n")
    with pytest.raises(SiteError, match=r":2: timeout: a key before any "
                       r"\[section\] \(put it under \[site\]\)"):
        load(path)


def test_crlf_and_bom_are_read(tmp_path):
    path = make_site(tmp_path)
    path.write_bytes(b"\xef\xbb\xbf" + SITE.replace("\n", "\r\n").encode())
    s = load(path)
    assert s.entries["rescue"].cmdline == "rd.on_success=shell"
    assert s.hosts["52:54:00:12:34:56"].line == 24


def test_hostile_files(tmp_path):
    path = make_site(tmp_path)
    path.write_bytes(SITE.encode()[:40] + b"\0\x01\x02binary")
    with pytest.raises(SiteError, match=r":3: a NUL byte: a binary file, "
                       r"not a site file"):
        load(path)
    path.write_bytes(b"[site]\n\n\ntimeout = \xff\n")
    with pytest.raises(SiteError, match=r":4: not UTF-8 text \(byte 0xff\)"):
        load(path)
    path.write_bytes(b"[site]\ntimeout = 5\x1b[2J\n")
    with pytest.raises(SiteError, match=r":2: a control character \(\\x1b\)"):
        load(path)
    path.write_text("[site]\n# " + "x" * 5000 + "\n")
    with pytest.raises(SiteError, match=r":2: a line of 5002 characters"):
        load(path)
    with open(path, "wb") as f:
        f.write(b"# big\n" * (400 * 1024))
    with pytest.raises(SiteError, match=r"pxeconf.site: 2457600 bytes: too "
                       r"large for a site file \(at most 1024 KiB\)"):
        load(path)


def test_not_a_regular_file(tmp_path):
    fifo = tmp_path / "fifo.site"
    os.mkfifo(fifo)
    with pytest.raises(SiteError, match=r"fifo.site: not a regular file"):
        load(fifo)      # refused, never blocking on the FIFO
    with pytest.raises(SiteError, match=r"is a directory, not a site file"):
        load(tmp_path)
    with pytest.raises(SiteError, match=r"no such site file; run `pxeconf "
                       r"init DIR`"):
        load(tmp_path / "missing.site")
    with pytest.raises(SiteError, match=r"not a regular file"):
        load("/dev/zero")


@pytest.mark.parametrize("root", [".", "..", "/", "boot/.."])
def test_a_root_that_would_serve_the_state_is_refused(tmp_path, root):
    """A root holding the site file's own directory would serve the site
    file and DIR/state (the journal, the console token) over TFTP and
    HTTP."""
    path = make_site(tmp_path, f"[site]\nroot = {root}\n")
    with pytest.raises(SiteError, match=r":2: site: root: .*holds the site "
                       r"file's own directory.*console token"):
        load(path)
    (tmp_path / "boot" / "sub").mkdir()
    path.write_text("[site]\nroot = boot/sub\n")
    assert load(path).settings.root == str(tmp_path / "boot" / "sub")


@pytest.mark.parametrize("root,system", [
    ("/etc", "/etc"), ("/usr/share", "/usr"), ("/var", "/var"),
    ("/home", "/home"), ("/lib", "/(usr|lib)"),
    ("/proc/self", "/proc"), ("/dev/shm", "/dev"), ("/sys/kernel", "/sys")])
def test_a_system_directory_is_no_boot_root(tmp_path, root, system):
    """A root of /etc once had serve publish /etc/shadow over HTTP and
    pxeconf write boot.ipxe, grub/ and pxelinux.cfg/ into /etc."""
    path = make_site(tmp_path, f"[site]\nroot = {root}\n")
    with pytest.raises(SiteError, match=rf"^{path}:2: site: root: .*"
                       rf"{system} is a system directory") as exc:
        load(path)
    assert "\n" not in str(exc.value)


def test_a_system_directory_behind_a_link_is_no_boot_root(tmp_path):
    (tmp_path / "etc").symlink_to("/etc")
    path = make_site(tmp_path, "[site]\nroot = etc\n")
    with pytest.raises(SiteError, match=r":2: site: root: .*/etc is a system"):
        load(path)


def test_a_directory_of_its_own_under_tmp_or_var_is_a_root(tmp_path):
    # tmp_path is under /tmp; /var/lib/tftpboot and /srv/tftp are allowed
    # by the same rule (only /var and /tmp themselves are refused).
    (tmp_path / "boot").mkdir(exist_ok=True)
    path = make_site(tmp_path, f"[site]\nroot = {tmp_path}/boot\n")
    assert load(path).settings.root == f"{tmp_path}/boot"
    assert site._system_dir("/var/lib/tftpboot") is None
    assert site._system_dir("/srv/tftp") is None
    assert site._system_dir("/tmp") == "/tmp"   # also holds the site here
    assert site._system_dir("/libexec/x") == "/libexec"
