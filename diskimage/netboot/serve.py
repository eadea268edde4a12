"""`pxeconf serve`: the whole PXE service in one process.

serve() loads the site file, opens the journal (jobs.Machines), writes
every loader's configs into the boot root, and runs until it is stopped:

- TFTP (tftp.TftpServer) and HTTP (httpd.HttpServer: files, the status
  API, the console page) on the listen address, each on a thread; a
  loader's request for a per-machine name (pxelinux.cfg/01-*, grub/*-*,
  ipxe/*.ipxe) tells Machines that this machine boots;
- with `proxy_net`, dnsmasq in proxyDHCP mode as a child
  (dnsmasqproc.Dnsmasq, with dnsmasqconf.proxy_config); its death stops the
  service with a ToolError naming its exit status and last words;
- with the site's `swarm-seed`, a BitTorrent seeder of those torrents on
  a thread (swarmseed.Seeding), restarted when the site changes them;
- a machine's per-machine files are written again on every change of its
  state (Machines' on_change), before the request that changed it is
  answered; the site file is read again when it changes (checked every
  second): a bad edit is logged and the service keeps the last good site;
  per-machine files of MACs no longer in the site are removed;
- SIGINT and SIGTERM (raised in the main thread by cliutil.runner) stop
  everything, the seeder and dnsmasq first.

The console token comes from `token_file` (default DIR/state/token): read
when it exists, else made, written there with mode 0600 and logged once.
A port another program holds is BusyError (exit 9) naming it.
"""

import os
import secrets
import stat
import threading
from pathlib import Path

from .. import sighold, signalsafe
from ..errors import DiskImageError, InputError
from . import (configs, console, dnsmasqconf, httpd, jobs, macaddr,
               rootpath, site as sites, swarmseed, tftp)
from .dnsmasqproc import Dnsmasq

POLL = 1.0      # seconds between two looks at the site file's stamp


def read_token(path, log):
    """The token in `path`, or a new one written there (0600) and logged
    once."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        token = secrets.token_urlsafe(24)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL |
                         os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise InputError(f"{path}: cannot write the token: "
                             f"{exc.strerror}") from None
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
        log(f"console token (printed once; kept in {path}, mode 0600): "
            f"{token}")
        return token
    except OSError as exc:
        raise InputError(f"{path}: cannot read the token: {exc.strerror}") \
            from None
    with os.fdopen(fd, encoding="utf-8", errors="replace") as f:
        mode = os.fstat(f.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise InputError(f"{path}: the token file is not a regular file")
        token = f.read(4096).strip()
    if not token or len(token) < 16 or any(c.isspace() for c in token):
        raise InputError(f"{path}: the token must be one word of at least "
                         f"16 characters")
    if mode & 0o077:
        log(f"warning: {path} can be read by others (mode "
            f"{stat.S_IMODE(mode):04o}); chmod 600 it")
    log(f"console token read from {path}")
    return token


def _firmware(name):
    if name.startswith("pxelinux.cfg/"):
        return "bios"
    if name.startswith("grub/"):
        return "efi"
    return None


#: A MAC no machine has (locally administered), for _check's trial builds
_PROBE_MAC = "02:00:00:00:00:00"


class Service:
    def __init__(self, site_path, listen, http_port, tftp_port,
                 proxy_net=None, interface=None, token_file=None,
                 server=None, log=None, uefi="ipxe"):
        self.site_path = os.fspath(site_path)
        self.listen = listen
        self.http_port, self.tftp_port = http_port, tftp_port
        self.proxy_net, self.interface = proxy_net, interface
        self.uefi = uefi
        self.server = server
        self.log = log or (lambda line: None)
        self.state = Path(self.site_path).resolve().parent / "state"
        self.token_file = token_file or self.state / "token"
        self.stopped = signalsafe.Flag()
        self.died = None
        self.dnsmasq = None
        self.seeding = swarmseed.Seeding(self.log, self._died)
        self.tftp = self.http = self.machines = None
        self.threads = []
        self._write_lock = threading.RLock()
        self.site = self._load()
        self.root = self.site.settings.root
        self.address = self.site.settings.address or listen
        if self.http_port is None:               # the site file's, or 80
            self.http_port = self.site.settings.http_port
        token = os.path.realpath(self.token_file)
        root = os.path.realpath(self.root)
        if os.path.commonpath([root, token]) == root:
            raise InputError(f"{self.token_file}: the token file is inside "
                             f"the boot root {self.root}, which TFTP and "
                             f"HTTP serve to anyone; keep it outside "
                             f"(default: {self.state / 'token'})")

    def _load(self):
        # stamped before: an edit meanwhile is seen at the next look
        self.stamp = rootpath.stamp(self.site_path)
        loaded = sites.load(self.site_path)
        return loaded.for_server(self.server) if self.server else loaded

    @property
    def url(self):
        return f"http://{self.address}:{self.http_port}/"

    # per-machine files ------------------------------------------------
    def changed(self, mac):
        """Machines' on_change: write the machine's files again."""
        with self._write_lock:
            site = self.site
            if self.machines is None:
                return
            if mac not in site.hosts and \
                    self.machines.next_boot(mac).kind == "menu":
                # a machine the site does not name, back to the menu (its
                # console job cancelled or failed): its own files go, or
                # they would boot the dead lease again
                self._drop(mac)
                return
            try:
                configs.write(self.root, configs.host_files(
                    site, mac, self.machines.next_boot(mac), self.url,
                    self.address))
            except (DiskImageError, OSError) as exc:
                # the change is journaled; the request that made it is
                # answered; only the files lag: say so, loudly
                self.log(f"error: cannot write the configs of {mac}; it "
                         f"boots what they said before: {exc}")

    def _drop(self, mac):
        for name in (macaddr.pxelinux_name(mac), *macaddr.grub_names(mac),
                     macaddr.ipxe_name(mac)):
            try:
                os.unlink(os.path.join(self.root, name))
            except FileNotFoundError:
                continue
            except OSError as exc:
                self.log(f"error: cannot remove {name}: {exc}")
                continue
            self.log(f"removed {name}: the machine boots the menu again")

    def _check(self, site):
        """configs refuses some of what the site file's loader accepts (an
        empty menu, a word a loader would act on): build every menu and
        every job's boot of `site` before it is used, so that a site that
        cannot be served changes no lease."""
        address = site.settings.address or self.listen
        url = f"http://{address}:{self.http_port}/"
        configs.build(site, {}, url, address)
        for job in site.jobs.values():
            configs.host_files(site, _PROBE_MAC,
                               jobs.Boot("job", job=job, lease="check"),
                               url, address)

    def _machine_macs(self):
        """The MACs with files of their own: the site's machines, and those
        it does not name that boot something other than the menu (a job
        given from the console to a machine that was only seen)."""
        macs = set(self.site.hosts)
        for machine in self.machines.snapshot():
            if machine.get("next") not in (None, "menu"):
                macs.add(machine["mac"])
        return macs

    def write_all(self):
        """The menus and every machine's files; those of MACs that no
        longer have their own (_machine_macs) removed."""
        with self._write_lock:
            boots = {mac: self.machines.next_boot(mac)
                     for mac in self._machine_macs()}
            files = configs.build(self.site, boots, self.url, self.address)
            configs.write(self.root, files)
            for name in configs.prune(self.root, set(files)):
                self.log(f"removed {name}: its machine is no longer in the "
                         f"site file")

    def on_request(self, name, client):
        mac = macaddr.from_request(name)
        if mac is not None:
            self.machines.booted(mac, _firmware(name.lstrip("/")))

    # the site file ----------------------------------------------------
    def reload(self):
        """The site file changed: read it again; a site that does not load,
        or whose configs cannot be written, is logged and the last good one
        stays in force."""
        try:
            site = self._load()
        except DiskImageError as exc:
            self.log(f"the site file did not load; still serving the last "
                     f"good one: {exc}")
            return
        if site.settings.root != self.root:
            self.log(f"the site file names another root "
                     f"({site.settings.root}): restart serve to serve it; "
                     f"still serving {self.root}")
            return
        try:
            self._check(site)
        except (DiskImageError, OSError) as exc:
            self.log(f"the site file's configs cannot be written; still "
                     f"serving the last good one: {exc}")
            return
        with self._write_lock:
            old = self.site
            try:
                self._use(site)
            except (DiskImageError, OSError) as exc:
                self.log(f"the site file's configs cannot be written; still "
                         f"serving the last good one: {exc}")
                self._use(old)
                return
        self.log(f"reloaded {self.site_path}")
        self.seeding.use(site.settings, self.root, self.listen, True)
        if self.dnsmasq is not None:
            try:
                text = self._dnsmasq_text()
            except DiskImageError as exc:
                self.log(f"dnsmasq keeps its configuration: {exc}")
                return
            if text != self.dnsmasq.text:
                self.log("the dnsmasq configuration changed: restarting "
                         "dnsmasq")
                self.dnsmasq.stop()
                self._start_dnsmasq()

    def _use(self, site):
        self.site = site
        self.address = site.settings.address or self.listen
        self.machines.sync(site)
        self.write_all()

    # dnsmasq ----------------------------------------------------------
    def _dnsmasq_text(self):
        return dnsmasqconf.proxy_config(self.site, self.address,
                                        self.proxy_net, self.interface,
                                        http_port=self.http_port,
                                        uefi=self.uefi)

    def _died(self, error):
        self.died = error
        self.stopped.set()

    def _start_dnsmasq(self):
        self.dnsmasq = Dnsmasq(self._dnsmasq_text(),
                               self.state / "dnsmasq.conf", self.log,
                               on_exit=self._died)
        self.dnsmasq.start()
        self.log(f"dnsmasq runs as pid {self.dnsmasq.pid}: proxyDHCP for "
                 f"{self.proxy_net}")

    # the whole --------------------------------------------------------
    def start(self):
        self.state.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.token = read_token(self.token_file, self.log)
        self.machines = jobs.Machines(self.site, self.state / "journal.jsonl",
                                      on_change=self.changed, log=self.log)
        self.write_all()
        self.tftp = tftp.TftpServer(self.root, self.listen, self.tftp_port,
                                    log=self.log, on_request=self.on_request)
        self.tftp_port = self.tftp.port
        self.http = httpd.HttpServer(self.root, self.listen, self.http_port,
                                     self.machines, self.token, self.log,
                                     page=console.PAGE, csp=console.CSP)
        if self.http_port != self.http.port:    # 0: any; the URLs need it
            self.http_port = self.http.port
            self.write_all()
        for name, server in (("tftp", self.tftp), ("http", self.http)):
            thread = threading.Thread(target=server.serve_forever,
                                      name=f"serve-{name}", daemon=True)
            thread.start()
            self.threads.append(thread)
        if self.proxy_net:
            self._start_dnsmasq()
        self.seeding.use(self.site.settings, self.root, self.listen)
        self.log(f"serving {self.root} on {self.listen}: TFTP port "
                 f"{self.tftp_port}, HTTP {self.url}"
                 + (f", proxyDHCP for {self.proxy_net}" if self.proxy_net
                    else ""))

    def wait(self):
        """Until stopped: look at the site file every POLL seconds."""
        _running()
        while not self.stopped.wait(POLL):
            _running()
            now = rootpath.stamp(self.site_path)
            if now != self.stamp and now is not None:
                self.reload()
        if self.died is not None:
            raise self.died

    def stop(self):
        self.seeding.stop()
        if self.dnsmasq is not None:
            self.dnsmasq.stop()
        for server in (self.tftp, self.http):
            if server is not None:
                server.shutdown()
        for thread in self.threads:
            thread.join(10)
        if self.machines is not None:
            self.machines.close()
        self.stopped.set()

    def info(self):
        return {"url": self.url, "http_port": self.http_port,
                "tftp_port": self.tftp_port, "token": self.token,
                "dnsmasq_pid": self.dnsmasq.pid if self.dnsmasq else None}


def _running():
    """The configs serve writes (rootwrite, through host.partial) commit,
    and after a commit cliutil.runner only notes a signal (sighold): the
    service is never done, so each look raises what was noted since (the
    runner's handler turns it into KeyboardInterrupt here, in the main
    thread) and forgets the files, which are not this run's output."""
    sighold.forget_committed()
    sighold.started()


def serve(site_path, listen, http_port=None, tftp_port=69, proxy_net=None,
          interface=None, token_file=None, server=None, log=None, ready=None,
          uefi="ipxe"):
    """Run the service until SIGINT/SIGTERM (KeyboardInterrupt raised in
    this thread) or dnsmasq's death (ToolError).  `ready(info)` is called
    once everything runs, with {"url", "http_port", "tftp_port", "token",
    "dnsmasq_pid"}."""
    if listen in ("0.0.0.0", "", None):
        raise InputError("the listen address must be explicit, not all "
                         "addresses")
    service = Service(site_path, listen, http_port, tftp_port, proxy_net,
                      interface, token_file, server, log, uefi)
    try:
        service.start()
        if ready is not None:
            ready(service.info())
        service.wait()
    finally:
        service.stop()
        sighold.forget_committed()



