"""pxeconf menu|job|host|status: the site file's entries, jobs and machines
(diskimage.netboot.site and siteedit), and every machine's state."""

import json
import sys
import time

from cliutil.render import table_text
from diskimage.errors import UsageError
from diskimage.netboot import macaddr, siteedit
from diskimage.netboot.site import Entry, Host, Job, load


def run(command, args):
    site = args["--site"]
    if command == "status":
        return _status(site, args["--json"])
    action = next(a for a in ("add", "rm", "list", "default") if args.get(a))
    if action == "list":
        return _LISTS[command](load(site), args["--json"])
    warnings = _EDITS[(command, action)](site, args)
    for warning in warnings or ():
        print(f"pxeconf: warning: {warning}", file=sys.stderr)
    return 0


def _count(args, option, high):
    value = args[option]
    if value is None:
        return None
    if not value.isdigit() or int(value) > high:
        raise UsageError(f"{option} takes a whole number from 0 to {high}, "
                         f"not {value!r}")
    return int(value)


def _menu_add(site, args):
    entry = Entry(args["NAME"], args["--label"] or "", args["--kernel"],
                  args["--initrd"], args["--cmdline"] or "", args["--bundle"],
                  bool(args["--local"]), args["--job"])
    return siteedit.add_entry(site, entry)


def _menu_default(site, args):
    return siteedit.set_default(site, args["NAME"],
                                _count(args, "--timeout", 3600))


def _job_add(site, args):
    job = Job(args["NAME"], args["--label"] or "", args["--script"],
              args["--kernel"], args["--initrd"], args["--bundle"],
              args["--cmdline"] or "", _count(args, "--retries", 100))
    return siteedit.add_job(site, job)


def _host_add(site, args):
    if args["--job"] and args["--menu"]:
        raise UsageError("host add: give --job or --menu, not both")
    given = args["--once"] or args["--always"]
    if given and args["--menu"]:
        raise UsageError("host add: --once and --always are for a job, "
                         "not --menu")
    host = Host(macaddr.normalise(args["MAC"]), args["--name"] or "",
                args["--job"], not args["--always"], menu=args["--menu"])
    return siteedit.add_host(site, host, keep=True,
                             rejob=bool(given and not args["--job"]))


_EDITS = {
    ("menu", "add"): _menu_add,
    ("menu", "rm"): lambda site, args: siteedit.remove_entry(site,
                                                             args["NAME"]),
    ("menu", "default"): _menu_default,
    ("job", "add"): _job_add,
    ("job", "rm"): lambda site, args: siteedit.remove_job(site, args["NAME"]),
    ("host", "add"): _host_add,
    ("host", "rm"): lambda site, args: siteedit.remove_host(site,
                                                            args["MAC"]),
}


def _boots(thing):
    if getattr(thing, "local", False):
        return "local disk"
    if getattr(thing, "job", None):
        return f"job {thing.job}"
    if thing.bundle:
        return f"bundle {thing.bundle}"
    return f"{thing.kernel} + {thing.initrd}"


def _menu_list(site, as_json):
    settings = site.settings
    default = settings.default or next(iter(site.entries), None)
    if as_json:
        _print_json({"default": default, "timeout": settings.timeout,
                     "fallback": settings.fallback,
                     "entries": [_entry_json(e, e.name == default)
                                 for e in site.entries.values()]})
        return 0
    rows = [["*" if e.name == default else "", e.name, e.label, _boots(e),
             e.cmdline or "-"] for e in site.entries.values()]
    print(table_text(["DEFAULT", "NAME", "LABEL", "BOOTS", "CMDLINE"], rows))
    return 0


def _entry_json(entry, default):
    return {"name": entry.name, "label": entry.label, "default": default,
            "kernel": entry.kernel, "initrd": entry.initrd,
            "bundle": entry.bundle, "local": entry.local, "job": entry.job,
            "cmdline": entry.cmdline, "line": entry.line}


def _job_list(site, as_json):
    retries = site.settings.retries
    if as_json:
        _print_json({"jobs": [
            {"name": j.name, "label": j.label, "script": j.script,
             "kernel": j.kernel, "initrd": j.initrd, "bundle": j.bundle,
             "cmdline": j.cmdline,
             "retries": retries if j.retries is None else j.retries,
             "line": j.line} for j in site.jobs.values()]})
        return 0
    rows = [[j.name, j.label, j.script, _boots(j),
             str(retries if j.retries is None else j.retries)]
            for j in site.jobs.values()]
    print(table_text(["NAME", "LABEL", "SCRIPT", "BOOTS", "RETRIES"], rows))
    return 0


def _host_list(site, as_json):
    hosts = site.hosts.values()
    if as_json:
        _print_json({"hosts": [
            {"mac": h.mac, "name": h.name, "job": h.job,
             "once": h.once if h.job else None, "assigned": h.assigned,
             "menu": h.menu, "fallback": h.fallback, "line": h.line}
            for h in hosts]})
        return 0
    rows = [[h.mac, h.name or "-", h.job or "-",
             ("yes" if h.once else "no") if h.job else "-",
             h.assigned or "-", h.menu or "-"] for h in hosts]
    print(table_text(["MAC", "NAME", "JOB", "ONCE", "ASSIGNED", "MENU"],
                     rows))
    return 0


def _status(path, as_json):
    from diskimage.netboot import status
    notes = []
    machines = status.snapshot(load(path), status.journal_path(path),
                               log=notes.append)
    for note in notes:
        print(f"pxeconf: warning: {note}", file=sys.stderr)
    if as_json:
        _print_json({"machines": machines})
        return 0
    rows = [[m["mac"], m["name"] or "-", m["firmware"] or "-", m["state"],
             m["job"] or "-", _progress(m["progress"]), _seen(m["last_seen"]),
             _result(m["result"]), m["next"]] for m in machines]
    print(table_text(["MAC", "NAME", "FIRMWARE", "STATE", "JOB", "PROGRESS",
                      "LAST SEEN", "RESULT", "NEXT"], rows))
    return 0


def _progress(progress):
    if not progress or progress.get("percent") is None:
        return "-"
    text = f"{progress['percent']:.0f}%"
    if progress.get("eta") is not None:
        minutes, seconds = divmod(int(progress["eta"]), 60)
        text += f" eta {minutes}:{seconds:02d}"
    return text


def _seen(when):
    if when is None:
        return "-"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


def _result(result):
    if not result:
        return "-"
    exit = result.get("exit")
    return result["event"] + (f" (exit {exit})" if exit is not None else "")


def _print_json(value):
    print(json.dumps(value, indent=2))


_LISTS = {"menu": _menu_list, "job": _job_list, "host": _host_list}
