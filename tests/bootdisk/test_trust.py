"""bootdisk --trust: the keys are in the initramfs as
/etc/rdeploy/trusted/KEYID.pub (read back by GNU cpio), bootdisk info lists
them, and a file that is not a public key is refused before anything is
built.  The boot itself: test_boot_trust.py."""

import subprocess

from bootdisk import initramfs
from bootdisk.cli import main as bootdisk_main
from bootdisk.info import describe, render
from diskimage.trust import keys as keyfiles

from tests.bootdisk_helpers import host_kernel, toolkit


def test_trusted_keys_go_into_the_initramfs(tmp_path):
    host_kernel()
    toolkit()
    one = keyfiles.write_keypair(tmp_path / "one.key", "lab releases")
    two = keyfiles.write_keypair(tmp_path / "two.key", "")
    out = tmp_path / "t.initrd"
    assert bootdisk_main(["initrd", "-o", str(out), f"--trust={one.path}",
                          f"--trust={two.path}", f"--trust={one.path}",
                          "-q"]) == 0
    cpio_bytes = initramfs.decompress(out.read_bytes())
    unpacked = tmp_path / "root"
    unpacked.mkdir()
    subprocess.run(["cpio", "-idm", "--quiet"], input=cpio_bytes,
                   cwd=unpacked, check=True)
    trusted = unpacked / "etc/rdeploy/trusted"
    assert sorted(p.name for p in trusted.iterdir()) == \
        sorted(f"{k.key_id}.pub" for k in (one, two))
    assert keyfiles.load_public(trusted / f"{one.key_id}.pub").raw == one.raw
    report = describe(out)
    assert report["trusted_keys"] == sorted(
        [{"key_id": one.key_id, "comment": "lab releases"},
         {"key_id": two.key_id, "comment": ""}], key=lambda k: k["key_id"])
    assert f"{one.key_id} (lab releases)" in render(report)
    plain = tmp_path / "plain.initrd"
    assert bootdisk_main(["initrd", "-o", str(plain), "-q"]) == 0
    assert describe(plain)["trusted_keys"] == []
    assert "trusted keys none" in render(describe(plain))


def test_a_secret_key_is_refused_as_trust(tmp_path, capsys):
    keyfiles.write_keypair(tmp_path / "k", "")
    out = tmp_path / "t.initrd"
    assert bootdisk_main(["initrd", "-o", str(out),
                          f"--trust={tmp_path / 'k'}"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "give its .pub file" in err[0], err
    assert not out.exists()
