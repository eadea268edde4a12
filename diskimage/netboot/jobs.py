"""What each machine boots next: jobs as leases, every change journaled.

A job assigned to a machine (by the site file's ``[host]`` job and
``assigned`` stamp, or from the console) is a *lease*: an unguessable id
the imaging environment reports with.  Its states:

    assigned --started--> started --done--> done      (once: next boot local)
                                  --failed-> failed    (next boot: fallback)
    started --a boot with no ending--> assigned, attempts + 1
                 (past the job's retries: failed, next boot the fallback)
    any --cancel--> cancelled      any --local--> local

Only ``done`` makes a once-job's machine boot local; an always-job
(once = no) gets a fresh lease at ``done``, so its next boot runs it again.
A report of any lease but the machine's current one is StaleLease and
changes nothing.  Several config fetches of one boot (pxelinux and GRUB
ask for more than one name) count as one boot: only the first finds the
lease ``started``; the others find it ``assigned`` again.

Every change is a record appended to the journal (journal.py) and fsync'd
before it is applied, and applying records is the only way state changes,
so a restarted server replays the journal to the same state.
"""

import secrets
import threading
import time

from ..errors import DiskImageError, InputError
from . import journal as journalfile
from . import macaddr
from . import machinestate
from . import progress as progressinfo
from .machinestate import LOG_LINES, Boot

#: A journal of more records than this is compacted when opened, and
#: while the server runs (once it also holds twice as many records as
#: machines), so that a flood of boots cannot fill the disk.
COMPACT_AT = 20000
#: Machines seen booting that the site does not know: at most this many
#: are recorded (a client asking for made-up MACs cannot grow the journal
#: and the console without end); the site's hosts are always recorded.
MAX_UNKNOWN = 1024
#: Config requests of one machine within this many seconds of the one
#: that was given a job are one boot (pxelinux, GRUB and iPXE chained
#: each ask); a later one before "started" is another boot.
BOOT_WINDOW = 60.0
MAX_LOG_LINE = 500
EXIT_MAX = 2 ** 31
ACTIVE = ("assigned", "started")


class StaleLease(InputError):
    """A report naming a lease that is not the machine's current one."""


class NotFound(InputError):
    """A machine or job the site does not know."""


class Machines:
    """Every machine's state; thread-safe.  `on_change(mac)` is called
    (outside the lock) after each change of what a machine boots or
    shows."""

    def __init__(self, site, journal_path, on_change=None, log=None,
                 clock=time.time, compact_at=COMPACT_AT, readonly=False,
                 boot_window=BOOT_WINDOW, max_unknown=MAX_UNKNOWN):
        self._lock = threading.RLock()
        self._listeners = [on_change] if on_change else []
        self._clock = clock
        self._window = boot_window
        self._machines = {}
        self._leases = {}                     # lease id -> mac
        self._log = log
        self._said = None       # _say: not while opening (pxeconf status)
        self._compact_at = compact_at
        self._max_unknown = max_unknown
        self.site = site
        if readonly:
            self._journal = journalfile.ReadOnly(journal_path, log)
        else:
            self._journal = journalfile.Journal(journal_path, log)
        try:
            self._replay(journal_path)
            if len(self._journal.records) > compact_at:
                self._journal.rewrite([machinestate.record(m)
                                       for m in self._machines.values()])
                self._journal.records = []
            self.sync(site)
        except BaseException:
            self._journal.close()
            raise
        self._said = log

    def _replay(self, journal_path):
        for number, record in enumerate(self._journal.records, 2):
            try:
                self._apply(record)
            except (KeyError, TypeError, ValueError, AttributeError,
                    ArithmeticError):
                raise InputError(f"{journal_path}:{number}: a journal "
                                 f"record {record.get('ev')!r} that is "
                                 f"not whole (not ours?)") from None

    def close(self):
        """Close the journal once no change is being written (later ones:
        DiskImageError)."""
        with self._lock:
            self._journal.close()

    # ---- records: made, journaled, applied -------------------------------

    def _record(self, ev, mac, at=None, **fields):
        if at is None:
            at = round(self._clock(), 3)
        record = {"ev": ev, "mac": mac, "at": at, **fields}
        self._journal.append(record)
        self._apply(record)
        if self._journal.count > max(self._compact_at,
                                     2 * len(self._machines)):
            self._compact()
        return record

    def _compact(self):
        try:
            self._journal.rewrite([machinestate.record(m)
                                   for m in self._machines.values()])
        except DiskImageError as exc:   # the change itself is journaled
            self._compact_at = 2 * self._journal.count
            if self._log:
                self._log(f"{exc} (compaction put off)")

    def _machine(self, mac):
        machine = self._machines.get(mac)
        if machine is None:
            machine = self._machines[mac] = machinestate.Machine(mac)
        return machine

    def _say(self, mac, text):
        """A line of the log about this machine ({next}: its next boot)."""
        if self._said:
            boot = machinestate.boot_text(self.next_boot(mac))
            self._said(f"{machinestate.who(self.site.hosts.get(mac), mac)}: "
                       f"{text.format(next=boot)}")

    def _apply(self, r):
        machinestate.check(r)
        machinestate.apply(self._machine(r["mac"]), r, self._leases)

    def add_listener(self, callback):
        """Another callable(mac) told of every change (httpd's event
        stream), after on_change."""
        self._listeners.append(callback)

    def remove_listener(self, callback):
        self._listeners.remove(callback)

    def _changed(self, macs):
        for mac in macs:
            for listener in list(self._listeners):
                listener(mac)

    # ---- the site file ---------------------------------------------------

    def _retries(self, site, job):
        j = site.jobs.get(job)
        if j is not None and j.retries is not None:
            return j.retries
        return site.settings.retries

    def _new_lease(self, mac, job, once, retries, **fields):
        lease = secrets.token_urlsafe(18)
        return self._record("lease", mac, lease=lease, job=job, once=once,
                            retries=retries, **fields)

    def sync(self, site):
        """The site file (re)loaded: a host whose job or ``assigned``
        stamp is new gets a new lease; a host whose job was taken away
        goes idle; an active lease of a host no longer in the file is
        cancelled."""
        changed = []
        with self._lock:
            self.site = site
            for mac, host in site.hosts.items():
                m = self._machines.get(mac)
                key = [host.job, None if host.assigned is None
                       else str(host.assigned)] if host.job else None
                if m is not None and m.site_key == key:
                    continue
                if key is None:
                    if m is None:
                        self._machine(mac).state = "idle"
                    else:
                        self._record("unassign", mac, site_key=None)
                        self._say(mac, "the job was taken away in the site "
                                  "file: lease ended, next boot {next}")
                        changed.append(mac)
                    continue
                self._new_lease(mac, host.job, bool(host.once),
                                self._retries(site, host.job),
                                origin="site", site_key=key)
                changed.append(mac)
            for mac, m in self._machines.items():
                if mac not in site.hosts and m.site_key is not None:
                    self._record("cancel", mac, site_key=None)
                    self._say(mac, "no longer in the site file: lease "
                              "cancelled, next boot {next}")
                    changed.append(mac)
                elif mac in site.hosts and m.state == "unknown":
                    m.state = "idle"
                elif mac not in site.hosts and m.state == "idle":
                    m.state = "unknown"
        self._changed(changed)

    # ---- what configs say ------------------------------------------------

    def next_boot(self, mac):
        """What this machine's configs must say now (changes nothing)."""
        mac = macaddr.normalise(mac)
        with self._lock:
            m = self._machines.get(mac)
            host = self.site.hosts.get(mac)
            state = m.state if m else "unknown"
            if state in ACTIVE:
                job = self.site.jobs.get(m.job)
                if job is not None:
                    return Boot("job", job=job, lease=m.lease)
            if state == "local" or (state == "done" and m.once):
                return machinestate.local_boot(self.site)
            if state == "failed":
                fallback = host.fallback if host and host.fallback \
                    else self.site.settings.fallback
                return machinestate.entry_boot(self.site, fallback)
            if host is not None and host.menu:
                return machinestate.entry_boot(self.site, host.menu)
            return Boot("menu")

    # ---- events ----------------------------------------------------------

    def booted(self, mac, firmware=None):
        """A loader asked for this machine's config.  The lease runs
        again, with a new id and attempts + 1, when this is another boot
        after the job started and did not end, or another boot (over
        boot_window seconds after the one that was given the job) before
        it started; past the retries the lease fails instead.  Otherwise
        the boot is only recorded."""
        mac = macaddr.normalise(mac)
        with self._lock:
            m = self._machines.get(mac)
            first = m is None
            if first and mac not in self.site.hosts and \
                    sum(m.state == "unknown" for m in
                        self._machines.values()) >= self._max_unknown:
                return                  # a flood of made-up MACs
            now = round(self._clock(), 3)
            state = m.state if m else "unknown"
            again = None
            if state == "started":
                again = 'after "started" with no ending'
            elif state == "assigned" and m.handed is not None and \
                    now - m.handed > self._window:
                again = "and the job never started"
            handed = state == "assigned" and again is None and \
                m.handed is None
            self._record("seen", mac, at=now, firmware=firmware,
                         **({"handed": True} if handed else {}))
            m = self._machines[mac]
            if first and mac in self.site.hosts:
                m.state = "idle"
            if again:
                attempts = m.attempts + 1
                if attempts > m.retries:
                    self._record("failed", mac, at=now, lease=m.lease,
                                 exit=None, reason=f"booted again {again} "
                                 f"({attempts} times; retries {m.retries})")
                    self._say(mac, f"booted again {again}: retries ran "
                              "out: failed, next boot {next}")
                else:
                    self._record("rerun", mac, at=now,
                                 lease=secrets.token_urlsafe(18),
                                 attempts=attempts)
                    self._say(mac, f"booted again {again}: run "
                              f"{attempts + 1} of {m.retries + 1}")
        self._changed([mac])

    def report(self, lease, event, exit=None, progress=None, log=None):
        """The imaging environment's report of `lease`; returns its
        Machine's API object."""
        if event not in ("started", "progress", "done", "failed"):
            raise InputError(f"event {event!r}: not one of started, "
                             f"progress, done, failed")
        if exit is not None and (not isinstance(exit, int) or
                                 isinstance(exit, bool) or
                                 not -EXIT_MAX <= exit <= EXIT_MAX):
            raise InputError(f"exit {str(exit)[:40]}: not an exit code "
                             f"(an integer of at most 32 bits)")
        if progress is not None and not isinstance(progress, dict):
            raise InputError("progress: not an object")
        if log is not None and (not isinstance(log, list) or
                                not all(isinstance(x, str) for x in log)):
            raise InputError("log: not a list of lines")
        lines = [line[:MAX_LOG_LINE] for line in (log or [])][-LOG_LINES:]
        with self._lock:
            mac = self._leases.get(lease) if isinstance(lease, str) else None
            m = self._machines.get(mac)
            if m is not None and m.last_end == (lease, event, exit):
                return self._public(m)  # an ending said again (a retry)
            if m is None or m.lease != lease:
                raise StaleLease(f"lease {str(lease)[:40]!r}: not the "
                                 f"current lease of any machine")
            if m.state not in ACTIVE:
                raise StaleLease(f"lease {lease[:40]!r}: already ended "
                                 f"({m.state})")
            extra = {"log": lines} if lines else {}
            if event == "started":
                self._record("started", mac, lease=lease, **extra)
            elif event == "progress":
                self._record("progress", mac, lease=lease,
                             progress=progressinfo.clean(progress), **extra)
            else:
                self._record(event, mac, lease=lease, exit=exit, **extra)
                if event == "done" and not m.once:
                    self._new_lease(mac, m.job, False, m.retries)
                code = "" if exit is None else f" (exit {exit})"
                self._say(mac, f"job {m.job} {event}{code}: lease ended, "
                          "next boot {next}")
            public = self._public(m)
        self._changed([mac])
        return public

    # ---- console actions -------------------------------------------------

    def _known(self, mac):
        mac = macaddr.normalise(mac)
        if mac not in self._machines and mac not in self.site.hosts:
            raise NotFound(f"machine {mac}: not in the site file and never "
                           f"seen booting")
        return mac

    def assign(self, mac, job, once=True):
        with self._lock:
            mac = self._known(mac)
            if job not in self.site.jobs:
                raise NotFound(f"job {job!r}: not in the site file")
            self._new_lease(mac, job, bool(once), self._retries(self.site,
                                                                 job),
                            origin="console")
            public = self._public(self._machines[mac])
        self._changed([mac])
        return public

    def cancel(self, mac):
        return self._end(mac, "cancel")

    def local(self, mac):
        return self._end(mac, "local")

    def _end(self, mac, ev):
        with self._lock:
            mac = self._known(mac)
            self._record(ev, mac)
            self._say(mac, f"{ev} (the console): lease ended, next boot "
                      "{next}")
            public = self._public(self._machines[mac])
        self._changed([mac])
        return public

    # ---- the API's view --------------------------------------------------

    def _public(self, m):
        return machinestate.public(m, self.site.hosts.get(m.mac),
                                   self.next_boot(m.mac).kind)

    def machine(self, mac):
        """One machine's API object (NotFound if unknown)."""
        with self._lock:
            mac = self._known(mac)
            return self._public(self._machine(mac))

    def snapshot(self):
        """Every machine known (the site's hosts and every MAC seen), by
        MAC."""
        with self._lock:
            for mac in self.site.hosts:
                if mac not in self._machines:
                    self._machine(mac).state = "idle"
            return [self._public(self._machines[mac])
                    for mac in sorted(self._machines)]


def status(site, journal_path, log=None):
    """Every machine's API object as a server of this site and journal
    would show it, read without locking or writing the journal (for
    `pxeconf status`, also while serve runs)."""
    return Machines(site, journal_path, log=log, readonly=True).snapshot()
