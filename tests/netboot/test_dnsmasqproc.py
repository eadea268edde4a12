"""dnsmasq as a child (dnsmasqproc) inside a network namespace of the
test's own, with a veth pair: started, its words forwarded, stopped with
its pid gone, its death noticed with status and last words, and a DHCP
port already taken told in one line."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests import netns

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.needs("dnsmasq", "ip", root=True)

CONFIG = f"""port=0
interface=v0
dhcp-range={netns.NETWORK.split('/')[0]},proxy
pxe-service=x86PC,"test",pxelinux
"""
# Not bind-interfaces: with it dnsmasq binds port 67 per interface
# (SO_BINDTODEVICE) and a second one on the same interface starts too.


class Driver:
    def __init__(self, ns, tmp_path, name="a"):
        conf = tmp_path / f"{name}.in"
        conf.write_text(CONFIG)
        self.proc = subprocess.Popen(
            netns.inside(ns, [sys.executable, "-m",
                              "tests.netboot.dnsmasq_driver", conf,
                              tmp_path / f"{name}.conf"]),
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True)
        self.events = []

    def until(self, key, words=None):
        for line in self.proc.stdout:
            event = json.loads(line)
            self.events.append(event)
            if "error" in event or key in event and (
                    words is None or words in event[key]):
                return event
        raise AssertionError(f"the driver ended: {self.events}")

    def stop(self):
        self.proc.stdin.write("stop\n")
        self.proc.stdin.flush()
        return self.until("stopped")

    def close(self):
        """Stop the driver, and any dnsmasq it started that outlived it."""
        if self.proc.poll() is None:
            try:
                self.stop()
            except (AssertionError, OSError):
                pass
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)
        for event in self.events:
            if "started" in event and netns.alive(event["started"]):
                subprocess.run(["kill", str(event["started"])])


@pytest.fixture
def ns():
    with netns.namespace() as name:
        yield name


def test_started_forwarded_and_stopped_with_its_pid_gone(ns, tmp_path):
    driver = Driver(ns, tmp_path)
    try:
        pid = driver.until("started")["started"]
        driver.until("log", "proxy on subnet")
        assert netns.alive(pid)
        assert driver.stop() == {"stopped": True}
        assert not netns.alive(pid)
    finally:
        driver.close()
    logs = [e["log"] for e in driver.events if "log" in e]
    assert any(line.startswith("dnsmasq: started, version") for line in logs)
    assert any("proxy on subnet 10.77.0.0" in line for line in logs), logs
    assert not any("died" in e for e in driver.events)
    assert (tmp_path / "a.conf").read_text() == CONFIG


def test_a_killed_dnsmasq_is_noticed_with_its_status(ns, tmp_path):
    driver = Driver(ns, tmp_path)
    try:
        pid = driver.until("started")["started"]
        driver.until("log", "proxy on subnet")
        subprocess.run(["kill", "-KILL", str(pid)], check=True)
        died = driver.until("died")
        assert died["kind"] == "ToolError"
        assert died["died"].startswith("dnsmasq was killed by SIGKILL while "
                                       "serving: ")
        assert "proxy on subnet" in died["died"]
        assert driver.until("stopped")
    finally:
        driver.close()


def test_a_taken_dhcp_port_is_busy_in_one_line(ns, tmp_path):
    first = Driver(ns, tmp_path, "first")
    try:
        first.until("started")
        second = Driver(ns, tmp_path, "second")
        try:
            error = second.until("error")
        finally:
            second.close()
        assert error["kind"] == "BusyError", second.events
        assert error["error"].startswith("dnsmasq: port 67 (DHCP) is taken")
        assert "\n" not in error["error"]
        first.stop()
    finally:
        first.close()
