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


def test_without_rd_pxeconf_on_the_command_line_exit_3():
    if "rd.pxeconf=" in Path("/proc/cmdline").read_text():
        pytest.skip("this machine booted from pxeconf")
    result = pxeconf("report", "started")
    assert result.returncode == 3
    assert _one_line(result).startswith("pxeconf: error: no server: "
                                        "rd.pxeconf=URL")


@pytest.mark.parametrize("args, words", [
    (["report", "begun", "--lease=x", "--server-url=http://h/"],
     "EVENT is one of started, relay, done, failed"),
    (["report", "started", "--exit=0", "--lease=x",
      "--server-url=http://h/"], "--exit goes with done or failed"),
    (["report", "done", "--exit=zero", "--lease=x",
      "--server-url=http://h/"], "--exit takes a number"),
    (["report", "relay", "--log=f", "--lease=x", "--server-url=http://h/"],
     "--log goes with done or failed"),
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
