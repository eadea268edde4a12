"""`pxeconf serve` as a program on 127.0.0.1 with high ports, and real
clients: tftp-hpa's `tftp` gets the menu and a machine's config, curl gets
boot.ipxe and the API, `pxeconf report` moves the machine's lease; SIGTERM
stops it (exit 143), a restart keeps the journal's state, a taken port is
exit 9 naming it, the token is made once (0600) and printed once, an edit
of the site file is served without a restart."""

import json
import os
import re
import socket
import subprocess
import sys

import pytest

from diskimage.netboot import macaddr
from tests.servehelpers import (MAC, ROOT, Serve, curl, make_site,
                                tftp_get)

pytestmark = pytest.mark.needs("tftp", "curl")

LEASE = re.compile(r"rd\.pxeconf\.lease=(\S+)")


@pytest.fixture
def site(tmp_path):
    return make_site(tmp_path / "site")


@pytest.fixture
def serve(site):
    servers = []

    def start(*extra, **kw):
        server = Serve(site, *extra, **kw)
        servers.append(server)
        return server
    yield start
    for server in servers:
        server.close()


def _report(server, event, lease, *extra):
    return subprocess.run(
        [sys.executable, "-m", "pxeconf", "report", event,
         f"--server-url={server.url}", f"--lease={lease}", *extra],
        cwd=ROOT, capture_output=True, timeout=120)


def test_without_http_port_the_site_files_is_taken(serve, site):
    from tests.servehelpers import free_port
    port = free_port()
    text = site.read_text()
    site.write_text(text.replace("[site]\n", f"[site]\nhttp-port = {port}\n",
                                 1))
    server = serve(http_port=port, port_from_site=True)
    server.ready()
    got = curl(server.url + "boot.ipxe")
    assert got.returncode == 0 and f":{port}/".encode() in got.stdout


def test_serves_menu_config_and_boot_script_and_moves_the_lease(
        serve, site, tmp_path):
    server = serve()
    server.ready()
    boot = site.parent / "boot"
    menu = tftp_get("127.0.0.1", server.tftp_port, "pxelinux.cfg/default",
                    tmp_path / "default")
    assert menu == (boot / "pxelinux.cfg/default").read_bytes()
    got = curl(server.url + "boot.ipxe")
    assert got.returncode == 0 and got.stdout == \
        (boot / "boot.ipxe").read_bytes() and b"#!ipxe" in got.stdout
    assert server.machines()[MAC]["state"] == "assigned"

    own = macaddr.pxelinux_name(MAC)
    config = tftp_get("127.0.0.1", server.tftp_port, own, tmp_path / "own")
    assert config is not None, server.text()
    lease = LEASE.search(config.decode()).group(1)
    assert f"rd.pxeconf={server.url}".encode() in config
    machine = server.machines()[MAC]
    assert machine["firmware"] == "bios" and machine["last_seen"]

    assert _report(server, "started", lease).returncode == 0
    assert server.machines()[MAC]["state"] == "started"
    result = _report(server, "done", lease)
    assert result.returncode == 0, result.stderr
    machine = server.machines()[MAC]
    assert machine["state"] == "done" and machine["next"] == "local"
    # the machine's files say local boot now, before any boot asks
    after = (boot / own).read_text()
    assert "rd.pxeconf" not in after and after != config.decode()
    for name in macaddr.grub_names(MAC) + (macaddr.ipxe_name(MAC),):
        assert "rd.pxeconf" not in (boot / name).read_text()
    # a report of an ended lease is refused: exit 3, one line
    again = _report(server, "started", lease)
    assert again.returncode == 3 and len(again.stderr.splitlines()) == 1

    assert server.stop() == 143
    assert server.lines[-2:] == ["pxeconf: interrupted by SIGTERM; nothing "
                                 "was left that looks complete", None]
    # the ports are free again
    for kind, port in ((socket.SOCK_STREAM, server.http_port),
                       (socket.SOCK_DGRAM, server.tftp_port)):
        with socket.socket(socket.AF_INET, kind) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))     # TIME_WAIT is no holder


def test_a_restart_keeps_the_journals_state(serve, site, tmp_path):
    server = serve()
    server.ready()
    own = macaddr.pxelinux_name(MAC)
    config = tftp_get("127.0.0.1", server.tftp_port, own, tmp_path / "own")
    lease = LEASE.search(config.decode()).group(1)
    assert _report(server, "started", lease).returncode == 0
    assert server.stop() == 143
    again = serve()
    again.ready()
    assert again.machines()[MAC]["state"] == "started"
    # the lease survives the restart: its ending is taken
    assert _report(again, "failed", lease, "--exit=5").returncode == 0
    machine = again.machines()[MAC]
    assert machine["state"] == "failed" and machine["result"]["exit"] == 5
    assert again.stop(signal_int()) == 130


def _machine_cmdline(server, tmp_path):
    """The kernel command line the machine's pxelinux config gives (its
    APPEND words) in a file, as the environment reads /proc/cmdline."""
    config = tftp_get("127.0.0.1", server.tftp_port,
                      macaddr.pxelinux_name(MAC), tmp_path / "own")
    assert config is not None, server.text()
    words = [line.split(None, 1)[1] for line in config.decode().splitlines()
             if line.strip().startswith("APPEND ")][0]
    assert "rd.job=" in words and "rd.pxeconf.lease=" in words
    cmdline = tmp_path / "cmdline"
    cmdline.write_text(f"quiet {words}\n")
    return cmdline


def test_a_job_fetch_that_fails_first_is_tried_again_before_started(
        serve, site, tmp_path):
    # The server is down at the environment's first fetch of the job (a
    # restart), up again at a later try: the job is fetched, then started.
    server = serve()
    server.ready()
    cmdline = _machine_cmdline(server, tmp_path)
    assert server.stop() == 143
    job = tmp_path / "job"
    env = subprocess.Popen(
        [sys.executable, "-m", "pxeconf", "report", "started",
         f"--fetch={job}", f"--kernel-cmdline={cmdline}"],
        cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        first = env.stderr.readline()
        assert "jobs/restore.sh" in first and "refused" in first and \
            first.endswith("trying again in 1 s\n"), first
        again = serve(http_port=server.http_port, tftp_port=server.tftp_port)
        again.ready()
        rest = env.communicate(timeout=120)[1]
    finally:
        if env.poll() is None:
            env.kill()
            env.wait()
    assert env.returncode == 0, first + rest
    assert job.read_bytes() == \
        (site.parent / "boot/jobs/restore.sh").read_bytes()
    assert again.machines()[MAC]["state"] == "started"


def test_a_job_the_server_does_not_have_is_failed_not_started(
        serve, site, tmp_path):
    server = serve()
    server.ready()
    cmdline = _machine_cmdline(server, tmp_path)
    (site.parent / "boot/jobs/restore.sh").unlink()
    result = subprocess.run(
        [sys.executable, "-m", "pxeconf", "report", "started",
         f"--fetch={tmp_path / 'job'}", f"--kernel-cmdline={cmdline}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.endswith("HTTP 404 jobs/restore.sh: not found; "
                                  "reported failed\n") \
        and len(result.stderr.splitlines()) == 1, result.stderr
    machine = server.machines()[MAC]
    assert machine["state"] == "failed", server.text()
    assert any("job not fetched" in line and "404" in line
               for line in machine["log"]), machine
    assert not (tmp_path / "job").exists()


def signal_int():
    import signal
    return signal.SIGINT


def test_the_token_is_made_once_0600_and_printed_once(serve, site):
    server = serve()
    server.ready()
    token_file = site.parent / "state" / "token"
    token = token_file.read_text().strip()
    assert os.stat(token_file).st_mode & 0o777 == 0o600
    assert sum(token in line for line in server.lines if line) == 1
    assert server.stop() == 143
    again = serve()
    again.ready()
    assert token not in again.text()
    assert "console token read from" in again.text()
    denied = curl(f"{again.url}api/machines/{MAC}/local", "-X", "POST",
                  "-o", "/dev/null", "-w", "%{http_code}")
    assert denied.stdout == b"401"
    allowed = curl(f"{again.url}api/machines/{MAC}/local", "-X", "POST",
                   "-H", f"Authorization: Bearer {token}", "-o", "/dev/null",
                   "-w", "%{http_code}")
    assert allowed.stdout == b"200"
    assert again.machines()[MAC]["state"] == "local"


def test_a_token_file_inside_the_boot_root_is_refused(site):
    """It was served to anyone: curl got the console token."""
    result = subprocess.run(
        [sys.executable, "-m", "pxeconf", "serve", "--listen=127.0.0.1",
         "--http-port=0", "--tftp-port=0", f"--site={site}",
         f"--token-file={site.parent / 'boot' / 'tok'}"],
        cwd=ROOT, capture_output=True, timeout=60)
    assert result.returncode == 3
    assert b"inside the boot root" in result.stderr
    assert not (site.parent / "boot" / "tok").exists()


def test_a_token_file_given_is_used(serve, site, tmp_path):
    token_file = tmp_path / "given-token"
    server = serve(f"--token-file={token_file}")
    server.ready()
    token = token_file.read_text().strip()
    assert len(token) >= 16 and os.stat(token_file).st_mode & 0o777 == 0o600
    assert not (site.parent / "state" / "token").exists()


@pytest.mark.parametrize("kind", ["http", "tftp"])
def test_a_taken_port_is_busy_exit_9_naming_it(serve, kind):
    family = socket.SOCK_STREAM if kind == "http" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, family) as taken:
        taken.bind(("127.0.0.1", 0))
        if kind == "http":
            taken.listen()
        port = taken.getsockname()[1]
        server = serve(**{f"{kind}_port": port})
        code = server.proc.wait(60)
        server.close()
    assert code == 9, server.text()
    errors = [line for line in server.lines if line and "error" in line]
    assert len(errors) == 1 and str(port) in errors[0], server.text()


def test_listen_must_be_explicit(serve):
    server = serve(address="0.0.0.0")
    assert server.proc.wait(60) == 2
    server.close()
    assert "explicit address" in server.text()


def test_an_edit_of_the_site_file_is_served_without_a_restart(
        serve, site, tmp_path):
    server = serve()
    server.ready()
    other = "52:54:00:aa:bb:cc"
    result = subprocess.run(
        [sys.executable, "-m", "pxeconf", "host", "add", other,
         "--job=restore", "--once", "--name=pc02", f"--site={site}"],
        cwd=ROOT, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    server.wait_for("reloaded")
    config = tftp_get("127.0.0.1", server.tftp_port,
                      macaddr.pxelinux_name(other), tmp_path / "other")
    assert config is not None and LEASE.search(config.decode())
    assert server.machines()[other]["name"] == "pc02"
    # a broken edit keeps the last good site, and says why
    site.write_text(site.read_text() + "\n[host nonsense]\n")
    server.wait_for("did not load")
    assert server.proc.poll() is None
    assert server.machines()[other]["state"] == "assigned"
    # one that loads but whose configs are refused: the same
    site.write_text(site.read_text().replace(
        "[host nonsense]\n", "").replace(
        "script = jobs/restore.sh", "script = jobs/restore.sh\n"
        "cmdline = quiet ${x}"))
    server.wait_for("configs cannot be written")
    assert "${x}" not in (site.parent / "boot/boot.ipxe").read_text()
    assert server.proc.poll() is None
    assert server.stop() == 143


def test_status_api_answers_json(serve):
    server = serve()
    server.ready()
    got = curl(server.url + "api/machines")
    body = json.loads(got.stdout)
    assert body["jobs"] == ["restore"] and "local" in body["entries"]


def test_a_job_given_to_a_machine_the_site_does_not_name(serve, site,
                                                         tmp_path):
    """It gets files of its own (it got a 404 and the menu), and loses
    them when the job is cancelled (they booted the dead lease again)."""
    server = serve()
    server.ready()
    token = (site.parent / "state" / "token").read_text().strip()
    stranger = "52:54:00:de:ad:01"
    own = site.parent / "boot" / macaddr.ipxe_name(stranger)
    seen = curl(f"{server.url}{macaddr.ipxe_name(stranger)}?platform=pcbios",
                "-o", "/dev/null", "-w", "%{http_code}")
    assert seen.stdout == b"404"
    auth = ["-H", f"Authorization: Bearer {token}", "-o", "/dev/null",
            "-w", "%{http_code}", "-X", "POST"]
    assigned = curl(f"{server.url}api/machines/{stranger}/assign", *auth,
                    "-H", "Content-Type: application/json",
                    "--data", '{"job": "restore", "once": true}')
    assert assigned.stdout == b"200"
    assert LEASE.search(own.read_text())
    cancelled = curl(f"{server.url}api/machines/{stranger}/cancel", *auth)
    assert cancelled.stdout == b"200"
    assert not own.exists()
    assert server.stop() == 143
