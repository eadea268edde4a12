"""A site for the jobs and httpd tests.

Until diskimage/netboot/site.py lands on this branch, the Site model of
/work/tasks/pxe-interfaces.md is built here as plain objects with the same
attribute names; `make_site` is the one place to switch to site.load.
"""

from dataclasses import dataclass, field


@dataclass
class Entry:
    name: str
    label: str = ""
    kernel: str = None
    initrd: str = None
    cmdline: str = ""
    bundle: str = None
    local: bool = False
    job: str = None
    line: int = 0


@dataclass
class Job:
    name: str
    label: str = ""
    script: str = "jobs/restore.sh"
    kernel: str = None
    initrd: str = None
    bundle: str = "env"
    cmdline: str = ""
    retries: int = None
    line: int = 0


@dataclass
class Host:
    mac: str
    name: str = ""
    job: str = None
    once: bool = True
    assigned: str = None
    menu: str = None
    fallback: str = None
    line: int = 0


@dataclass
class Settings:
    root: str = "/nonexistent"
    timeout: int = 5
    default: str = None
    retries: int = 2
    fallback: str = "local"
    address: str = None
    http_port: int = 80
    entries: tuple = None


@dataclass
class Site:
    path: str = "pxeconf.site"
    settings: Settings = field(default_factory=Settings)
    entries: dict = field(default_factory=dict)
    jobs: dict = field(default_factory=dict)
    hosts: dict = field(default_factory=dict)
    servers: dict = field(default_factory=dict)


MAC1 = "52:54:00:12:34:56"
MAC2 = "52:54:00:ab:cd:ef"


def make_site(root="/nonexistent", hosts=(), retries=2):
    site = Site(settings=Settings(root=str(root), retries=retries))
    site.entries = {"local": Entry("local", "Local disk", local=True),
                    "rescue": Entry("rescue", "Rescue", bundle="env")}
    site.jobs = {"restore": Job("restore", "Restore"),
                 "wipe": Job("wipe", "Wipe", retries=0)}
    for host in hosts:
        site.hosts[host.mac] = host
    return site
