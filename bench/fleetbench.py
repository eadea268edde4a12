"""The fleet rows of the benchmark (issue 17), on disk (a)'s image
(bench/fleetdisks.py):

1. Over the network, on the bench's own bridge (bench/fleetnet.py: a
   server namespace and 4 receiver namespaces; the server's link
   rate-limited by tc tbf unless --fleet-rate=0): `rdeploy multicast send`
   to 4 `rdeploy multicast receive` at once, against one `rdeploy restore
   http://...` from `pxeconf serve` (the project's own HTTP server,
   sendfile) on the same bridge, and 4 such HTTP restores at once.  Each
   receiver's time runs from its launch to its exit (the sender is
   launched just before the receivers), so it includes starting Python
   and joining; per-receiver throughput is the image's bytes over it.
   Every restored disk is checked: its content digest equals that of a
   local restore of the image.
2. Delta restore against full restore of the same image onto copies of a
   disk that differs from it in a few files (time, CPU, and the bytes
   written as the kernel counts them; the delta's own summary beside).
   The two results must be the same bytes.

Rows in alternation, the order rotating each round; medians.  The page
cache is dropped before every delta and full restore run (their reads of
the target and of the image are cold), unless --warm; for the network
rows the image is read into the cache first (the network is measured).
"""

import os
import shutil
import statistics
import subprocess
import sys
import threading
import time

import fleetdisks
from fleetnet import Lan
from fleetrun import ROOT, Run, find_key
from measure import drop_caches, machine, preread

from diskimage.host.tools import tool_env

RDEPLOY = [sys.executable, "-m", "rdeploy"]

BEGIN = "<!-- bench-fleet:begin (written by bench/run.py; do not edit) -->"
END = "<!-- bench-fleet:end -->"
RECEIVERS = 4
HTTP_PORT = 8080
MCAST_PORT = 9000
MB = 1e6
ROWS = ("multicast", "http-1", "http-4")
TITLES = {"multicast": f"multicast (udpcast) to {RECEIVERS} receivers",
          "http-1": "unicast HTTP restore, one receiver alone",
          "http-4": f"unicast HTTP restores, {RECEIVERS} at once",
          "full": "rdeploy restore (full)",
          "delta": "rdeploy restore --delta"}

SITE = """\
# the fleet benchmark's site: pxeconf serve as the image's HTTP server
[site]
root = boot
timeout = 3
default = local
retries = 1
fallback = local

[menu local]
label = Boot from the local disk
local = yes
"""


def missing():
    """Why the fleet rows cannot run here, or None."""
    path = tool_env()["PATH"]
    lacking = [t for t in ("ip", "tc", "udp-sender", "udp-receiver",
                           "mkfs.ext4", "e2fsck", "losetup", "mount")
               if not shutil.which(t, path=path)]
    if os.geteuid() != 0:
        lacking.append("root (namespaces, loop devices, mounts)")
    return ", ".join(lacking) or None


class HttpServer:
    """pxeconf serve in the server namespace, its boot root holding the
    image (a hard link); its stderr drained by a thread."""

    def __init__(self, lan, image, work):
        top = os.path.join(work, "fleet-root")
        boot = os.path.join(top, "boot")
        os.makedirs(boot, exist_ok=True)
        served = os.path.join(boot, os.path.basename(image))
        if os.path.exists(served):
            os.unlink(served)
        os.link(image, served)
        site = os.path.join(top, "pxeconf.site")
        with open(site, "w") as f:
            f.write(SITE)
        address = lan.address(lan.server)
        self.url = f"http://{address}:{HTTP_PORT}/{os.path.basename(image)}"
        self.proc = lan.start(lan.server, [
            sys.executable, "-m", "pxeconf", "serve", f"--listen={address}",
            f"--http-port={HTTP_PORT}", "--tftp-port=6969", f"--site={site}"],
            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True)
        self.lines, self.ready = [], threading.Event()
        threading.Thread(target=self._drain, daemon=True).start()
        if not self.ready.wait(60):
            raise RuntimeError("pxeconf serve did not start: " +
                               " / ".join(self.lines[-5:]))

    def _drain(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip())
            del self.lines[:-50]
            if "pxeconf: serving " in line:
                self.ready.set()
        self.ready.set()


def _multicast(lan, image, targets, rate, log):
    send = [*RDEPLOY, "multicast", "send", image,
            f"--min-receivers={len(targets)}", "--max-wait=60",
            "--interface=eth0", f"--port={MCAST_PORT}", "--quiet"]
    if rate:
        send.append(f"--rate={rate}")
    sender = Run(send, log, ns=lan.server)
    receivers = [Run([*RDEPLOY, "multicast", "receive", target,
                      "--interface=eth0", f"--port={MCAST_PORT}",
                      "--wait=60", "--yes", "--quiet"], log, ns=ns)
                 for ns, target in zip(lan.receivers, targets)]
    got = [r.wait() for r in receivers]
    return got, sender.wait(60)


def _http(lan, url, targets, log):
    runs = [Run([*RDEPLOY, "restore", url, target, "--yes", "--quiet"], log,
                ns=ns) for ns, target in zip(lan.receivers, targets)]
    return [r.wait() for r in runs], None


def network_rows(image, work, rounds, rate_mbit, say, log):
    """{row: {"samples": [Sample per receiver per round], "sender":
    [Sample], "failed": [why]}} of the three network rows."""
    reference = os.path.join(work, "fleet-reference.img")
    fleetdisks.rdeploy("restore", image, reference, "--yes", "-q")
    want = fleetdisks.content_digest(reference)
    os.unlink(reference)
    targets = [os.path.join(work, f"fleet-r{i}.img")
               for i in range(RECEIVERS)]
    results = {row: {"samples": [], "sender": [], "failed": []}
               for row in ROWS}
    # udp-sender's --max-bitrate just under the link's rate: the bucket
    # then queues, never drops (a sender above it loses and resends)
    rate = int(rate_mbit * 0.9) if rate_mbit else 0
    with Lan(RECEIVERS, rate_mbit) as lan:
        server = HttpServer(lan, image, work)
        for rnd in range(rounds):
            order = ROWS[rnd % 3:] + ROWS[:rnd % 3]
            for row in order:
                for t in targets:
                    if os.path.exists(t):
                        os.unlink(t)
                preread(image, 1 << 62)
                if row == "multicast":
                    got, sender = _multicast(lan, image, targets, rate, log)
                else:
                    got, sender = _http(lan, server.url, targets[:1] if
                                        row == "http-1" else targets, log)
                res = results[row]
                bad = [s.why() for s in got if s.code] + \
                    ([f"sender: {sender.why()}"] if sender and sender.code
                     else [])
                for s, t in zip(got, targets):
                    if not s.code and fleetdisks.content_digest(t) != want:
                        bad.append(f"{t}: restored content differs")
                if bad:
                    res["failed"].append(bad[0])
                    say(f"  round {rnd + 1}/{rounds}: {TITLES[row]} "
                        f"failed: {bad[0]} (log: {log})")
                    continue
                res["samples"] += got
                if sender:
                    res["sender"].append(sender)
                say(f"  round {rnd + 1}/{rounds}: {TITLES[row]}: " +
                    ", ".join(f"{s.wall:.2f}" for s in got) + " s")
        results["tc_drops"] = lan.tc_drops()
    for t in targets:
        if os.path.exists(t):
            os.unlink(t)
    return results


def delta_rows(image, changed, work, rounds, warm, say, log):
    """{"full"|"delta": {"samples": [Sample], "failed": [why]}}, and
    whether every delta result equalled the full restore's."""
    target = os.path.join(work, "fleet-target.img")
    results = {row: {"samples": [], "failed": []} for row in ("full",
                                                               "delta")}
    digests = {}
    for rnd in range(rounds):
        order = ("full", "delta") if rnd % 2 == 0 else ("delta", "full")
        for row in order:
            fleetdisks.copy_disk(changed, target)
            if warm:
                preread(image, 1 << 62)
                preread(target, 1 << 62)
            else:
                drop_caches()
            argv = [*RDEPLOY, "restore", image, target, "--yes",
                    "--progress=json", "--quiet"]
            if row == "delta":
                argv.insert(3, "--delta")
            s = Run(argv, log).wait()
            if s.code:
                results[row]["failed"].append(s.why())
                say(f"  round {rnd + 1}/{rounds}: {TITLES[row]} failed: "
                    f"{s.why()} (log: {log})")
                continue
            digests.setdefault(row, set()).add(
                fleetdisks.content_digest(target))
            results[row]["samples"].append(s)
            say(f"  round {rnd + 1}/{rounds}: {TITLES[row]}: {s.wall:.2f} s,"
                f" wrote {s.written / MB:.1f} MB")
    if os.path.exists(target):
        os.unlink(target)
    same = None
    if digests.get("full") and digests.get("delta"):
        same = len(digests["full"] | digests["delta"]) == 1
    return results, same


def _med(values):
    return statistics.median(values) if values else None


def _f(value, fmt="{:.2f}"):
    return "-" if value is None else fmt.format(value)


def network_table(results, image_bytes, rate_mbit):
    lines = ["| row | receivers | wall s per receiver, median (min-max) | "
             "MB/s per receiver | MB/s all receivers | sender wall s | "
             "CPU s per receiver |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in ROWS:
        res = results[row]
        walls = [s.wall for s in res["samples"]]
        count = 1 if row == "http-1" else RECEIVERS
        note = f" (failed in {len(res['failed'])} round(s): " \
            f"{res['failed'][0]})" if res["failed"] else ""
        if not walls:
            lines.append(f"| {TITLES[row]}{note} | {count} | - | - | - | - "
                         f"| - |")
            continue
        wall = _med(walls)
        lines.append(
            f"| {TITLES[row]}{note} | {count} | {wall:.2f} ({min(walls):.2f}"
            f"-{max(walls):.2f}) | {image_bytes / MB / wall:.1f} | "
            f"{count * image_bytes / MB / wall:.1f} | "
            f"{_f(_med([s.wall for s in res['sender']]))} | "
            f"{_f(_med([s.cpu for s in res['samples']]))} |")
    link = f"the server's link limited to {rate_mbit} Mbit/s by tc tbf " \
        f"({rate_mbit / 8:.0f} MB/s; multicast sent with --rate=" \
        f"{int(rate_mbit * 0.9)}; the bucket dropped {results['tc_drops']} " \
        f"packets over the whole run)" if rate_mbit else \
        "no rate limit (veth pairs on a bridge: CPU-bound)"
    return lines, link


def delta_table(results, same, what):
    full = _med([s.written for s in results["full"]["samples"]])
    lines = ["| row | wall s | CPU s | written MB (kernel count) | of the "
             "full restore's | rdeploy's delta summary |",
             "| --- | ---: | ---: | ---: | ---: | --- |"]
    for row in ("full", "delta"):
        res = results[row]
        samples = res["samples"]
        note = f" (failed in {len(res['failed'])} round(s): " \
            f"{res['failed'][0]})" if res["failed"] else ""
        if not samples:
            lines.append(f"| {TITLES[row]}{note} | - | - | - | - | - |")
            continue
        written = _med([s.written for s in samples])
        delta = find_key(samples[-1].summary, "delta") or {}
        told = ", ".join(f"{k} {v / MB:.1f} MB" if k in ("read", "compared",
                                                          "written")
                         else f"{k} {v}" for k, v in delta.items()
                         if isinstance(v, (int, float))) or "-"
        lines.append(
            f"| {TITLES[row]}{note} | {_med([s.wall for s in samples]):.2f} "
            f"| {_med([s.cpu for s in samples]):.2f} | {written / MB:.1f} | "
            f"{_f(full and 100 * written / full, '{:.1f} %')} | {told} |")
    verdict = {None: "not compared (a row failed)",
               True: "the same bytes (content digest) in every round",
               False: "DIFFERENT bytes: a bug"}[same]
    return lines + ["", f"- The disk restored onto differs from the image in "
                    f"{what['files']} files ({what['bytes'] / MB:.1f} MB of "
                    f"file data written into its ext4); delta and full "
                    f"results: {verdict}."]


def section(disk, work, rounds, rate_mbit, warm, say, keep=False, seed=1):
    """The fleet section's Markdown lines (rows run in `work`; the tools'
    stderr in fleet-tools.log there, kept when a row failed or `keep`)."""
    log = os.path.join(work, "fleet-tools.log")
    if os.path.exists(log):
        os.unlink(log)
    began = time.monotonic()
    image, changed, what = fleetdisks.prepare(disk, work, seed)
    image_bytes = os.path.getsize(image)
    try:
        say("fleet: multicast and HTTP on a bridge")
        net = network_rows(image, work, rounds, rate_mbit, say, log)
        say("fleet: delta restore against full restore")
        delta, same = delta_rows(image, changed, work, rounds, warm, say,
                                 log)
    finally:
        if not keep:
            fleetdisks.clean(work)
    failed = any(res["failed"] for res in
                 [net[row] for row in ROWS] + list(delta.values()))
    if not keep and not failed and os.path.exists(log):
        os.unlink(log)
    net_lines, link = network_table(net, image_bytes, rate_mbit)
    return [
        "### Fleet: multicast against unicast HTTP, on one bridge", "",
        f"Disk (a)'s image ({image_bytes / MB:.0f} MB, "
        f"{disk['size'] / (1 << 30):.2f} GiB disk) restored by {RECEIVERS} "
        f"receivers, each in its own network namespace onto its own disk "
        f"file; {link}.  {rounds} round(s), rows in alternation; every "
        f"restored disk checked against a local restore.", ""] + \
        net_lines + [
        "", "### Fleet: delta restore against full restore", "",
        "The same image laid onto copies of a disk that differs from it in "
        f"a few files; {'warm' if warm else 'page cache dropped before every run'}"
        f"; {rounds} round(s) in alternation; medians.", ""] + \
        delta_table(delta, same, what) + [
        "", f"- The fleet rows took {(time.monotonic() - began) / 60:.1f} "
        f"minutes, building the image and the changed disk included.", ""]


def render(lines, started, command, begin=BEGIN, end=END, what="fleet"):
    m = machine()
    return "\n".join([
        begin, "", f"Run of {started} UTC.", "",
        f"- Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB "
        f"memory, {m['kernel']}; load average at the end of the {what} "
        f"rows: {', '.join(f'{x:.2f}' for x in m['load'])}",
        f"- Command: `{command}`", ""] + lines + [end]) + "\n"
