"""pxeconf init, build and dnsmasq as commands: output, files and exit
codes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from diskimage.netboot import macaddr
from tests.netboot.loaders_helpers import MACS, make_site

TREE = Path(__file__).resolve().parents[2]


def pxeconf(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=os.fspath(TREE))
    return subprocess.run([sys.executable, "-m", "pxeconf", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd or TREE,
                          env=env)


def one_line_error(proc, code, words):
    assert proc.returncode == code, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], proc.stderr


def test_init_is_silent_then_refuses_the_same_directory(tmp_path):
    site = tmp_path / "site"
    proc = pxeconf("init", site)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    assert (site / "boot" / "pxelinux.0").is_file()
    one_line_error(pxeconf("init", site), 3, "not empty")
    proc = pxeconf("init", site, "--force", "--json")
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)["loaders"]
    assert record["shimx64.efi"]["package"] == "shim-signed"


def test_build_writes_every_loaders_files(tmp_path):
    site = make_site(tmp_path / "site")
    proc = pxeconf("build", "--address=10.0.0.2", "--json", f"--site={site}")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    root = Path(out["root"])
    for mac in MACS.values():
        if mac == MACS["none"]:
            continue
        for name in (macaddr.pxelinux_name(mac), macaddr.ipxe_name(mac),
                     *macaddr.grub_names(mac)):
            assert name in out["written"]
            assert (root / name).is_file()
    job = (root / macaddr.ipxe_name(MACS["job"])).read_text()
    assert "rd.job=http://10.0.0.2:80/jobs/restore.sh" in job
    assert (tmp_path / "site" / "state" / "journal.jsonl").is_file()
    assert out["removed"] == []


def test_build_from_the_site_directory_with_the_default_site_file(tmp_path):
    make_site(tmp_path / "site", settings={"address": "10.0.0.3"})
    proc = pxeconf("build", cwd=tmp_path / "site")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    grub = (tmp_path / "site" / "boot" / "grub" / "grub.cfg").read_text()
    assert "(tftp,10.0.0.3)" in grub


def test_build_without_an_address_says_how_to_give_one(tmp_path):
    site = make_site(tmp_path / "site")
    one_line_error(pxeconf("build", f"--site={site}"), 3, "--address")


def test_build_with_a_missing_site_file(tmp_path):
    proc = pxeconf("build", "--address=10.0.0.2",
                   f"--site={tmp_path / 'nothing.site'}")
    one_line_error(proc, 3, "nothing.site")


@pytest.mark.needs("dnsmasq")
def test_dnsmasq_prints_a_checked_proxy_config(tmp_path):
    site = make_site(tmp_path / "site", settings={"http-port": "8080"})
    proc = pxeconf("dnsmasq", "--proxy=10.0.0.0/24", "--address=10.0.0.2",
                   "--interface=br0", f"--site={site}")
    assert proc.returncode == 0, proc.stderr
    assert "dhcp-range=10.0.0.0,proxy,255.255.255.0" in proc.stdout
    assert "http://10.0.0.2:8080/boot.ipxe" in proc.stdout
    out = tmp_path / "dnsmasq.conf"
    proc = pxeconf("dnsmasq", "--dhcp=10.0.0.100,10.0.0.200",
                   "--address=10.0.0.2", "-o", out, f"--site={site}")
    assert (proc.returncode, proc.stdout) == (0, ""), proc.stderr
    check = subprocess.run(["dnsmasq", "--test", f"--conf-file={out}"],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert "dhcp-range=10.0.0.100,10.0.0.200,1h" in out.read_text()


@pytest.mark.parametrize("args, code, words", [
    (["--dhcp=10.0.0.100"], 2, "FIRST,LAST"),
    (["--proxy=10.0.0.0/33"], 3, "not an IPv4 network"),
    (["--proxy=10.0.0.0/24", "--interface=a b"], 3, "not an interface"),
    (["--dhcp=10.0.0.200,10.0.0.100"], 3, "the first address is after the "
     "last"),
    (["--dhcp=10.0.1.100,10.0.1.200"], 3, "--address=10.0.0.2: not in the "
     "network 10.0.1.0/24 of --dhcp=10.0.1.100,10.0.1.200"),
    (["--dhcp=10.0.0.1,10.0.0.50"], 3, "--address=10.0.0.2: inside "
     "--dhcp=10.0.0.1,10.0.0.50"),
])
def test_dnsmasq_bad_values(tmp_path, args, code, words):
    site = make_site(tmp_path / "site")
    proc = pxeconf("dnsmasq", *args, "--address=10.0.0.2", f"--site={site}")
    one_line_error(proc, code, words)


@pytest.mark.parametrize("address, words", [
    ("0.0.0.0", "'0.0.0.0' is the unspecified address"),
    ("224.0.0.1", "is a multicast address"),
    ("255.255.255.255", "is the broadcast address")])
def test_no_server_at_an_address_of_no_host(tmp_path, address, words):
    site = make_site(tmp_path / "site")
    for command in (["dnsmasq", "--proxy=10.0.0.0/24"], ["build"]):
        proc = pxeconf(*command, f"--address={address}", f"--site={site}")
        one_line_error(proc, 3, words)


def test_a_wide_dhcp_range_is_one_network(tmp_path):
    site = make_site(tmp_path / "site")
    proc = pxeconf("dnsmasq", "--dhcp=10.0.0.100,10.0.3.200",
                   "--address=10.0.4.1", f"--site={site}")
    one_line_error(proc, 3, "not in the network 10.0.0.0/22")
    proc = pxeconf("dnsmasq", "--dhcp=10.0.0.100,10.0.3.200",
                   "--address=10.0.3.250", f"--site={site}")
    assert proc.returncode == 0, proc.stderr


@pytest.mark.needs("dnsmasq")
def test_dnsmasq_output_replaces_only_its_own_file(tmp_path):
    """-o over the site file replaced it silently once."""
    site = make_site(tmp_path / "site")
    before = open(site, "rb").read()
    base = ["dnsmasq", "--proxy=10.0.0.0/24", "--address=10.0.0.2",
            f"--site={site}"]
    for target, words in (
            (site, "is the site file"),
            (tmp_path / "site" / "state" / "x.conf", "inside "),
            (tmp_path / "site" / "state" / "journal.jsonl", "inside ")):
        for force in ([], ["--force"]):
            one_line_error(pxeconf(*base, "-o", target, *force), 3, words)
    assert open(site, "rb").read() == before
    other = tmp_path / "notes.conf"
    other.write_text("# my own dnsmasq notes\n")
    one_line_error(pxeconf(*base, "-o", other), 3, "exists and was not "
                   "written by pxeconf dnsmasq; not replaced without --force")
    assert other.read_text() == "# my own dnsmasq notes\n"
    proc = pxeconf(*base, "-o", other, "--force")
    assert proc.returncode == 0, proc.stderr
    assert "proxyDHCP" in other.read_text()
    proc = pxeconf(*base[:-2], "--address=10.0.0.3", base[-1], "-o", other)
    assert proc.returncode == 0, proc.stderr       # ours: replaced
    assert "boot server 10.0.0.3" in other.read_text()
    missing = tmp_path / "missing" / "dir"
    proc = pxeconf(*base, "-o", missing / "f")
    one_line_error(proc, 3, f"{missing}: no such directory")
    assert "partial" not in proc.stderr


def test_build_beside_a_running_serve_is_busy(tmp_path):
    """serve holds the journal (and rewrites the configs itself)."""
    from diskimage.netboot import jobs, site as sitemodel
    path = make_site(tmp_path / "site")
    machines = jobs.Machines(sitemodel.load(path),
                             tmp_path / "site" / "state" / "journal.jsonl")
    try:
        proc = pxeconf("build", "--address=10.0.0.2", f"--site={path}")
    finally:
        machines.close()
    one_line_error(proc, 9, "journal.jsonl: pxeconf serve is running on "
                   "this site and writes the configs itself")
