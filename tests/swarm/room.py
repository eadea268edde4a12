"""A room for the swarm tests: a server on subnet A and receivers on
subnets A and B, joined by a router (tests/routed.py), links shaped by tc
so that the server's uplink is the bottleneck of a unicast restore.

    with Room(on_a=5, on_b=4, server_mbit=80, host_mbit=80,
              links={8: 10}) as room:          (receiver 8: 10 Mbit/s)
        torrent, web, seeder = room.serve(image, folder)
                                              prepare, then a RangeServer of
                                              folder in the server's
                                              namespace (.sent) and rdeploy
                                              swarm seed, tracker on
        rx = room.receive(i, torrent, disk)   rdeploy swarm receive
        room.restore(i, url, disk)            rdeploy restore URL
        room.multicast_send(image, n) / room.multicast_receive(i, disk)
        room.wait(runs)                       exit codes

Every command is a tests/fleet/room.py Run (--progress=json: its events
read on a thread).  The server is A.1 (web seed on port 8080, seeder on
6881, opentracker on 6969); receiver i is the i-th of A.11.. then B.11..
"""

import os

from tests import netns
from tests.fleet.room import Run
from tests.rangeserver import RangeServer
from tests.rdeploy_helpers import rdeploy
from tests.routed import Routed

WEB_PORT, SEED_PORT, TRACKER_PORT, PEER_PORT, MCAST_PORT = \
    8080, 6881, 6969, 6881, 9000


class Room:
    def __init__(self, on_a=4, on_b=4, *, server_mbit=80, host_mbit=80,
                 subnets=("192.168.81", "192.168.82"), links=None):
        """`links`: {receiver index: Mbit/s both ways} for the receivers
        whose links are not `host_mbit` (a slow machine)."""
        self.net = Routed(subnets, server_mbit=server_mbit,
                          host_mbit=host_mbit)
        self.servers = []
        links = links or {}
        try:
            self.server = self.net.host(0, "srv", 1)
            self.receivers = [self.net.host(0, f"a{i}", 11 + i,
                                            links.get(i))
                              for i in range(on_a)] + \
                [self.net.host(1, f"b{i}", 11 + i, links.get(on_a + i))
                 for i in range(on_b)]
        except BaseException:
            self.net.close()
            raise
        self.on_a = on_a

    @property
    def server_address(self):
        return self.net.address(self.server)

    def address(self, i):
        return self.net.address(self.receivers[i])

    def subnet_of(self, i):
        return "A" if i < self.on_a else "B"

    def urls(self):
        """prepare's options that point a torrent at this room's server:
        its web seed (a folder URL: NAME.raw appended), tracker, peer."""
        host = self.server_address
        return [f"--web-seed=http://{host}:{WEB_PORT}/",
                f"--tracker=http://{host}:{TRACKER_PORT}/announce",
                f"--peer={host}:{SEED_PORT}"]

    def serve(self, image, folder):
        """The server side of a swarm: `rdeploy swarm prepare` of `image`
        into `folder` (lab.torrent and lab.raw, pointing at this room's
        server), the image hard-linked beside them (lab.rdi, for unicast
        restores), the web seed of `folder` and the seeder, ready.
        Returns (torrent, web seed, seeder Run)."""
        torrent = os.path.join(folder, "lab.torrent")
        result = rdeploy("swarm", "prepare", image, "-o", torrent, "-q",
                         *self.urls())
        if result.returncode:
            raise AssertionError(result.stderr.decode())
        os.link(image, os.path.join(folder, "lab.rdi"))
        web = self.web_seed(folder)
        seeder = self.seed(torrent)
        seeder.until(lambda r: r.of("ready"), what="the seeder ready")
        return torrent, web, seeder

    def web_seed(self, folder, **kw):
        """tests/rangeserver.py serving `folder` inside the server's
        namespace (its `sent` counts the body bytes it sent)."""
        server = netns.call_in(self.server, RangeServer, folder,
                               host=self.server_address, port=WEB_PORT, **kw)
        self.servers.append(server)
        return server

    def _run(self, ns, args):
        return Run(self.net.lan_of(ns), ns, args)

    def seed(self, *torrents, tracker=True, options=()):
        args = ["swarm", "seed", *torrents, "--progress=json",
                f"--listen={self.server_address}:{SEED_PORT}", *options]
        if tracker:
            args.append(f"--run-tracker={TRACKER_PORT}")
        return self._run(self.server, args)

    def receive(self, i, source, target, *options):
        return self._run(self.receivers[i], [
            "swarm", "receive", source, target, "--yes", "--progress=json",
            f"--listen={self.address(i)}:{PEER_PORT}", *options])

    def restore(self, i, url, target, *options):
        return self._run(self.receivers[i], [
            "restore", url, target, "--yes", "--progress=json", *options])

    def multicast_send(self, image, receivers, *options):
        return self._run(self.server, [
            "multicast", "send", image, f"--min-receivers={receivers}",
            "--max-wait=60", "--interface=eth0", f"--port={MCAST_PORT}",
            "--progress=json", *options])

    def multicast_receive(self, i, target, *options):
        return self._run(self.receivers[i], [
            "multicast", "receive", target, "--interface=eth0",
            f"--port={MCAST_PORT}", "--wait=60", "--yes", "--progress=json",
            *options])

    def sent_by_server(self):
        """Bytes out of the server's shaped uplink so far (with headers)."""
        return self.net.sent(self.server)

    def pids(self, ns):
        return netns.pids(ns)

    def close(self):
        """The in-process servers, the processes the test started, then
        anything still inside the room's namespaces (only the test's own:
        an opentracker left by a broken seeder), then the namespaces."""
        for server in self.servers:
            server.stop()
        self.servers = []
        for lan in self.net.lans:
            lan.procs, started = [], lan.procs
            for proc in reversed(started):
                netns.stop(proc)
        netns.kill_left([self.server, *self.receivers])
        self.net.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def blank_disks(folder, count, size, prefix="pc"):
    """`count` sparse disk files of `size` zeros, for the receivers."""
    paths = []
    for i in range(count):
        path = os.path.join(folder, f"{prefix}{i}.img")
        with open(path, "wb") as f:
            f.truncate(size)
        paths.append(path)
    return paths
