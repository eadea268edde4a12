"""/init's leased path (rd.pxeconf=) with the real `pxeconf report` and a
real HTTP server (tests/reportserver.py) that serves the job and records
the reports: the job is fetched before "started", a fetch that fails at
first is tried again, and a job that cannot be fetched is reported
failed and never started.

/init's own text is run by busybox ash from its command-line loop to the
end of main(), as in test_initscript_bwpart.py (/proc/cmdline and /run
moved into the test's directory); `pxeconf` on PATH is the toolkit's own,
given the moved command line.  The boot itself is test_pxeconf_env.py's."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bootdisk import initscript
from tests.reportserver import report_server

pytestmark = pytest.mark.needs("busybox")

ROOT = Path(__file__).resolve().parents[2]
JOB = b'echo "job: RAN-$((6 * 7))"\n'


def run_init(tmp_path, url):
    text = initscript.INIT
    body = text[text.index("ON_SUCCESS=poweroff"):
                text.index("main 2>&1 | tee")]
    run = tmp_path / "run"
    run.mkdir()
    cmdline = tmp_path / "cmdline"
    cmdline.write_text(f"quiet rd.job={url}jobs/restore.sh rd.pxeconf={url} "
                       f"rd.pxeconf.lease=abc\n")
    body = (body.replace("/proc/cmdline", str(cmdline))
            .replace("/etc/bootdisk/config", str(tmp_path / "config"))
            .replace("/run/", f"{run}/"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pxeconf").write_text(
        f'#!/bin/sh\ncd {ROOT} && exec {sys.executable} -m pxeconf "$@" '
        f'--kernel-cmdline={cmdline}\n')
    (bin_dir / "pxeconf").chmod(0o755)
    script = tmp_path / "init"
    script.write_text(body + 'setup() { :; }\nsay() { echo "say: $*"; }\n'
                      'uptime_s() { echo 0; }\nmain\n')
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    result = subprocess.run(["busybox", "sh", str(script)], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return (run / "bootdisk.rc").read_text().strip(), result


def test_a_fetch_that_fails_first_is_tried_again_then_started(tmp_path):
    with report_server() as (url, seen):
        seen.files["/jobs/restore.sh"] = JOB
        seen.get_answers.append(503)
        rc, result = run_init(tmp_path, url)
    assert rc == "0", result.stdout + result.stderr
    assert "job: RAN-42" in result.stdout
    assert "trying again in 1 s" in result.stderr
    assert seen.gets == ["/jobs/restore.sh"] * 2
    events = seen.events()
    assert events[0] == "started" and events[-1] == "done", events
    assert seen.bodies[-1]["exit"] == 0


def test_a_job_not_fetched_is_failed_and_never_runs(tmp_path):
    with report_server() as (url, seen):
        rc, result = run_init(tmp_path, url)     # no job: 404
    assert rc == "1"
    assert "say: no job fetched, or its start not acknowledged: the job " \
        "does not run" in result.stdout
    assert "HTTP 404" in result.stderr and "reported failed" in result.stderr
    assert seen.gets == ["/jobs/restore.sh"]
    assert seen.events() == ["failed"]
    assert "job not fetched" in seen.bodies[0]["log"][0]
