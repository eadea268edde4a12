"""One machine's state (jobs.Machines holds one per MAC), and the one way
it changes: a journal record applied to it.

The records (each also has "mac" and "at", unix seconds):

    seen      firmware [handed]        a loader asked for its config
                                       (handed: the first boot given the
                                       lease)
    lease     lease job once retries [site_key origin]   a new lease
    started   lease                    the environment began the job
    rerun     lease attempts           another boot before an ending: the
                                       job again, under a new lease id
    progress  lease progress           rdeploy's progress object
    done | failed  lease exit [reason] the lease ended
    cancel | local | unassign [site_key]   the console or the site file
    machine   every field below        a compacted journal's one record

Any record may carry "log": the environment's log tail as it sent it (the
whole tail so far, not the lines since its last report), which replaces the
one shown.
"""

import collections
import re
from dataclasses import dataclass

from . import progress as progressinfo

LOG_LINES = 20


class Machine:
    """One machine's state, as replayed from the journal."""

    def __init__(self, mac):
        self.mac = mac
        self.firmware = None
        self.last_seen = None
        self.state = "unknown"
        self.lease = None
        self.job = None
        self.once = True
        self.retries = 0
        self.attempts = 0
        self.site_key = None
        self.progress = None
        self.samples = collections.deque(maxlen=8)
        self.result = None
        self.log = collections.deque(maxlen=LOG_LINES)
        self.last_end = None        # (lease, event, exit) of the last end
        self.handed = None          # when a boot was last given the lease


def public(m, host, next_kind):
    """The API's object of machine `m` (`host`: its site.Host or None)."""
    return {"mac": m.mac, "name": host.name if host else "",
            "firmware": m.firmware, "last_seen": m.last_seen,
            "job": m.job, "once": m.once, "state": m.state,
            "attempts": m.attempts, "retries": m.retries,
            "progress": dict(m.progress) if m.progress else None,
            "result": dict(m.result) if m.result else None,
            "log": list(m.log), "next": next_kind}


def record(m):
    """A machine's whole state as one record (a compaction)."""
    return {"ev": "machine", "mac": m.mac, "at": m.last_seen,
            "state": m.state, "lease": m.lease, "job": m.job,
            "once": m.once, "retries": m.retries, "attempts": m.attempts,
            "site_key": m.site_key, "firmware": m.firmware,
            "progress": m.progress, "samples": list(m.samples),
            "result": m.result, "log": list(m.log),
            "last_end": m.last_end, "handed": m.handed}


_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}\Z")
_NUM = (int, float)
_STR = (str,)
_OPT_STR = (str, type(None))
#: The fields whose type every record of a kind must have (a journal
#: edited by hand, or not ours, is refused when it is opened, not when a
#: machine boots and its state no longer adds up).
_FIELDS = {
    "seen": {"firmware": _OPT_STR},
    "lease": {"lease": _STR, "job": _STR, "once": (bool,), "retries": (int,)},
    "started": {"lease": _STR},
    "rerun": {"lease": _STR, "attempts": (int,)},
    "progress": {"lease": _STR},
    "machine": {"state": _STR, "lease": _OPT_STR, "job": _OPT_STR,
                "once": (bool,), "retries": (int,), "attempts": (int,),
                "samples": (list,), "log": (list,),
                "handed": _NUM + (type(None),)},
}


def check(r):
    """ValueError unless record `r` has the types apply() relies on."""
    mac = r.get("mac")
    if not isinstance(mac, str) or not _MAC.match(mac):
        raise ValueError("mac")
    at = r.get("at")
    if at is not None and (isinstance(at, bool) or not isinstance(at, _NUM)
                           or not 0 <= at < 2 ** 40):      # a unix time
        raise ValueError("at")
    for key, types in _FIELDS.get(r["ev"], {}).items():
        if key in r and (not isinstance(r[key], types) or
                         isinstance(r[key], bool) and bool not in types):
            raise ValueError(key)
    if not isinstance(r.get("log") or [], list) or \
            not all(isinstance(x, str) for x in r.get("log") or []):
        raise ValueError("log")


def apply(m, r, leases):
    """Record `r` applied to machine `m`; `leases` (lease id -> MAC) kept
    for the leases a report may name."""
    ev, at = r["ev"], r.get("at")
    if ev == "machine":
        for key in ("state", "lease", "job", "once", "retries",
                    "attempts", "site_key", "firmware", "progress",
                    "result"):
            setattr(m, key, r[key])
        m.last_seen = at
        m.samples.extend(tuple(x) for x in r["samples"])
        m.last_end = tuple(r["last_end"]) if r["last_end"] else None
        m.handed = r.get("handed")
        for lease in (m.lease, m.last_end and m.last_end[0]):
            if lease:
                leases[lease] = m.mac
    elif ev == "seen":
        m.firmware = r.get("firmware") or m.firmware
        m.last_seen = at
        if r.get("handed"):
            m.handed = at
    elif ev == "lease":
        m.lease, m.job, m.once = r["lease"], r["job"], r["once"]
        m.retries, m.attempts = r["retries"], 0
        if "site_key" in r:
            m.site_key = r["site_key"]
        m.state, m.progress, m.handed = "assigned", None, None
        m.samples.clear()
        leases[m.lease] = m.mac
    elif ev == "started":
        m.state = "started"
    elif ev == "rerun":
        m.lease, m.handed = r["lease"], at
        leases[m.lease] = m.mac
        m.state, m.attempts = "assigned", r["attempts"]
        m.progress = None
        m.samples.clear()
    elif ev == "progress":
        m.state = "started"
        progressinfo.update(m, r.get("progress"), at)
    elif ev in ("done", "failed"):
        m.state = ev
        m.result = {"event": ev, "exit": r.get("exit"), "at": at}
        m.last_end = (r.get("lease"), ev, r.get("exit"))
        if m.last_end[0]:
            leases[m.last_end[0]] = m.mac
        if r.get("reason"):
            m.result["reason"] = r["reason"]
    elif ev in ("cancel", "local", "unassign"):
        m.state = {"cancel": "cancelled", "local": "local",
                   "unassign": "idle"}[ev]
        if "site_key" in r:
            m.site_key = r["site_key"]
        m.lease = None
        if ev == "unassign":
            m.job = None
    else:
        raise ValueError(f"unknown record {ev!r}")
    if r.get("log"):
        # a report carries the environment's whole tail so far, not the
        # lines since the last one: it replaces what was shown
        m.log.clear()
        m.log.extend(r["log"])


@dataclass
class Boot:
    """What a machine's configs say (jobs.Machines.next_boot)."""
    kind: str                 # "menu" | "entry" | "job" | "local"
    entry: object = None      # site.Entry
    job: object = None        # site.Job
    lease: str = None


def entry_boot(site, name):
    """The Boot of the site's entry `name` (a fallback or a host's menu)."""
    entry = site.entries.get(name) if name else None
    if entry is None:
        return Boot("local") if name == "local" else Boot("menu")
    return Boot("local" if entry.local else "entry", entry=entry)


def local_boot(site):
    for entry in site.entries.values():
        if entry.local:
            return Boot("local", entry=entry)
    return Boot("local")


def who(host, mac):
    """A machine as the log names it: ``pc03 52:54:00:12:34:56``."""
    return f"{host.name} {mac}" if host is not None and host.name else mac


def boot_text(boot):
    """What a jobs.Boot boots, in words for the log."""
    if boot.kind == "job":
        return f"job {boot.job.name}"
    if boot.kind == "entry":
        return f"entry {boot.entry.name}"
    return "the local disk" if boot.kind == "local" else "the menu"

