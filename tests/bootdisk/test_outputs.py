"""bootdisk's outputs are written as NAME.partial created exclusively
(diskimage.host.partial): a planted symlink there is never followed, another
writer's file is never truncated (exit 9, naming it), and one left by a
run that died is replaced with a warning (issue 11 round 2, outputs
item 2).  Real processes: `flock` (util-linux) holds the lock a live
bootdisk would hold on its OUT.partial."""

import fcntl
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.bootdisk_helpers import ROOT, host_kernel


def bootdisk(*args):
    return subprocess.run([sys.executable, "-m", "bootdisk",
                           *map(os.fspath, args)], capture_output=True,
                          text=True, cwd=ROOT)


def _one_line(result, code):
    assert result.returncode == code, (result.returncode, result.stderr)
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("bootdisk: error: "), result.stderr
    return result.stderr


def _victim(tmp_path):
    victim = tmp_path / "someone-elses.img"
    victim.write_bytes(b"precious" * 512)
    return victim


KINDS = {"initrd": "env.initrd", "iso": "boot.iso", "usb": "boot.img"}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_planted_symlink_at_out_partial_is_never_followed(tmp_path, kind):
    host_kernel()
    victim = _victim(tmp_path)
    out = tmp_path / KINDS[kind]
    partial = f"{out}.partial"
    os.symlink(victim, partial)
    err = _one_line(bootdisk(kind, "-o", out, "--toolkit=/bin/true"), 3)
    assert f"{partial}: exists and is not a partial file (a symlink)" in err
    assert victim.read_bytes() == b"precious" * 512
    assert os.readlink(partial) == str(victim)
    assert not os.path.lexists(out)


def _held(path):
    """`flock` holding an exclusive lock on `path`, as a live writer does;
    returned once the lock is taken."""
    proc = subprocess.Popen(["flock", "-x", os.fspath(path), "sleep", "60"],
                            start_new_session=True)
    deadline = time.monotonic() + 10
    with open(path, "rb") as f:
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return proc
            fcntl.flock(f, fcntl.LOCK_UN)
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.01)


def test_another_writers_partial_is_busy_and_kept(tmp_path):
    host_kernel()
    out = tmp_path / "env.initrd"
    partial = tmp_path / "env.initrd.partial"
    partial.write_bytes(b"half of another run's initrd")
    holder = _held(partial)
    try:
        err = _one_line(bootdisk("initrd", "-o", out, "--toolkit=/bin/true"),
                        9)
    finally:
        os.killpg(holder.pid, signal.SIGKILL)    # flock and its sleep
        holder.wait()
    assert f"{partial}: another process is writing this file now" in err
    assert partial.read_bytes() == b"half of another run's initrd"
    assert not out.exists()


def test_a_dead_runs_partial_is_replaced_with_a_warning(tmp_path):
    host_kernel()
    out = tmp_path / "env.initrd"
    partial = tmp_path / "env.initrd.partial"
    partial.write_bytes(b"left by a run that was killed")
    result = bootdisk("initrd", "-o", out, "--toolkit=/bin/true")
    assert result.returncode == 0, result.stderr
    assert (f"bootdisk: warning: {partial}: left by an earlier run that "
            f"did not finish (no process holds it); replaced"
            in result.stderr)
    assert out.read_bytes()[:2] == b"\x1f\x8b"          # gzip
    assert sorted(os.listdir(tmp_path)) == ["env.initrd"]


def test_pxe_never_writes_through_a_symlinked_pxelinux_cfg(tmp_path):
    """Found in the sweep: `pxe -o DIR --force` made DIR/pxelinux.cfg with
    makedirs(exist_ok), which follows a symlink there, and wrote its menu
    into whatever directory the link named."""
    host_kernel()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "tftp"
    out.mkdir()
    os.symlink(elsewhere, out / "pxelinux.cfg")
    err = _one_line(bootdisk("pxe", "-o", out, "--force",
                             "--toolkit=/bin/true"), 3)
    assert f"{out / 'pxelinux.cfg'}: is a symlink" in err
    assert os.listdir(elsewhere) == []
    assert os.listdir(out) == ["pxelinux.cfg"]


def test_a_toolkit_whose_archive_names_leave_the_scratch_is_refused(
        tmp_path):
    """Found in the sweep: the names in the toolkit's PyInstaller archive
    were joined to a scratch directory and written, so a name made of
    "../" wrote a file anywhere on the host (here: inside tmp_path)."""
    host_kernel()
    writers = pytest.importorskip("PyInstaller.archive.writers")
    library = tmp_path / "libz.so.1"
    library.write_bytes(open("/lib/x86_64-linux-gnu/libz.so.1", "rb").read())
    escaped = tmp_path / "escaped.so"
    name = "../" * 30 + str(escaped).lstrip("/")
    archive = tmp_path / "archive"
    writers.CArchiveWriter(str(archive), [(name, str(library), False, "b")],
                           "libpython3.so")
    toolkit = tmp_path / "toolkit"
    toolkit.write_bytes(open("/bin/true", "rb").read() + archive.read_bytes())
    toolkit.chmod(0o755)
    out = tmp_path / "env.initrd"
    err = _one_line(bootdisk("initrd", "-o", out, f"--toolkit={toolkit}"), 3)
    assert f"{toolkit}: its archive holds" in err
    assert not escaped.exists()
    assert not out.exists() and not os.path.exists(f"{out}.partial")


def test_relative_input_paths_are_the_files_in_the_current_directory(
        tmp_path):
    """--toolkit=NAME (a relative path, no slash) was run through PATH and
    failed 'No such file or directory' (issue 11 round 3, volmsg item 7);
    every input option given relative is the file in the directory the
    command started in."""
    import json
    import shutil
    kernel = host_kernel()
    shutil.copy("/bin/true", tmp_path / "faketool")
    shutil.copy(kernel, tmp_path / "vmlinuz")
    (tmp_path / "job.sh").write_text("#!/bin/sh\necho hi\n")
    (tmp_path / "extra").mkdir()
    (tmp_path / "extra" / "note.txt").write_text("note\n")
    env = dict(os.environ, PYTHONPATH=os.fspath(ROOT))
    result = subprocess.run(
        [sys.executable, "-m", "bootdisk", "initrd", "-o", "env.initrd",
         "--toolkit=faketool", "--kernel=vmlinuz", "--job=job.sh",
         "--add=extra:/opt/extra", "-q"], capture_output=True, text=True,
        cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    shown = subprocess.run(
        [sys.executable, "-m", "bootdisk", "info", "env.initrd", "--json"],
        capture_output=True, text=True, cwd=tmp_path, env=env)
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    assert (report["job"], report["job_text"]) == \
        ("job.sh", "#!/bin/sh\necho hi\n")
    assert report["binaries"] == ["bin/busybox", "usr/bin/deploytool",
                                  "usr/bin/udp-receiver"]


def test_an_output_onto_a_full_filesystem_is_no_space(tmp_path):
    """bootdisk initrd onto a filesystem without room: exit 6 naming OUT,
    nothing left (issue 11 review, the sweep of item 6)."""
    from tests.fsbuild import ext_mounted, run
    host_kernel()
    small = tmp_path / "small.img"
    run("mkfs.ext4", "-q", small, "1M")
    with ext_mounted(small, tmp_path / "mnt") as mnt:
        out = mnt / "env.initrd"
        err = _one_line(bootdisk("initrd", "-o", out, "--toolkit=/bin/true"),
                        6)
        assert f"bootdisk: error: {out}: no space left" in err, err
        assert sorted(os.listdir(mnt)) == ["lost+found"]
