"""Boot media made with `bootdisk --trust` restore only signed images, in a
real QEMU boot (TCG): the job tries an unsigned image, one signed by a key
the medium does not carry, and a signed one from a pipe, each refused with
exit 11 and the first target's sha256 unchanged (checked from the host);
then the signed image restores onto a second target, checked with e2fsck
and its sha256 against the source disk."""

import hashlib
import subprocess

import pytest

from bootdisk import qemu
from bootdisk.cli import main as bootdisk_main

from tests import needs
from tests.bootdisk_helpers import (CMDLINE, console_tail, host_kernel,
                                    need_qemu, toolkit, virtio_disk)
from tests.rdeploy_helpers import rdeploy
from tests.smalldisk import MiB, build_disk, sha256

BOOT_TIMEOUT = 400
pytestmark = [pytest.mark.boot, pytest.mark.needs("sfdisk", "mkfs.ext4",
                                                  "e2fsck")]

JOB = """\
set -u
mkdir -p /mnt/images
mount -t ext4 -o ro /dev/vdb /mnt/images || exit 20
cd /mnt/images
rdeploy restore --yes --quiet unsigned.rdi /dev/vda
echo "trust-test: unsigned exit $?"
rdeploy restore --yes --quiet other.rdi /dev/vda
echo "trust-test: other-key exit $?"
cat signed.rdi | rdeploy restore --yes --quiet - /dev/vda
echo "trust-test: pipe exit $?"
rdeploy verify signed.rdi --quiet
echo "trust-test: verify exit $?"
rdeploy verify signed.rdi | grep '^signature: good'
rdeploy restore --yes --quiet signed.rdi /dev/vdc
echo "trust-test: signed exit $?"
sync
"""


def _ok(result):
    assert result.returncode == 0, result.stderr.decode()
    return result


def test_trusted_media_restore_only_signed_images(tmp_path):
    need_qemu()
    needs.require("sfdisk", "mkfs.ext4", "e2fsck")
    toolkit()
    source = build_disk(tmp_path / "source.img")
    images = tmp_path / "images"
    images.mkdir()
    for name in ("release.key", "other.key"):
        _ok(rdeploy("keygen", tmp_path / name, f"--comment={name}", "-q"))
    _ok(rdeploy("capture", source, images / "unsigned.rdi", "-q"))
    for name, key in (("signed.rdi", "release.key"), ("other.rdi",
                                                      "other.key")):
        subprocess.run(["cp", images / "unsigned.rdi", images / name],
                       check=True)
        _ok(rdeploy("sign", images / name, f"--key={tmp_path / key}", "-q"))
    image_disk = tmp_path / "images.ext4"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", images, image_disk, "48M"],
                   check=True, capture_output=True)

    job = tmp_path / "job.sh"
    job.write_text(JOB)
    initrd = tmp_path / "trust.initrd"
    assert bootdisk_main(["initrd", "-o", str(initrd), f"--job={job}",
                          f"--trust={tmp_path / 'release.key.pub'}",
                          "--on-failure=poweroff", "-q"]) == 0
    info = subprocess.run([toolkit().parent / "bootdisk", "info", initrd],
                          capture_output=True, text=True, check=True).stdout
    assert "trusted keys " in info and "(release.key)" in info, info

    refused, target = tmp_path / "refused.img", tmp_path / "target.img"
    for path in (refused, target):
        with open(path, "wb") as f:
            f.truncate(source.stat().st_size)
    with open(refused, "r+b") as f:     # bytes a write would change
        f.write(b"KEEP ME " * 4096)
    before = sha256(refused)
    args = qemu.base_args() + [
        "-kernel", host_kernel(), "-initrd", initrd, "-append", CMDLINE,
        *virtio_disk(refused), *virtio_disk(image_disk),
        *virtio_disk(target)]
    with qemu.Boot(args) as boot:
        boot.wait(BOOT_TIMEOUT)
    out = boot.output
    assert "bootdisk: job finished: exit 0" in out, console_tail(boot)
    for what in ("unsigned", "other-key", "pipe"):
        assert f"trust-test: {what} exit 11" in out, console_tail(boot, 80)
    assert "not signed" in out and "not trusted here" in out
    assert "not a pipe" in out
    assert "trust-test: verify exit 0" in out
    assert "signature: good (key " in out
    assert "trust-test: signed exit 0" in out, console_tail(boot, 80)
    assert sha256(refused) == before
    assert sha256(target) == sha256(source)
    part = tmp_path / "part1.ext4"
    with open(target, "rb") as f, open(part, "wb") as out_f:
        f.seek(MiB)
        out_f.write(f.read(32 * MiB))
    fsck = subprocess.run(["e2fsck", "-fn", part], capture_output=True,
                          text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    assert hashlib.sha256(part.read_bytes()).hexdigest() == \
        hashlib.sha256(source.read_bytes()[MiB:33 * MiB]).hexdigest()
