"""pxeconf's site file over hostile text: read and decoded as `pxeconf`
reads it (sitefile.read: a small regular text file), parsed into the
model (site.load: sections, keys, values, names, addresses, times, the
boot root and the files it names), then what `pxeconf build` makes of it
(every loader's configs for every machine, through the journal of a real
jobs.Machines), and an edit of it as `pxeconf host add` makes one
(siteedit.add_host, which rewrites the file keeping every other line),
read back.  The site lives in a temp directory with a boot root holding
the files the seeds name; its state directory is removed before each
input, so no input depends on the ones before it."""

import os
import shutil

from diskimage.errors import DiskImageError
from diskimage.netboot import site as sitemodel
from diskimage.netboot import siteedit
from pxeconf.buildcmds import build_files
from tests.fuzz.targets_index import scratch, set_up

MAX_LEN = 16384
_DIR = None


def _dir():
    global _DIR
    if _DIR is None:
        top = scratch("site", memory=False)
        for name, data in (("env/vmlinuz", b"kernel " * 100),
                           ("env/initrd.img", b"initrd " * 100),
                           ("jobs/restore.sh", b"echo restoring\n"),
                           ("jobs/wipe.sh", b"echo wiping\n"),
                           ("rescue/vmlinuz", b"k"),
                           ("rescue/initrd.img", b"i")):
            path = os.path.join(top, "boot", name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
        _DIR = top
        set_up(_check)
    return _DIR


def _check():
    """A good site loads and builds here, or nothing would be tested."""
    path = os.path.join(_DIR, "pxeconf.site")
    with open(path, "w") as f:
        f.write("[menu rescue]\nbundle = env\n[job restore]\nbundle = env\n"
                "script = jobs/restore.sh\n")
    build_files(sitemodel.load(path), "127.0.0.1")


def one_input(data):
    top = _dir()
    shutil.rmtree(os.path.join(top, "state"), ignore_errors=True)
    path = os.path.join(top, "pxeconf.site")
    with open(path, "wb") as f:
        f.write(data)
    site = sitemodel.load(path)
    try:
        build_files(site, "127.0.0.1")
    except DiskImageError:
        pass
    host = sitemodel.Host("52:54:00:fe:ed:01", name="fuzz01")
    siteedit.add_host(path, host)
    sitemodel.load(path)
