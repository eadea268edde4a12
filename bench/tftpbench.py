"""The TFTP case of the benchmark: one file (64 MiB of random bytes) fetched
from the built-in server (diskimage.netboot.tftp), dnsmasq's TFTP and
tftpd-hpa's in.tftpd, with the same client each time:

- curl, blksize 1428 (curl has no windowsize option: one block per ACK);
- atftp, blksize 1428 and windowsize 64 (the largest tftpd-hpa's own
  client code takes; a server that does not know the option leaves it out
  of its OACK and sends one block per ACK).

dnsmasq's TFTP listens on port 69 only, so everything runs inside a network
namespace of its own (loopback only, MTU 65536), which the run creates and
deletes: needs root.  Servers in alternation, the order rotating each
round; the file is in the page cache (TFTP's cost is the protocol, not the
disk); every fetch is checked byte for byte (sha256) and failed if not.

tftpd-hpa's package starts a service when installed, so `make bench`
unpacks it (and libwrap0) into $BENCH_TOOLS (.venv/bench-tools) instead;
an installed in.tftpd is used first.

    python bench/tftpbench.py serve ROOT ADDRESS PORT   # the built-in
        server as its own process (prints "ready" once bound)
"""

import glob
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [HERE, ROOT]     # this tree's library, also as a script

from measure import Pipe, StepFailed, machine, preread, run_steps  # noqa: E402

from diskimage.host.tools import tool_env  # noqa: E402
SIZE = 64 << 20
FILE = "bench-64m.bin"
BLKSIZE = 1428
WINDOW = 64
CACHE = os.path.join(ROOT, os.environ.get("BENCH_TOOLS",
                                          ".venv/bench-tools"))
PORTS = {"built-in (pxeconf)": 6969, "dnsmasq": 69, "tftpd-hpa": 6970}
OURS = "built-in (pxeconf)"


def _which(tool):
    return shutil.which(tool, path=tool_env()["PATH"])


def in_tftpd():
    """(argv0, extra environment) of tftpd-hpa's server, or None."""
    found = _which("in.tftpd")
    if found:
        return found, {}
    cached = os.path.join(CACHE, "usr", "sbin", "in.tftpd")
    if os.path.exists(cached):
        libs = glob.glob(os.path.join(CACHE, "usr", "lib", "*-linux-gnu"))
        return cached, {"LD_LIBRARY_PATH": ":".join(libs)}
    return None


def missing():
    """Why the TFTP case cannot run here, or None."""
    lacking = [t for t in ("ip", "dnsmasq", "curl", "atftp")
               if not _which(t)]
    if in_tftpd() is None:
        lacking.append("in.tftpd (make bench unpacks tftpd-hpa)")
    if os.geteuid() != 0:
        lacking.append("root (a network namespace)")
    return ", ".join(lacking) or None


def _sh(*argv):
    subprocess.run([str(a) for a in argv], check=True, env=tool_env(),
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


class Namespace:
    def __init__(self):
        self.name = f"rdeploy-tftp-bench-{os.getpid()}"
        _sh("ip", "netns", "add", self.name)
        try:
            _sh("ip", "-n", self.name, "link", "set", "lo", "up")
            # in.tftpd resolves its -a address with AI_ADDRCONFIG, which
            # fails where no interface but lo has an IPv4 address (a veth
            # pair: the dummy driver is a module not every kernel has)
            _sh("ip", "-n", self.name, "link", "add", "bench0", "type",
                "veth", "peer", "name", "bench1")
            _sh("ip", "-n", self.name, "addr", "add", "192.0.2.1/24", "dev",
                "bench0")
            _sh("ip", "-n", self.name, "link", "set", "bench0", "up")
        except BaseException:
            self.delete()
            raise

    def argv(self, args):
        return ["ip", "netns", "exec", self.name] + [str(a) for a in args]

    def delete(self):
        subprocess.run(["ip", "netns", "delete", self.name], env=tool_env(),
                       stderr=subprocess.DEVNULL)


def _servers(root, tftpd, log):
    """name -> argv and environment of each server, listening on
    127.0.0.1 at PORTS[name] inside the namespace."""
    tool, env = tftpd
    return {
        OURS: ([sys.executable, os.path.join(HERE, "tftpbench.py"), "serve",
                root, "127.0.0.1", PORTS[OURS]], {}),
        "dnsmasq": (["dnsmasq", "--keep-in-foreground",
                     "--conf-file=/dev/null",
                     "--port=0", "--enable-tftp", f"--tftp-root={root}",
                     "--listen-address=127.0.0.1", "--bind-interfaces",
                     "--pid-file=", "--user=root", "--quiet-tftp",
                     f"--log-facility={log}"], {}),
        "tftpd-hpa": ([tool, "-L", "-u", "root", "-s", root, "-a",
                       f"127.0.0.1:{PORTS['tftpd-hpa']}"], env),
    }


def _client(kind, name, port, out, verbose=False):
    if kind == "curl":
        return ["curl", "-sS", "--max-time", "300", "--tftp-blksize",
                BLKSIZE, "-o", out] + (["-v"] if verbose else []) + \
            [f"tftp://127.0.0.1:{port}/{name}"]
    return ["atftp", "--option", f"blksize {BLKSIZE}", "--option",
            f"windowsize {WINDOW}", "--option", "tsize 0"] + \
        (["--trace"] if verbose else []) + \
        ["-g", "-r", name, "-l", out, "127.0.0.1", port]


CLIENTS = {"curl": f"curl, blksize {BLKSIZE} (no windowsize option)",
           "atftp": f"atftp, blksize {BLKSIZE}, windowsize {WINDOW}"}


def _granted(ns, kind, port, out):
    """The options the server granted, from the client's own verbose
    output of a small fetch."""
    proc = subprocess.run(ns.argv(_client(kind, "probe.bin", port, out,
                                          verbose=True)),
                          capture_output=True, text=True, env=tool_env(),
                          timeout=60)
    text = proc.stdout + proc.stderr
    if kind == "curl":
        got = [line.split("option=(")[1].replace(") value=(", "=")
               .rstrip(")") for line in text.splitlines()
               if "got option=(" in line]
    else:
        line = next((line for line in text.splitlines()
                     if line.startswith("received OACK")), "")
        got = [part.strip().replace(": ", "=") for part in
               line.partition("<")[2].rstrip("> \b").split(",")
               if part.strip()]
    got = [g for g in got if not g.startswith("tsize=")]
    return ", ".join(sorted(got)) or "none (no OACK)"


def _wait_ready(ns, port, out, tries=20):
    for _ in range(tries):
        proc = subprocess.run(ns.argv(["curl", "-s", "--max-time", "1", "-o",
                                       out, f"tftp://127.0.0.1:{port}/"
                                       f"probe.bin"]), env=tool_env())
        if proc.returncode == 0:
            return True
        time.sleep(0.1)
    return False


def section(work, rounds, say, keep=False):
    """Markdown lines of the TFTP case, run in `work`; its files there are
    removed at the end unless `keep` (the servers' log stays when a fetch
    failed)."""
    ns, procs, failed, clean = None, [], False, False
    root = os.path.join(work, "tftp-root")
    out = os.path.join(work, "tftp-fetched.bin")
    log = os.path.join(work, "tftp-servers.log")
    try:
        os.makedirs(root, exist_ok=True)
        os.chmod(work, 0o755)
        os.chmod(root, 0o755)
        path = os.path.join(root, FILE)
        if not os.path.exists(path) or os.path.getsize(path) != SIZE:
            with open(path + ".partial", "wb") as f:
                f.write(os.urandom(SIZE))
            os.replace(path + ".partial", path)
        with open(os.path.join(root, "probe.bin"), "wb") as f:
            f.write(b"probe\n" * 1000)
        with open(path, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
        ns = Namespace()
        logf = open(log, "ab")
        servers = _servers(root, in_tftpd(), log)
        for name, (argv, env) in servers.items():
            procs.append(subprocess.Popen(ns.argv(argv), stdout=logf,
                                          stderr=logf, env=tool_env(env),
                                          stdin=subprocess.DEVNULL))
            if not _wait_ready(ns, PORTS[name], out):
                raise StepFailed(f"{name} did not answer (see {log})")
        names = list(servers)
        granted = {(k, n): _granted(ns, k, PORTS[n], out)
                   for k in CLIENTS for n in names}
        walls = {(k, n): [] for k in CLIENTS for n in names}
        for rnd in range(rounds):
            order = names[rnd % len(names):] + names[:rnd % len(names)]
            for kind in CLIENTS:
                for name in order:
                    wall = _fetch(ns, kind, name, path, out, digest, log)
                    if wall is None:
                        failed = True
                        say(f"  round {rnd + 1}/{rounds}: tftp {kind} from "
                            f"{name} failed (its words: {log})")
                        continue
                    walls[(kind, name)].append(wall)
                    say(f"  round {rnd + 1}/{rounds}: tftp {kind} from "
                        f"{name}: {wall:.2f} s")
        clean = not failed
        return _table(walls, granted, rounds)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if ns is not None:
            ns.delete()
        if os.path.exists(out):
            os.unlink(out)
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
            if clean and os.path.exists(log):
                os.unlink(log)


def _fetch(ns, kind, name, path, out, digest, log):
    """The wall time of one fetch, or None when it failed or the file
    arrived changed."""
    preread(path, SIZE)
    try:
        sample = run_steps([Pipe([ns.argv(_client(
            kind, FILE, PORTS[name], out))])], log)
        with open(out, "rb") as f:
            same = hashlib.file_digest(f, "sha256").hexdigest() == digest
    except (StepFailed, FileNotFoundError):
        return None
    finally:
        if os.path.exists(out):
            os.unlink(out)
    return sample.wall if same else None


def _median(values):
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else \
        (values[mid - 1] + values[mid]) / 2


def _table(walls, granted, rounds):
    lines = ["### TFTP: a 64 MiB file over loopback", "",
             f"The same client fetches {FILE} ({SIZE >> 20} MiB, random) "
             f"from each server in a network namespace of its own, "
             f"{rounds} round{'s' * (rounds != 1)} in alternation, medians "
             f"shown; the file is "
             f"in the page cache and every fetch is checked (sha256).", "",
             "| client | server | options granted | wall s | MiB/s | "
             "built-in/peer wall |",
             "| --- | --- | --- | ---: | ---: | ---: |"]
    for kind, label in CLIENTS.items():
        ours = walls[(kind, OURS)] and _median(walls[(kind, OURS)])
        for (k, name), values in walls.items():
            if k != kind:
                continue
            if not values:
                lines.append(f"| {label} | {name} | {granted[(k, name)]} | "
                             f"failed | - | - |")
                continue
            wall = _median(values)
            ratio = "-" if name == OURS or not ours else f"{ours / wall:.2f}"
            note = "" if len(values) == len(walls[(kind, OURS)]) else \
                f" ({len(values)} of the rounds)"
            lines.append(f"| {label} | {name}{note} | {granted[(k, name)]} "
                         f"| {wall:.2f} | {SIZE / (1 << 20) / wall:.1f} | "
                         f"{ratio} |")
    return lines + [""]


BEGIN = "<!-- bench-tftp:begin (written by bench/run.py; do not edit) -->"
END = "<!-- bench-tftp:end -->"


def render(lines, started, elapsed, command):
    m = machine()
    return "\n".join([
        BEGIN, "", f"Run of {started} UTC, {elapsed:.0f} s.", "",
        f"- Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB "
        f"memory, {m['kernel']}; load average at the end: "
        f"{', '.join(f'{x:.2f}' for x in m['load'])}",
        f"- Command: `{command}`",
        "- built-in/peer wall < 1 means the built-in server is faster.",
        ""] + lines + [END]) + "\n"


def serve_main(root, address, port):
    from diskimage.netboot.tftp import TftpServer
    server = TftpServer(root, address, int(port), max_sessions=128)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "serve":
        serve_main(*sys.argv[2:])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
