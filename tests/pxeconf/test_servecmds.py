"""`pxeconf report` as a program (python -m pxeconf) against an HTTP
server on 127.0.0.1: what reaches the server, the relay's stdout, exit
codes and one-line errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.reportserver import report_server

ROOT = Path(__file__).resolve().parents[2]


def pxeconf(*args, input=None):
    return subprocess.run([sys.executable, "-m", "pxeconf", *map(str, args)],
                          cwd=ROOT, input=input, capture_output=True,
                          timeout=120)


def _one_line(result):
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_started_done_failed_reach_the_server(tmp_path):
    log = tmp_path / "bootdisk.log"
    log.write_text("".join(f"line {i}\n" for i in range(40)))
    with report_server() as (url, seen):
        for args in (["started"], ["done"], ["failed", "--exit=4",
                                             f"--log={log}"]):
            result = pxeconf("report", *args, f"--server-url={url}",
                             "--lease=abc")
            assert result.returncode == 0, result.stderr
            assert result.stdout == b"" and result.stderr == b""
    assert seen.bodies[0] == {"lease": "abc", "event": "started"}
    assert seen.bodies[1] == {"lease": "abc", "event": "done", "exit": 0}
    assert seen.bodies[2]["exit"] == 4
    assert seen.bodies[2]["log"] == [f"line {i}" for i in range(20, 40)]


def test_relay_passes_stdin_to_stdout_and_reports_progress():
    lines = b"job: start\n" + b"".join(
        json.dumps({"event": "progress", "task": "restore", "done": i,
                    "total": 4}).encode() + b"\n" for i in range(5)) + \
        b"job: end\n"
    with report_server() as (url, seen):
        result = pxeconf("report", "relay", f"--server-url={url}",
                         "--lease=abc", input=lines)
    assert result.returncode == 0, result.stderr
    assert result.stdout == lines
    assert seen.bodies and seen.bodies[-1]["progress"]["done"] == 4
    assert seen.bodies[-1]["log"] == ["job: start", "job: end"]


def test_a_stale_lease_is_one_line_exit_3():
    with report_server() as (url, seen):
        seen.stale.add("old")
        result = pxeconf("report", "started", f"--server-url={url}",
                         "--lease=old")
    assert result.returncode == 3
    assert "does not know lease old" in _one_line(result)
    assert len(seen.bodies) == 1


def test_without_rd_pxeconf_on_the_command_line_exit_3(tmp_path):
    # the command line of a machine not booted by pxeconf
    cmdline = tmp_path / "cmdline"
    cmdline.write_text("BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro quiet\n")
    result = pxeconf("report", "started", f"--kernel-cmdline={cmdline}")
    assert result.returncode == 3
    assert _one_line(result) == (
        f"pxeconf: error: no server: rd.pxeconf=URL is not on the kernel "
        f"command line ({cmdline}) and no --server-url")


def test_server_and_lease_come_from_the_kernel_command_line(tmp_path):
    cmdline = tmp_path / "cmdline"
    with report_server() as (url, seen):
        cmdline.write_text(f"quiet rd.pxeconf={url} rd.pxeconf.lease=abc\n")
        result = pxeconf("report", "started", f"--kernel-cmdline={cmdline}")
    assert result.returncode == 0, result.stderr
    assert seen.bodies == [{"lease": "abc", "event": "started"}]


def _job_cmdline(tmp_path, url):
    cmdline = tmp_path / "cmdline"
    cmdline.write_text(f"quiet rd.job={url}jobs/restore.sh "
                       f"rd.pxeconf={url} rd.pxeconf.lease=abc\n")
    return f"--kernel-cmdline={cmdline}"


def test_started_fetches_the_job_first_and_waits_out_a_failed_fetch(
        tmp_path):
    job = tmp_path / "job"
    with report_server() as (url, seen):
        seen.files["/jobs/restore.sh"] = b"echo restoring\n"
        seen.get_answers.append(503)      # the first fetch fails
        result = pxeconf("report", "started", f"--fetch={job}",
                         _job_cmdline(tmp_path, url))
    assert result.returncode == 0, result.stderr
    assert _one_line(result) == (
        f"pxeconf: report fetch: {url}jobs/restore.sh: HTTP 503 answer 503; "
        f"trying again in 1 s")
    assert seen.gets == ["/jobs/restore.sh"] * 2
    assert job.read_bytes() == b"echo restoring\n"
    assert seen.bodies == [{"lease": "abc", "event": "started"}]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cmdline", "job"]


def test_a_job_not_there_is_reported_failed_and_never_started(tmp_path):
    job = tmp_path / "job"
    with report_server() as (url, seen):
        result = pxeconf("report", "started", f"--fetch={job}",
                         _job_cmdline(tmp_path, url))
    assert result.returncode == 1
    why = f"{url}jobs/restore.sh: HTTP 404 answer 404"
    assert _one_line(result) == f"pxeconf: error: {why}; reported failed"
    assert seen.gets == ["/jobs/restore.sh"]      # a 404 is not retried
    assert seen.bodies == [{"lease": "abc", "event": "failed", "log": [
        f"pxeconf report: job not fetched: {why}"]}]
    assert not job.exists()


@pytest.mark.parametrize("args, words", [
    (["report", "begun", "--lease=x", "--server-url=http://h/"],
     "EVENT is one of started, relay, done, failed"),
    (["report", "started", "--exit=0", "--lease=x",
      "--server-url=http://h/"], "--exit goes with done or failed"),
    (["report", "done", "--exit=zero", "--lease=x",
      "--server-url=http://h/"], "--exit takes a number"),
    (["report", "relay", "--log=f", "--lease=x", "--server-url=http://h/"],
     "--log goes with done or failed"),
    (["report", "done", "--fetch=f", "--lease=x", "--server-url=http://h/"],
     "--fetch goes with started"),
])
def test_bad_report_words_exit_2(args, words):
    result = pxeconf(*args)
    assert result.returncode == 2
    assert words in _one_line(result)


def test_a_bad_server_url_exit_3():
    result = pxeconf("report", "done", "--server-url=ftp://h/", "--lease=x")
    assert result.returncode == 3
    assert "not http://HOST[:PORT]/" in _one_line(result)


def test_report_help_runs():
    result = pxeconf("report", "--help")
    assert result.returncode == 0 and b"pxeconf report EVENT" in \
        result.stdout


@pytest.mark.parametrize("args, words", [
    (["--listen=0.0.0.0"], "an explicit address, not all of them"),
    (["--listen=pxe-server"], "--listen takes an IP address"),
    (["--listen=::1"], "an IPv4 address"),
    (["--listen=127.0.0.1", "--http-port=eighty"], "--http-port takes a port"),
    (["--listen=127.0.0.1", "--tftp-port=70000"], "--tftp-port must be a port"),
    (["--listen=127.0.0.1", "--proxy-dhcp=10.0.0"], "--proxy-dhcp takes a "
     "network"),
    (["--listen=127.0.0.1", "--uefi=grub"], "--uefi=grub: one of ipxe, shim"),
])
def test_bad_serve_words_exit_2(tmp_path, args, words):
    result = pxeconf("serve", *args, f"--site={tmp_path}/none.site")
    assert result.returncode == 2
    assert words in _one_line(result)


def test_serve_without_a_site_file_exit_3(tmp_path):
    result = pxeconf("serve", "--listen=127.0.0.1", "--http-port=0",
                     "--tftp-port=0", f"--site={tmp_path}/none.site")
    assert result.returncode == 3
    assert "none.site" in _one_line(result)
