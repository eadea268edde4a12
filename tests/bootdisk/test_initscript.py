"""/init's text as busybox ash reads it: no syntax error, and the leased
path (rd.pxeconf=) wired as docs/pxeconf/serve.md says.  What it does is
tested by booting it (tests/bootdisk/test_pxeconf_env.py, test_boot.py)."""

import subprocess

import pytest

from bootdisk import initscript


@pytest.mark.needs("busybox")
@pytest.mark.parametrize("name", ["INIT", "UDHCPC_SCRIPT"])
def test_busybox_ash_parses_the_scripts(tmp_path, name):
    script = tmp_path / "script"
    script.write_text(getattr(initscript, name))
    result = subprocess.run(["busybox", "sh", "-n", str(script)],
                            capture_output=True, text=True)
    assert result.returncode == 0 and result.stderr == "", result.stderr


def test_the_leased_path_reports_before_the_job_and_relays_it():
    text = initscript.INIT
    started = text.index("pxeconf report started $fetch")
    assert "fetch=--fetch=/run/job" in text     # the job first (rd.job=)
    assert started < text.index("if fetch_job; then\n        {")
    assert "| { pxeconf report relay || cat; }" in text
    assert 'pxeconf report failed --exit="$rc"' in text
    # without rd.pxeconf= the job runs as before
    assert 'elif fetch_job; then\n        run_job' in text
