"""Two subnets joined by a router, made of network namespaces (two
tests/netns.py Lans): what a site with labs on several segments looks
like, where multicast stays on its segment and unicast (TCP) is routed.

    with Routed(("192.168.81", "192.168.82"), server_mbit=80,
                host_mbit=80) as net:
        server = net.host(0, "srv", 1)     # subnet A, .1
        a = net.host(0, "rx0", 11)         # subnet A
        b = net.host(1, "rx4", 11)         # subnet B, through the router
        net.address(server)                "192.168.81.1"
        net.lans[0].start(ns, args)        a process inside a namespace

The router is a namespace with a leg on each bridge (SUBNET.254 on both),
net.ipv4.ip_forward on inside it only; every host's default route points
at it.  Links are full duplex with a token bucket (tc tbf) each way:
`server_mbit` on the first host's (the server's) uplink, `host_mbit` on
every other host's uplink and on every host's downlink (the bridge's port
towards it), as the ports of one switch; 0 for no limit.  The router's
legs are not limited.  Every address lives only inside the namespaces;
close() (or the context manager) stops what was started and deletes the
namespaces, whatever happened.
"""

from tests import netns

ROUTER = 254


class Routed:
    def __init__(self, subnets=("192.168.81", "192.168.82"), *,
                 server_mbit=0, host_mbit=0):
        self.server_mbit, self.host_mbit = server_mbit, host_mbit
        self.lans, self.hosts = [], {}
        try:
            for subnet in subnets:
                self.lans.append(netns.Lan(subnet))
            first = self.lans[0]
            self.router = first._namespace("router")
            for i, lan in enumerate(self.lans):
                lan.plug(self.router, ROUTER, f"eth{i}", "router")
            first.run(self.router, ["sysctl", "-q", "-w",
                                    "net.ipv4.ip_forward=1"])
        except BaseException:
            self.close()
            raise

    def host(self, subnet, role, number, mbit=None):
        """A host namespace on subnet `subnet` (index into `subnets`),
        eth0 = SUBNET.number, its default route through the router, its
        links shaped (the first host made is the server); `mbit`, when
        given, shapes this host's links both ways instead (a slow
        machine)."""
        lan = self.lans[subnet]
        ns = lan.host(role, number)
        lan.run(ns, ["ip", "route", "add", "default", "via",
                     lan.address(ROUTER)])
        up = self.server_mbit if not self.hosts else self.host_mbit
        down = self.host_mbit
        if mbit is not None:
            up = down = mbit
        self.hosts[ns] = (lan, number, f"p-{role}"[:15])
        if up:
            netns.shape(ns, "eth0", up)
        if down:
            netns.shape(lan.bridge_ns, self.hosts[ns][2], down)
        return ns

    def address(self, ns):
        lan, number, _ = self.hosts[ns]
        return lan.address(number)

    def lan_of(self, ns):
        return self.hosts[ns][0]

    def start(self, ns, args, **kw):
        """A process inside host `ns`, stopped by close()."""
        return self.lan_of(ns).start(ns, args, **kw)

    def sent(self, ns):
        """Bytes host `ns` has sent so far, as its uplink's qdisc counts
        them (packets with their headers; 0 when its uplink is not
        shaped)."""
        lan, _, _ = self.hosts[ns]
        try:
            return netns.shaped_bytes(ns, "eth0")
        except (ValueError, IndexError):
            return 0

    def close(self):
        for lan in reversed(self.lans):
            lan.close()
        self.lans = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
