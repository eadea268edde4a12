"""imgx inside LVM2 volumes: `IMAGE:N/lvname/path` is partition N (a PV),
then the logical volume, then the path in its filesystem.  ls, cat and
get on an image of a GPT disk whose PV holds two ext4 LVs (one of them in
two segments), checked against the files written and their sha256."""

import hashlib
import os
import subprocess
import sys

import pytest

import demodisk
from tests import lvmbuild
from tests.fsmaps import ROOT, partitioned_disk, rdeploy, run

pytestmark = pytest.mark.needs(*lvmbuild.LVM_TOOLS, "sfdisk", root=True)


def imgx(*args, check=True):
    done = subprocess.run([sys.executable, "-m", "imgx", *map(str, args)],
                          cwd=ROOT, capture_output=True,
                          stdin=subprocess.DEVNULL)
    if check:
        assert done.returncode == 0, done.stderr.decode()
    return done


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lvm-imgx")
    pv = lvmbuild.make_pv(tmp, 40, [("root", 10, "ext4"),
                                    ("split", 4, None), ("gap", 2, None)])
    # "split" in two segments around "gap", its ext4 made from a tree
    with lvmbuild.attached(pv.image) as (lvm_run, dev):
        lvm_run("lvextend", "-q", "-L", "+5m", "vgtest/split")
    places = lvmbuild.places(pv.image)["split"]
    assert len(places) == 2
    tree = tmp / "tree"
    digests = demodisk.make_tree(tree, 30, 4, max_size=40 * 1024)
    fs = tmp / "split.img"
    with open(fs, "wb") as f:
        f.truncate(sum(n for _, n in places))
    run("mkfs.ext4", "-q", "-F", "-d", tree, fs)
    with open(fs, "rb") as src, open(pv.image, "r+b") as dst:
        at = 0
        for offset, n in places:
            os.pwrite(dst.fileno(), os.pread(src.fileno(), n, at), offset)
            at += n
    disk = tmp / "disk.img"
    partitioned_disk(disk, [(pv.image, "LVM2_member")])
    out = tmp / "disk.rdi"
    rdeploy("capture", disk, out, "--progress=none")
    return out, pv.lvs["root"].digests, digests


def test_ls_lists_the_volumes_then_their_files(image):
    path, root, split = image
    names = imgx("ls", f"{path}:1").stdout.decode().split()
    assert names == ["gap", "root/", "split/"]
    listed = imgx("ls", f"{path}:1/root/tree").stdout.decode().split("\n")
    tops = {rel.split("/", 2)[1] for rel in root}
    assert {n.rstrip("/") for n in listed if n} == tops
    assert imgx("ls", f"{path}:/split").returncode == 0


def test_cat_reads_files_in_each_lv(image):
    path, root, split = image
    for lv, digests, prefix in (("root", root, ""), ("split", split, "")):
        for rel, digest in list(digests.items())[:6]:
            data = imgx("cat", f"{path}:1/{lv}/{prefix}{rel}").stdout
            assert hashlib.sha256(data).hexdigest() == digest, (lv, rel)


def test_get_copies_a_whole_lv_tree(image, tmp_path):
    path, root, split = image
    imgx("get", "-R", f"{path}:1/split", tmp_path / "out")
    got = {}
    for top, _, files in os.walk(tmp_path / "out"):
        for name in files:
            full = os.path.join(top, name)
            rel = os.path.relpath(full, tmp_path / "out")
            if not rel.startswith("lost+found"):
                got[rel] = demodisk.sha256_file(full)
    assert got == split
    imgx("get", f"{path}:1/root/tree/{next(iter(root))[5:]}",
         tmp_path / "one")
    assert demodisk.sha256_file(tmp_path / "one") == next(iter(root.values()))


def test_a_volume_without_a_filesystem_is_not_a_directory(image):
    path, _, _ = image
    done = imgx("ls", f"{path}:1/gap/x", check=False)
    assert done.returncode != 0
    assert b"not a directory" in done.stderr


def test_an_absolute_symlink_stays_in_its_lv(tmp_path):
    # two LVs, each an ext4 with /etc/hosts; LV a's /lnk -> /etc/hosts
    # must reach a's file, not the PV's directory of LVs (nor b's)
    from diskimage.fs.inpath import resolve_in_root
    from diskimage.fs.lvm.browse import Volumes
    pv = lvmbuild.make_pv(tmp_path, 24, [("a", 6, None), ("b", 6, None)])
    for name, text in (("a", b"in a\n"), ("b", b"in b\n")):
        tree = tmp_path / f"tree-{name}"
        (tree / "etc").mkdir(parents=True)
        (tree / "etc" / "hosts").write_bytes(text)
        os.symlink("/etc/hosts", tree / "lnk")
        os.symlink("etc/hosts", tree / "rel")
        fs = tmp_path / f"{name}.img"
        (offset, size), = pv.lvs[name].places
        with open(fs, "wb") as f:
            f.truncate(size)
        run("mkfs.ext4", "-q", "-F", "-d", tree, fs)
        with open(fs, "rb") as src, open(pv.image, "r+b") as dst:
            os.pwrite(dst.fileno(), src.read(), offset)
    with open(pv.image, "rb") as fh:
        volumes = Volumes(fh)

        def child(node, name):
            return next((c for c in volumes.children(node)
                         if c.name == name), None)

        def read(path):
            node, canonical = resolve_in_root(
                volumes.root, path, child, volumes.link,
                lambda n: n.kind == "dir", True, "pv:")
            return volumes.open(node).read(), canonical
        for name in ("a", "b"):
            assert read(f"{name}/lnk") == (f"in {name}\n".encode(),
                                           f"/{name}/etc/hosts")
            assert read(f"{name}/rel")[0] == f"in {name}\n".encode()
        lnk = child(child(volumes.root, "a"), "lnk")
        assert lnk.target == "/etc/hosts"       # shown and extracted as is
