"""Interrupted restores of a URL (issue 17's trial): a restore that stops in
the middle of a stream from a server that ignores Range, then --resume
against `python3 -m http.server` itself (the records before the checkpoint
come down again and are checked, as from a pipe); the race that made
such a resume fail ("the image differs"); a resume that fails leaves the
marker as it found it; verify-target's advice and JSON.

The stop lands at a known point: tests/rangeserver.py holds its answer
still at `stall_at`, so the restore waits on the socket with its marker
checkpointed (RDEPLOY_CHECKPOINT_BYTES), and is killed there."""

import filecmp
import json
import shutil
import signal
import subprocess
import sys

import pytest

from diskimage import restoremark
from tests.rangeserver import RangeServer
from tests.rdeploy_helpers import ROOT, check, command, env, rdeploy
from tests.remote.conftest import MiB, TOOLS, check_disk
from tests.servehelpers import free_port
from tests.signals import wait_for

pytestmark = pytest.mark.needs(*TOOLS)


def _marker(target):
    with open(target, "rb") as f:
        return restoremark.unpack(f.read(restoremark.SIZE), 0)


def _checkpoint_env():
    return dict(env(), RDEPLOY_CHECKPOINT_BYTES=str(MiB))


def killed_url_restore(url, target, server):
    """`rdeploy restore URL TARGET` stopped by SIGKILL while the server
    holds its answer still (the marker at checkpoint 2 or more)."""
    proc = subprocess.Popen(
        command("restore", url, target, "--yes", "-q"),
        env=_checkpoint_env(), cwd=ROOT,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE)
    try:
        wait_for(lambda: proc.poll() is not None or (
            target.exists() and (_marker(target) or restoremark.Marker(
                0, b"", b"")).checkpoint >= 2), what="the checkpoint")
        assert proc.poll() is None, proc.stderr.read().decode()
        # the stream is held at stall_at: no checkpoint comes after this
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(30) == -signal.SIGKILL
    finally:
        server.release()
        proc.stdout.close()
        proc.stderr.close()
    return _marker(target)


class HttpServer:
    """`python3 -m http.server` on 127.0.0.1 serving `root` (HTTP/1.0,
    Range ignored: the server of the trial)."""

    def __init__(self, root):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(self.port), "--bind",
             "127.0.0.1", "--directory", str(root)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import socket

        def up():
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.port)) == 0
        wait_for(up, what="python3 -m http.server")

    def url(self, name):
        return f"http://127.0.0.1:{self.port}/{name}"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def marked(remote_ro, tmp_path):
    """A disk file left by a restore of URL killed in the middle, from a
    server that ignores Range: (target, marker, URL it was named by)."""
    target = tmp_path / "target.img"
    with RangeServer(remote_ro["dir"], ranges=False,
                     stall_at=remote_ro["image"].stat().st_size // 2) \
            as server:
        url = server.url("lab.rdi")
        marker = killed_url_restore(url, target, server)
    assert marker is not None and marker.checkpoint >= 2
    assert marker.root is None      # read as a stream: the root at its end
    return target, marker, url


def test_resume_against_a_server_that_ignores_range(remote_ro, marked,
                                                    tmp_path):
    target, marker, url = marked
    line = check(rdeploy("verify-target", target), 13, url,
                 f"rdeploy restore {url} {target} --resume --yes")
    assert "pipe" not in line and "stdin" not in line, line
    with HttpServer(remote_ro["dir"]) as server:
        result = rdeploy("restore", server.url("lab.rdi"), target,
                         "--resume", "--yes")
    assert result.returncode == 0, result.stderr.decode()
    assert f"resumed at chunk {marker.checkpoint}" in result.stderr.decode()
    assert _marker(target) is None
    assert filecmp.cmp(target, remote_ro["disk"], shallow=False)
    check_disk(target, remote_ro["manifest"], tmp_path)


def test_a_failed_resume_leaves_the_marker_as_it_found_it(remote_ro, marked,
                                                          tmp_path):
    """The same image cut short after the checkpoint (its front the same):
    the resume writes past the checkpoint, then fails (exit 8); the marker
    still says the checkpoint it had, and a resume from the whole image
    then finishes the disk."""
    target, marker, _ = marked
    cut = tmp_path / "cut"
    cut.mkdir()
    data = remote_ro["image"].read_bytes()
    (cut / "lab.rdi").write_bytes(data[:len(data) * 3 // 4])
    with HttpServer(cut) as server:
        # checkpoints every MiB: the resume passes several before it fails
        check(subprocess.run(
            command("restore", server.url("lab.rdi"), target, "--resume",
                    "--yes"), env=_checkpoint_env(), cwd=ROOT,
            stdin=subprocess.DEVNULL, capture_output=True, timeout=120),
            8, "ends early", "the target was changed")
    after = _marker(target)
    assert after is not None
    assert (after.checkpoint, after.prefix, after.done_bytes) == \
        (marker.checkpoint, marker.prefix, marker.done_bytes)
    with HttpServer(remote_ro["dir"]) as server:
        result = rdeploy("restore", server.url("lab.rdi"), target,
                         "--resume", "--yes", "-q")
    assert result.returncode == 0, result.stderr.decode()
    assert filecmp.cmp(target, remote_ro["disk"], shallow=False)


def test_verify_target_json_on_a_marked_target(marked):
    target, marker, url = marked
    result = rdeploy("verify-target", target, "--json")
    assert result.returncode == 13, result.stderr.decode()
    doc = json.loads(result.stdout)
    assert doc["incomplete"] is True and doc["target"] == str(target)
    assert doc["marker"]["image"] == url
    assert doc["marker"]["source"] == "url"
    assert doc["marker"]["checkpoint"] == marker.checkpoint
    assert doc["marker"]["front"] == marker.front.hex()
    assert "--resume" in doc["message"]
    # the one error line on stderr, as without --json
    check(result, 13, "interrupted restore")


def test_a_marker_copied_as_a_session_says_receive_the_next_one(marked,
                                                                tmp_path):
    """The marker's name decides the advice: a multicast session's disk is
    told to receive the next session (its port when not the default), a
    swarm's to receive the swarm again."""
    target, marker, _ = marked
    copy = tmp_path / "copy.img"
    for name, words in (
            ("multicast session of 10.0.0.1 (port 9100)",
             [f"rdeploy multicast receive {copy} --port=9100 --yes",
              "cannot be resumed"]),
            ("multicast session of 10.0.0.1 (port 9000)",
             [f"rdeploy multicast receive {copy} --yes"]),
            ("swarm:lab.torrent",
             [f"rdeploy swarm receive lab.torrent {copy} --yes"])):
        shutil.copyfile(target, copy)
        marker.name = name
        with open(copy, "r+b") as f:
            f.write(marker.pack())
        target_line = check(rdeploy("verify-target", copy), 13, *words)
        assert "--resume" not in target_line and "pipe" not in target_line
        copy.unlink()


def test_the_prefix_check_holds_while_the_runs_checkpoints_move(remote_ro):
    """The race behind the trial's "the image differs": the resume's own
    checkpoints rewrite the run's marker (the consumer thread) while the
    prefix check runs ahead on the feeder.  Here each record, once given
    out, is checkpointed as the consumer would (the checkpoint the next
    record's number, the prefix over all before it): the check still
    holds against the marker as it was found, and refuses another."""
    import hashlib
    from diskimage.image.reader import RecordStream
    from diskimage.image.volumes import VolumeInput

    def marker_at(stream, checkpoint):
        prefix = hashlib.sha256()
        for number, fields, _, _ in stream.records():
            if number == checkpoint:
                break
            prefix.update(restoremark.record_bytes(stream, fields))
        return restoremark.Marker(0, b"", b"", checkpoint=checkpoint,
                                  prefix=prefix.digest())

    with VolumeInput(str(remote_ro["image"])) as source:
        found = marker_at(RecordStream(source), 3)
    for wanted, refused in ((found.prefix, False), (bytes(32), True)):
        run_marker = restoremark.Marker(0, b"", b"", checkpoint=3,
                                        prefix=wanted)
        moved = hashlib.sha256()
        with VolumeInput(str(remote_ro["image"])) as source:
            stream = RecordStream(source)
            records = restoremark.checked_prefix(
                stream, stream.records(), run_marker, "target")
            try:
                for number, fields, _, _ in records:
                    moved.update(restoremark.record_bytes(stream, fields))
                    # the consumer's checkpoint after this record
                    run_marker.checkpoint = number + 1
                    run_marker.prefix = moved.digest()
                assert not refused
            except Exception as exc:
                assert refused and "the image differs" in str(exc), exc
