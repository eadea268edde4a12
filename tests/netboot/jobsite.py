"""A real site (diskimage.netboot.site) for the jobs and httpd tests: a
site file with two entries and two jobs, and a boot root holding the
files they name, in a directory of the test's."""

from diskimage.netboot import site as sitemodel
from diskimage.netboot.site import Host

__all__ = ["MAC1", "MAC2", "T0", "Host", "make_site"]

MAC1 = "52:54:00:12:34:56"
MAC2 = "52:54:00:ab:cd:ef"
T0 = "2026-12-01T16:00:00Z"

TEXT = """\
[site]
root = boot
retries = {retries}
fallback = local

[menu local]
label = Local disk
local = yes

[menu rescue]
label = Rescue
bundle = env

[job restore]
label = Restore
bundle = env
script = jobs/restore.sh

[job wipe]
label = Wipe
bundle = env
script = jobs/wipe.sh
retries = 0
"""


def _host_text(host):
    lines = [f"\n[host {host.mac}]"]
    if host.name:
        lines.append(f"name = {host.name}")
    if host.job:
        lines.append(f"job = {host.job}")
        lines.append(f"once = {'yes' if host.once else 'no'}")
        if host.assigned:
            lines.append(f"assigned = {host.assigned}")
    if host.menu:
        lines.append(f"menu = {host.menu}")
    if host.fallback:
        lines.append(f"fallback = {host.fallback}")
    return "\n".join(lines) + "\n"


def make_site(directory, hosts=(), retries=2):
    """The Site of a site file in `directory` (written there, with its
    boot root) with these hosts."""
    root = directory / "boot"
    for name in ("env/vmlinuz", "env/initrd.img", "jobs/restore.sh",
                 "jobs/wipe.sh"):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.write_bytes(b"#!/bin/sh\n")
    text = TEXT.format(retries=retries) + "".join(map(_host_text, hosts))
    path = directory / "pxeconf.site"
    path.write_text(text)
    return sitemodel.load(path)
