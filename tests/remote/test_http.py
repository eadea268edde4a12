"""Images over HTTP (diskimage.remote): restore, verify, info and imgx on
URLs served by tests/rangeserver.py, which counts the bytes it sends and
cuts connections where a test says.  Every restored disk is checked with
e2fsck and the sha256 of its files (debugfs), and equals the source disk."""

import filecmp
import json
import os
import random
import re
import subprocess
import sys

import pytest

from diskimage.errors import InputError, NetworkError
from diskimage.image.reader import RecordStream
from diskimage.remote.httpinput import HttpInput
from tests.rangeserver import RangeServer
from tests.rdeploy_helpers import ROOT, check, env, rdeploy
from tests.remote.conftest import HOSTNAME, TOOLS, check_disk

pytestmark = pytest.mark.needs(*TOOLS)


def imgx(*args):
    return subprocess.run([sys.executable, "-m", "imgx", *map(str, args)],
                          env=env(), cwd=ROOT, stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=60)


def _restored(remote, target, tmp_path):
    check_disk(target, remote["manifest"], tmp_path)
    assert filecmp.cmp(target, remote["disk"], shallow=False)


def test_restore_through_two_dropped_connections(remote_ro, tmp_path):
    """Two drops at random (seeded) points of the stream of a split image:
    each is resumed with a Range from the byte after the last received,
    and the restore completes; the disk is the image's."""
    size = sum(os.path.getsize(v) for v in remote_ro["volumes"])
    drops = sorted(random.Random(1717).sample(range(1000, size), 2))
    target = tmp_path / "target.img"
    with RangeServer(remote_ro["dir"], drop_at=drops) as server:
        result = rdeploy("restore", server.url("split.rdi"), target, "--yes",
                         "-q")
        assert result.returncode == 0, result.stderr.decode()
        assert server.drops == 2
        # (the others: the probes, bytes=0-0, and the few records that
        # planning reads at random, bytes=A-B)
        resumed = [r for r in server.ranges() if r and r.endswith("-")]
        assert len(resumed) == 2, server.requests
    _restored(remote_ro, target, tmp_path)


def test_verify_info_and_verify_target_on_a_url(remote_ro, tmp_path):
    with RangeServer(remote_ro["dir"]) as server:
        url = server.url("split.rdi")
        result = rdeploy("verify", url)
        assert result.returncode == 0, result.stderr.decode()
        assert result.stdout.decode().startswith(f"{url}: OK")
        info = rdeploy("info", url, "--json")
        assert info.returncode == 0, info.stderr.decode()
        got = json.loads(info.stdout)
        assert got["image"] == url
        assert got["volumes"] == [server.url(v.name)
                                  for v in remote_ro["volumes"]]
        result = rdeploy("verify-target", remote_ro["disk"],
                         server.url("lab.rdi"))
        assert result.returncode == 0, result.stderr.decode()


def test_imgx_cat_reads_a_small_fraction_of_the_image(remote_ro):
    image_bytes = os.path.getsize(remote_ro["image"])
    with RangeServer(remote_ro["dir"]) as server:
        result = imgx("cat", server.url("lab.rdi") + ":2/etc/hostname")
        assert result.returncode == 0, result.stderr.decode()
        assert result.stdout == HOSTNAME
        assert all(r and r.startswith("bytes=") for r in server.ranges())
        assert server.sent < image_bytes * 0.05, (server.sent, image_bytes)
        listing = imgx("ls", server.url("lab.rdi") + ":3/data")
        assert listing.stdout.decode().split() == ["blob0.bin", "blob1.bin"]


def test_no_such_image_is_exit_3(remote_ro, tmp_path):
    with RangeServer(remote_ro["dir"]) as server:
        url = server.url("nothing.rdi")
        check(rdeploy("restore", url, tmp_path / "t.img", "--yes"), 3,
              "no such image", "404", url)
        check(rdeploy("info", url), 3, "no such image")
        assert imgx("cat", url + ":2/etc/hostname").returncode == 3
    assert not (tmp_path / "t.img").exists()


def test_a_refused_presigned_url_is_named_without_its_query(remote_ro):
    with RangeServer(remote_ro["dir"], fail=403) as server:
        url = server.url("lab.rdi") + "?X-Amz-Signature=s3cr3t&X-Amz-Credential=AKIA"
        result = rdeploy("info", url)
        line = check(result, 15, "refused (HTTP 403)", "presigned",
                     server.url("lab.rdi") + "?...")
        assert "s3cr3t" not in line and "AKIA" not in line


def test_a_failing_server_gives_one_line_after_the_tries(remote_ro):
    with RangeServer(remote_ro["dir"], fail=503) as server:
        with pytest.raises(NetworkError) as caught:
            HttpInput(server.url("lab.rdi"), tries=3, backoff=0.01)
        assert len(server.requests) == 3
    text = str(caught.value)
    assert "\n" not in text
    assert text.startswith(server.url("lab.rdi") + ": could not be read at "
                           "byte 0 after 3 tries")
    assert "HTTP 503" in text


def test_a_connection_that_keeps_dropping_is_given_up(remote_ro):
    """A drop before any byte at every try: the count is not reset (no
    progress), and the final error names the position."""
    with RangeServer(remote_ro["dir"]) as server:
        source = HttpInput(server.url("lab.rdi"), tries=3, backoff=0.01)
        source.read(1000)
        server.drop_at = [server.sent + 10, server.sent + 10,
                          server.sent + 10, server.sent + 10]
        with pytest.raises(NetworkError) as caught:
            source.read(8 << 20)
        source.close()
    assert "after 3 tries" in str(caught.value)


def test_a_resource_changed_between_requests_is_refused(remote_ro, tmp_path):
    """The image is replaced on the server while a read is cut: the resumed
    request's If-Range does not hold, the server answers whole, and the
    reader refuses instead of splicing two images."""
    served = tmp_path / "served"
    served.mkdir()
    image = served / "lab.rdi"
    image.write_bytes(remote_ro["image"].read_bytes())
    with RangeServer(served, drop_at=[3 << 20]) as server:
        source = HttpInput(server.url("lab.rdi"), backoff=0.01)
        assert source.read(1 << 20)
        other = served / "other"
        other.write_bytes(image.read_bytes()[:-1] + b"\0")
        os.replace(other, image)
        with pytest.raises(NetworkError, match="changed on its server "
                                               "while being read"):
            source.read(8 << 20)
        with pytest.raises(NetworkError, match="changed on its server"):
            source.read_at(0, 100)
        source.close()


def test_a_presigned_split_image_says_why_it_ends(remote_ro):
    """A URL with a query string names one volume: the stream of a split
    image ends early, and the error says why."""
    with RangeServer(remote_ro["dir"]) as server:
        source = HttpInput(server.url("split.rdi") + "?X-Amz-Signature=x")
        assert source.paths == [server.url("split.rdi") + "?..."]
        with source, pytest.raises(InputError, match="query string"):
            for _ in RecordStream(source).records():
                pass
        result = rdeploy("verify", server.url("split.rdi") + "?sig=x")
        check(result, 3, "presigned", "imgx join")


def test_a_server_without_ranges_is_read_front_to_back(remote_ro, tmp_path):
    """A server that ignores Range: restore streams it, and a drop is
    resumed by reading again up to where it stopped (the validator the
    same); random access is refused, saying why."""
    target = tmp_path / "target.img"
    with RangeServer(remote_ro["dir"], ranges=False,
                     drop_at=[5 << 20]) as server:
        result = rdeploy("restore", server.url("lab.rdi"), target, "--yes",
                         "-q")
        assert result.returncode == 0, result.stderr.decode()
        assert server.drops == 1
        check(rdeploy("info", server.url("lab.rdi")), 3,
              "does not answer Range requests")
    assert filecmp.cmp(target, remote_ro["disk"], shallow=False)


def test_a_required_signature_is_refused_with_a_url(remote_ro, tmp_path):
    key = tmp_path / "lab.key"
    assert rdeploy("keygen", key, "-q").returncode == 0
    target = tmp_path / "t.img"
    with RangeServer(remote_ro["dir"]) as server:
        url = server.url("lab.rdi")
        check(rdeploy("restore", url, target, "--yes",
                      f"--require-signature={key}.pub"), 11, "not a URL")
        check(rdeploy("verify", url, f"--pubkey={key}.pub"), 11, "not a URL")
        assert server.requests == []
    assert not target.exists()


def test_a_dropped_connection_is_said_as_it_happens(remote_ro, tmp_path):
    """A drop in the middle of a restore: a warning line on stderr before
    the wait (not silence), and the restore completes; its summary line
    says the areas restored and what was written, in the bar's units."""
    target = tmp_path / "target.img"
    with RangeServer(remote_ro["dir"], drop_at=[9 << 20]) as server:
        url = server.url("lab.rdi")
        result = rdeploy("restore", url, target, "--yes")
    assert result.returncode == 0, result.stderr.decode()
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 2, lines
    assert re.fullmatch(
        rf"rdeploy: warning: {re.escape(url)}: .* at byte \d+; retrying in "
        rf"1 s \(try 2 of 6\)", lines[0]), lines[0]
    assert re.match(rf"rdeploy: restored {re.escape(url)} -> .*: 89\.0 MiB "
                    rf"\([\d.]+ MiB written\) in ", lines[1]), lines[1]
    _restored(remote_ro, target, tmp_path)


def test_a_query_after_the_imgx_path_is_the_urls_and_never_shown(
        remote_ro):
    with RangeServer(remote_ro["dir"]) as server:
        url = server.url("lab.rdi")
        result = imgx("cat", url + ":2/etc/hostname?X-Amz-Signature=f00d")
        assert result.returncode == 0, result.stderr.decode()
        assert result.stdout == HOSTNAME
        assert server.requests[-1][1] == "/lab.rdi"
        result = imgx("ls", url + ":2/nosuch?X-Amz-Signature=f00d")
    assert result.returncode == 3, result.stderr.decode()
    assert "f00d" not in result.stderr.decode()
    assert "Signature" not in result.stderr.decode()


def test_ca_file_with_http_and_https_to_a_plain_server(remote_ro, tmp_path):
    """--ca-file with an http:// IMAGE would be ignored: a usage error
    before any request; https:// to a server that speaks plain HTTP is
    said in words, not as OpenSSL's WRONG_VERSION_NUMBER."""
    ca = tmp_path / "ca.pem"
    ca.write_text("not read\n")
    with RangeServer(remote_ro["dir"]) as server:
        url = server.url("lab.rdi")
        for args in (("info", url), ("verify", url),
                     ("restore", url, tmp_path / "t.img", "--yes")):
            check(rdeploy(*args, f"--ca-file={ca}"), 2,
                  "--ca-file goes with an https:// IMAGE")
        assert server.requests == []
        result = imgx("ls", url + ":2/", f"--ca-file={ca}")
        assert result.returncode == 2, result.stderr.decode()
        assert server.requests == []
        line = check(rdeploy("info", "https" + url[4:]), 15,
                     "the server does not speak TLS")
        assert "WRONG_VERSION" not in line
    assert not (tmp_path / "t.img").exists()
