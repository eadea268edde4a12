"""What the site file's tests share: a site directory with a boot root
holding the files entries and jobs name, and pxeconf run as a program."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: A hand-written site file with comments everywhere (line numbers matter:
#: tests name them).
SITE = """\
# lab site: edited by hand
[site]
root = boot   # served
timeout = 5              # seconds
default = local          # no job: local
retries = 2

# the local disk
[menu local]
label = Boot from the local disk
local = yes

[menu rescue]            # a shell
label = Rescue shell
bundle = env
cmdline = rd.on_success=shell   # stay

[job restore]
label = Restore the lab image
bundle = env
script = jobs/restore.sh

# pc01 is the teacher's machine
[host 52:54:00:12:34:56]
name = pc01
job = restore
once = yes
assigned = 2026-12-01T16:30:00Z   # lease
"""


def make_site(directory, text=SITE):
    """DIR/pxeconf.site with `text`, and DIR/boot with env/vmlinuz,
    env/initrd.img, k/vmlinuz, k/initrd.img and jobs/restore.sh.
    Returns the site file's path."""
    directory = Path(directory)
    boot = directory / "boot"
    for name in ("env/vmlinuz", "env/initrd.img", "k/vmlinuz",
                 "k/initrd.img", "jobs/restore.sh", "jobs/wipe.sh"):
        (boot / name).parent.mkdir(parents=True, exist_ok=True)
        (boot / name).write_text(name)
    path = directory / "pxeconf.site"
    path.write_text(text)
    return path


def env():
    e = dict(os.environ, PYTHONPATH=str(ROOT))
    e.pop("RDEPLOY_DEBUG", None)
    return e


def pxeconf(*args, cwd):
    return subprocess.run([sys.executable, "-m", "pxeconf", *map(str, args)],
                          env=env(), cwd=cwd, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60)


def error_line(result):
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("pxeconf: error: "), lines
    return lines[0][len("pxeconf: error: "):]
