"""configs.build: the files each loader asks for, what they say for each
kind of next boot, and that no label or command line can inject loader
commands.  (The loaders themselves read these files in
test_loaders_boot.py.)"""

import dataclasses
import os

import pytest

from diskimage.errors import InputError
from diskimage.netboot import configs, jobs, macaddr
from tests.netboot.loaders_helpers import MACS, load, make_site

URL = "http://10.0.0.2:8080/"
TFTP = "10.0.0.2"


@pytest.fixture
def site(tmp_path):
    return load(make_site(tmp_path / "site"))


def boots_of(site, tmp_path):
    machines = jobs.Machines(site, tmp_path / "journal.jsonl")
    try:
        return {mac: machines.next_boot(mac) for mac in site.hosts}
    finally:
        machines.close()


def text(files, name):
    return files[name].decode()


def test_every_loader_gets_its_menu_and_each_machine_every_name(site,
                                                                tmp_path):
    boots = boots_of(site, tmp_path)
    files = configs.build(site, boots, URL, TFTP)
    expected = {"pxelinux.cfg/default", "grub/grub.cfg", "boot.ipxe"}
    for mac in site.hosts:
        expected |= {macaddr.pxelinux_name(mac), macaddr.ipxe_name(mac),
                     *macaddr.grub_names(mac)}
    assert set(files) == expected
    for mac in site.hosts:
        dashed, colons = macaddr.grub_names(mac)
        assert files[dashed] == files[colons]


def test_a_job_boot_carries_the_job_server_and_lease(site, tmp_path):
    boots = boots_of(site, tmp_path)
    boot = boots[MACS["job"]]
    assert boot.kind == "job" and boot.lease
    files = configs.build(site, boots, URL, TFTP)
    words = [f"rd.job={URL}jobs/restore.sh", f"rd.pxeconf={URL}",
             f"rd.pxeconf.lease={boot.lease}", "console=ttyS0"]
    mac = MACS["job"]
    for name in (macaddr.pxelinux_name(mac), macaddr.ipxe_name(mac),
                 *macaddr.grub_names(mac)):
        body = text(files, name)
        for word in words:
            assert word in body, (name, word)
    # the menu and a machine without a job never carry a lease
    for name in ("pxelinux.cfg/default", "grub/grub.cfg", "boot.ipxe",
                 macaddr.pxelinux_name(MACS["rescue"])):
        assert "rd.pxeconf.lease" not in text(files, name)


def test_local_boot_per_loader(site, tmp_path):
    files = configs.build(site, boots_of(site, tmp_path), URL, TFTP)
    mac = MACS["local"]
    pxe = text(files, macaddr.pxelinux_name(mac))
    assert "COM32 chain.c32" in pxe and "APPEND hd0" in pxe
    assert "KERNEL" not in pxe
    grub = text(files, macaddr.grub_names(mac)[0])
    assert "linux" not in grub
    # GRUB 2.06's `exit` returns success (OVMF may stop in its menu): the
    # disk's own UEFI loader is chained, found by file; exit only without
    local = grub[grub.index("menuentry"):]
    assert local.splitlines()[1:] == [
        "  if search --no-floppy --file --set=pxeconf_disk "
        "/EFI/BOOT/BOOTX64.EFI; then",
        '    if chainloader "($pxeconf_disk)/EFI/BOOT/BOOTX64.EFI"; then',
        "      boot",
        "    fi",
        "  fi",
        "  exit",
        "}"]
    ipxe = text(files, macaddr.ipxe_name(mac)).splitlines()
    assert "exit" in ipxe and not any(l.startswith("kernel") for l in ipxe)


def test_grub_names_the_boot_server_everywhere(site, tmp_path):
    files = configs.build(site, boots_of(site, tmp_path), URL, TFTP)
    for name, data in files.items():
        if name.startswith("grub/"):
            body = data.decode()
            assert "$net_default_server" not in body
            for line in body.splitlines():
                if line.strip().startswith(("linux ", "initrd ",
                                            "configfile ")):
                    assert f"(tftp,{TFTP})/" in line, line


def test_ipxe_under_uefi_names_its_initrd(site, tmp_path):
    files = configs.build(site, boots_of(site, tmp_path), URL, TFTP)
    body = text(files, macaddr.ipxe_name(MACS["job"]))
    assert "iseq ${platform} efi && set pxeconf-initrd initrd=initrd.img" \
        in body
    assert "initrd --name initrd.img " in body
    assert "${pxeconf-initrd}" in [l for l in body.splitlines()
                                   if l.startswith("kernel ")][0]


def test_a_menu_timeout_of_0_boots_the_default_at_once_in_ipxe(site,
                                                               tmp_path):
    """iPXE's choose reads --timeout 0 as 'wait for ever'."""
    site.settings.timeout = 0
    files = configs.build(site, boots_of(site, tmp_path), URL, TFTP)
    assert "--timeout 1 pxeconf-choice" in text(files, "boot.ipxe")


def test_boot_ipxe_asks_for_the_machine_then_shows_the_menu(site, tmp_path):
    files = configs.build(site, boots_of(site, tmp_path), URL, TFTP)
    lines = text(files, "boot.ipxe").splitlines()
    assert lines[0] == "#!ipxe"
    chain = [l for l in lines if l.startswith("chain ")][0]
    assert f"{URL}ipxe/${{mac:hexhyp}}.ipxe?platform=${{platform}}" in chain
    # a failure status to the firmware, so that it boots its next device
    # (OVMF stops in its menu after a boot option that returned success)
    assert "&& exit 1 ||" in chain
    local = lines[lines.index(":pxeconf-local") + 1]
    assert local == "exit 1"
    assert "choose --default local --timeout 5000 pxeconf-choice" in \
        "\n".join(lines)
    assert [l for l in lines if l.startswith("item ")] == [
        "item local Boot from the local disk", "item rescue Imaging shell"]


def hostile(site, label=None, cmdline=None):
    entry = dataclasses.replace(site.entries["rescue"])
    if label is not None:
        entry.label = label
    if cmdline is not None:
        entry.cmdline = cmdline
    entries = dict(site.entries, rescue=entry)
    return dataclasses.replace(site, entries=entries)


def test_a_label_cannot_inject_loader_commands(site):
    label = "it's\nLOCALBOOT 0\n}\nmenuentry x { && shell || ; #x ${a}"
    files = configs.build(hostile(site, label=label), {}, URL, TFTP)
    pxe = text(files, "pxelinux.cfg/default").splitlines()
    assert not any(l.strip().startswith(("LOCALBOOT", "}", "menuentry x"))
                   for l in pxe)
    grub = text(files, "grub/grub.cfg")
    assert "menuentry 'it'\\''s LOCALBOOT 0 } menuentry x { && shell || ; " \
        "#x ${a}' --id 'rescue' {" in grub
    ipxe = text(files, "boot.ipxe").splitlines()
    item = [l for l in ipxe if l.startswith("item rescue ")][0]
    tokens = item.split()
    assert not {"&&", "||", ";"} & set(tokens)
    assert not any(t.startswith("#") or "${" in t for t in tokens)
    assert len(ipxe) == len(text(configs.build(site, {}, URL, TFTP),
                                 "boot.ipxe").splitlines())


@pytest.mark.parametrize("cmdline", [
    "quiet && shell", "quiet || shell", "a ; b", "a #comment",
    "x=${net0/ip}", 'a="b\nLOCALBOOT 0"', "a\x7fb"])
def test_a_command_line_a_loader_would_act_on_is_refused(site, cmdline):
    with pytest.raises(InputError, match="rescue"):
        configs.build(hostile(site, cmdline=cmdline), {}, URL, TFTP)


def test_a_newline_between_words_is_only_a_space(site):
    files = configs.build(hostile(site, cmdline="a\nLOCALBOOT 0"), {}, URL,
                          TFTP)
    assert "  APPEND a LOCALBOOT 0\n" in text(files, "pxelinux.cfg/default")


def test_a_kernel_command_line_keeps_its_quoted_words(site):
    files = configs.build(hostile(site, cmdline='a "b c" d="e f"'), {}, URL,
                          TFTP)
    assert "APPEND a \"b c\" d=\"e f\"" in text(files, "pxelinux.cfg/default")
    assert "'a' '\"b c\"' 'd=\"e f\"'" in text(files, "grub/grub.cfg")


@pytest.mark.parametrize("url", ["ftp://10.0.0.2/", "http://10.0.0.2",
                                 "http://10.0.0.2/ x/", "http://a'b/"])
def test_a_server_url_loaders_cannot_take_is_refused(site, url):
    with pytest.raises(InputError):
        configs.build(site, {}, url, TFTP)


def test_a_servers_entries_make_its_menu(tmp_path):
    extra = "\n[menu rescue]\nlabel = Shell\nbundle = env\n" \
            "\n[server lab2]\nentries = rescue\ndefault = rescue\ntimeout = 2\n"
    site = load(make_site(tmp_path / "site", extra=extra)).for_server("lab2")
    files = configs.build(site, {}, URL, TFTP)
    pxe = text(files, "pxelinux.cfg/default")
    assert "LABEL rescue" in pxe and "LABEL local" not in pxe
    assert "TIMEOUT 20" in pxe and "DEFAULT rescue" in pxe
    assert "set default='rescue'" in text(files, "grub/grub.cfg")


def test_write_is_whole_files_never_through_a_symlink(site, tmp_path):
    root = site.settings.root
    files = configs.build(site, boots_of(site, tmp_path), URL, TFTP)
    written = configs.write(root, files)
    assert sorted(written) == sorted(files)
    for name, data in files.items():
        assert open(os.path.join(root, name), "rb").read() == data
    assert not [n for n in os.listdir(os.path.join(root, "grub"))
                if n.endswith(".partial")]
    outside = tmp_path / "outside"
    outside.mkdir()
    link = os.path.join(root, "pxelinux.cfg", "default")
    os.unlink(link)
    os.symlink(outside / "victim", link)
    with pytest.raises(InputError, match="symlink"):
        configs.write(root, {"pxelinux.cfg/default": b"x"})
    assert os.listdir(outside) == []
    os.unlink(link)
    ipxe = os.path.join(root, "ipxe")
    os.rename(ipxe, ipxe + ".old")
    os.symlink(outside, ipxe)
    with pytest.raises(InputError, match="ipxe"):
        configs.write(root, {"ipxe/52-54-00-00-00-01.ipxe": b"x"})
    assert os.listdir(outside) == []
    with pytest.raises(InputError):
        configs.write(root, {"../escape": b"x"})


def test_a_folder_on_the_way_says_whether_it_is_a_symlink_or_a_file(
        tmp_path):
    # One check for init's folders and build's (rootwrite.own_directory):
    # the refusal names what is there, and nothing is written beyond it.
    root = tmp_path / "boot"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "ipxe").symlink_to(outside)
    (root / "grub").write_bytes(b"a file")
    with pytest.raises(InputError, match=r"/ipxe: a symlink; configs are "
                       r"never written through it$"):
        configs.write(root, {"ipxe/52-54-00-00-00-01.ipxe": b"x"})
    with pytest.raises(InputError, match=r"/grub: not a directory; configs "
                       r"are never"):
        configs.write(root, {"grub/grub.cfg": b"x"})
    assert os.listdir(outside) == []
    assert (root / "grub").read_bytes() == b"a file"
    configs.write(root, {"pxelinux.cfg/a/default": b"x"})
    assert (root / "pxelinux.cfg" / "a").is_dir()
    assert not (root / "pxelinux.cfg" / "a").is_symlink()


def test_prune_removes_the_files_of_machines_gone_from_the_site(site,
                                                               tmp_path):
    root = site.settings.root
    configs.write(root, configs.build(site, boots_of(site, tmp_path), URL,
                                      TFTP))
    (open(os.path.join(root, "pxelinux.cfg", "notes"), "w")).close()
    gone = MACS["job"]
    smaller = dataclasses.replace(site, hosts={
        m: h for m, h in site.hosts.items() if m != gone})
    files = configs.build(smaller, boots_of(smaller, tmp_path / "2"), URL,
                          TFTP)
    configs.write(root, files)
    removed = configs.prune(root, set(files))
    assert sorted(removed) == sorted(
        [macaddr.pxelinux_name(gone), macaddr.ipxe_name(gone),
         *macaddr.grub_names(gone)])
    for name in files:
        assert os.path.exists(os.path.join(root, name))
    assert os.path.exists(os.path.join(root, "pxelinux.cfg", "notes"))


HOSTILE_LABELS = [
    'say "hi" $x ${y} `id` ; reboot } { # \\ end\\',
    "it's '' \\' }\nmenuentry evil { reboot }",
    "}", "{", "$(reboot)", "a\\", "'", '"', "#", "`"]
HOSTILE_CMDLINES = [
    'a"b c', 'x=$y', "x=`id`", "a}b {c}", "\\", "a\\ b", "p='q'",
    'k="v w" \\"', "x=a#b"]


def _grub_files_check(files, tmp_path):
    """grub-script-check (GRUB's own parser) on every GRUB file built."""
    import subprocess
    names = [n for n in files if n.startswith("grub/")]
    assert names
    for name in names:
        path = tmp_path / name.replace("/", "_")
        path.write_bytes(files[name])
        out = subprocess.run(["grub-script-check", str(path)],
                             capture_output=True, text=True)
        assert out.returncode == 0, (name, out.stdout, out.stderr,
                                     files[name].decode())


@pytest.mark.needs("grub-script-check")
@pytest.mark.parametrize("label", HOSTILE_LABELS)
def test_every_grub_file_parses_with_a_hostile_label(site, tmp_path, label):
    """Each generated GRUB file (the menu and every machine's, under both
    names) passes GRUB's own checker, and keeps one menuentry per item:
    the label stayed one word."""
    built = hostile(site, label=label)
    files = configs.build(built, boots_of(built, tmp_path), URL, TFTP)
    _grub_files_check(files, tmp_path)
    menu = text(files, "grub/grub.cfg").splitlines()
    assert sum(l.startswith("menuentry ") for l in menu) == \
        len(built.menu())
    pxe = text(files, "pxelinux.cfg/default").splitlines()
    assert sum(l.startswith("LABEL ") for l in pxe) == len(built.menu())


@pytest.mark.needs("grub-script-check")
@pytest.mark.parametrize("cmdline", HOSTILE_CMDLINES)
def test_every_grub_file_parses_with_a_hostile_cmdline(site, tmp_path,
                                                       cmdline):
    """A command line the loaders take as words: every GRUB file parses,
    and each word is one single-quoted GRUB word; iPXE's kernel line holds
    no token it acts on."""
    built = hostile(site, cmdline=cmdline)
    files = configs.build(built, boots_of(built, tmp_path), URL, TFTP)
    _grub_files_check(files, tmp_path)
    words = configs.split_words(cmdline)
    grub = text(files, "grub/grub.cfg")
    assert " ".join(configs._grub_quote(w) for w in words) in grub
    ipxe = [l for l in text(files, "boot.ipxe").splitlines()
            if l.startswith("kernel ")]
    for line in ipxe:
        tokens = line.split()
        assert not {"&&", "||", ";"} & set(tokens)
        assert not any(t.startswith("#") for t in tokens)
        assert line.count("${") == 1            # ${pxeconf-initrd} only
