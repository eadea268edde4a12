"""`pxeconf serve --proxy-dhcp` inside a network namespace of the test's
own (a veth pair: proxyDHCP needs an interface, and port 67 must not meet
the host's): dnsmasq runs as its child with the generated configuration,
SIGTERM stops both (the child's pid gone), a killed dnsmasq stops serve
with exit 1 and its words, a DHCP port already taken is exit 9."""

import re
import signal
import subprocess

import pytest

from tests import netns
from tests.signals import wait_for
from tests.servehelpers import Serve, make_site

pytestmark = pytest.mark.needs("dnsmasq", "ip", root=True)


@pytest.fixture
def ns():
    with netns.namespace() as name:
        yield name


@pytest.fixture
def start(ns, tmp_path):
    site = make_site(tmp_path / "site")
    servers = []

    def run(*extra):
        server = Serve(site, f"--proxy-dhcp={netns.NETWORK}", *extra,
                       address=netns.ADDRESS,
                       prefix=netns.inside(ns, []))
        servers.append(server)
        return server
    yield run
    for server in servers:
        server.close()
        for pid in _dnsmasq_pids(server):
            if netns.alive(pid):
                subprocess.run(["kill", str(pid)])


def _dnsmasq_pids(server):
    return [int(m.group(1)) for m in
            (re.search(r"dnsmasq runs as pid (\d+)", line or "")
             for line in server.lines) if m]


def test_dnsmasq_runs_with_the_generated_config_and_stops_with_serve(
        start, tmp_path):
    server = start("--interface=v0")
    server.ready()
    line = server.wait_for("dnsmasq runs as pid")
    pid = int(re.search(r"pid (\d+)", line).group(1))
    assert netns.alive(pid)
    server.wait_for("proxy on subnet 10.77.0.0")
    conf = (tmp_path / "site/state/dnsmasq.conf").read_text()
    assert "dhcp-range=10.77.0.0,proxy" in conf and "interface=v0" in conf
    assert server.stop() == 143
    assert not netns.alive(pid)


def test_a_killed_dnsmasq_stops_serve_with_exit_1_and_its_words(start):
    server = start()
    server.ready()
    line = server.wait_for("dnsmasq runs as pid")
    server.wait_for("proxy on subnet")
    pid = int(re.search(r"pid (\d+)", line).group(1))
    subprocess.run(["kill", "-KILL", str(pid)], check=True)
    assert server.proc.wait(60) == 1
    last = [line for line in server.lines if line][-1]
    assert last.startswith("pxeconf: error: dnsmasq was killed by SIGKILL "
                           "while serving: "), server.text()


def test_a_taken_dhcp_port_is_busy_exit_9(start, ns, tmp_path):
    other = tmp_path / "other.conf"
    other.write_text("port=0\ndhcp-range=10.77.0.0,proxy\n")
    holder = subprocess.Popen(netns.inside(ns, [
        "dnsmasq", "--keep-in-foreground", f"--conf-file={other}",
        "--log-facility=-", "--pid-file="]), stderr=subprocess.PIPE,
        text=True)
    try:
        for line in holder.stderr:
            if "started" in line:
                break
        server = start()
        assert server.proc.wait(60) == 9, server.text()
        errors = [line for line in server.lines if line and "error" in line]
        assert len(errors) == 1 and "port 67 (DHCP) is taken" in errors[0]
        # the TFTP and HTTP servers it had started are stopped with it
        assert "pxeconf: serving" not in server.text()
    finally:
        holder.send_signal(signal.SIGTERM)
        holder.wait(30)


def test_a_new_address_in_the_site_file_restarts_dnsmasq(start, tmp_path):
    server = start()
    server.ready()
    first = int(re.search(r"pid (\d+)",
                          server.wait_for("dnsmasq runs as pid")).group(1))
    site = tmp_path / "site/pxeconf.site"
    site.write_text(site.read_text().replace(
        "fallback = local\n", f"fallback = local\naddress = {netns.PEER}\n"))
    server.wait_for("restarting dnsmasq")
    wait_for(lambda: len(_dnsmasq_pids(server)) == 2, 60,
             "the second dnsmasq")
    pids = _dnsmasq_pids(server)
    assert len(pids) == 2 and pids[0] == first and not netns.alive(first)
    assert netns.alive(pids[1])
    assert f"pxe-service=tag:!ipxe,x86PC,\"Network boot (BIOS)\"," \
        f"pxelinux.0,{netns.PEER}" in \
        (tmp_path / "site/state/dnsmasq.conf").read_text()
    assert f"http://{netns.PEER}:{server.http_port}/" in \
        (tmp_path / "site/boot/boot.ipxe").read_text()
    assert server.stop() == 143
    assert not netns.alive(pids[1])


def test_a_killed_serve_takes_its_dnsmasq_with_it(start):
    """SIGKILL: serve cannot stop its child, the kernel does (dnsmasq was
    started with die_with_parent); the next serve starts its own."""
    server = start()
    server.ready()
    first = int(re.search(r"pid (\d+)",
                          server.wait_for("dnsmasq runs as pid")).group(1))
    server.wait_for("proxy on subnet")
    server.proc.kill()
    server.proc.wait(30)
    wait_for(lambda: not netns.alive(first), 30, "dnsmasq's end")
    again = start()
    again.ready()
    assert "left running" not in again.text()
    again.wait_for("dnsmasq runs as pid")
    assert again.stop() == 143
