"""The lease state machine: once, always, retries, stale reports, console
actions.  The journal's replay and damage are in test_jobs_journal.py."""

import itertools

import pytest

from diskimage.netboot.jobs import Machines, NotFound, StaleLease
from diskimage.errors import InputError
from tests.netboot.jobsite import MAC1, MAC2, T0, Host, make_site


class Clock:
    """Time that moves one second per reading: counted, not timed."""

    def __init__(self):
        self.ticks = itertools.count(1_764_600_000)

    def __call__(self):
        return float(next(self.ticks))


@pytest.fixture
def changes():
    return []


def machines(tmp_path, site, changes=None):
    return Machines(site, tmp_path / "state" / "journal.jsonl",
                    on_change=(changes.append if changes is not None
                               else None), clock=Clock())


def once_site(tmp_path, **kw):
    return make_site(tmp_path, hosts=[Host(
        MAC1, name="pc01", job="restore", once=True,
        assigned="2026-12-01T16:30:00Z")], **kw)


def test_once_job_runs_then_local(tmp_path, changes):
    ms = machines(tmp_path, once_site(tmp_path), changes)
    boot = ms.next_boot(MAC1)
    assert boot.kind == "job" and boot.job.name == "restore"
    assert len(boot.lease) >= 24
    ms.booted(MAC1, "bios")
    assert ms.next_boot(MAC1).lease == boot.lease
    ms.report(boot.lease, "started")
    m = ms.report(boot.lease, "progress",
                  progress={"event": "progress", "task": "restore",
                            "done": 50, "total": 100})
    assert m["state"] == "started"
    assert m["progress"]["percent"] == 50.0
    m = ms.report(boot.lease, "done", exit=0, log=["restored", "synced"])
    assert m["state"] == "done" and m["result"]["exit"] == 0
    assert m["log"] == ["restored", "synced"] and m["next"] == "local"
    assert ms.next_boot(MAC1).kind == "local"
    assert ms.next_boot(MAC1).entry.name == "local"
    # The next boot stays local: no boot loop.
    ms.booted(MAC1, "bios")
    assert ms.next_boot(MAC1).kind == "local"
    assert MAC1 in changes


def test_only_done_switches_to_local(tmp_path):
    ms = machines(tmp_path, once_site(tmp_path))
    lease = ms.next_boot(MAC1).lease
    ms.booted(MAC1, "efi")
    assert ms.next_boot(MAC1).kind == "job"
    ms.report(lease, "started")
    assert ms.next_boot(MAC1).kind == "job"
    ms.report(lease, "progress", progress={"done": 99, "total": 100})
    assert ms.next_boot(MAC1).kind == "job"


def test_reported_failure_boots_fallback(tmp_path):
    site = once_site(tmp_path)
    site.hosts[MAC1].fallback = "rescue"
    ms = machines(tmp_path, site)
    lease = ms.next_boot(MAC1).lease
    ms.report(lease, "started")
    m = ms.report(lease, "failed", exit=5, log=["target too small"])
    assert m["state"] == "failed" and m["result"]["exit"] == 5
    boot = ms.next_boot(MAC1)
    assert boot.kind == "entry" and boot.entry.name == "rescue"


def test_boot_after_started_reruns_up_to_retries(tmp_path):
    ms = machines(tmp_path, once_site(tmp_path, retries=2))
    lease = ms.next_boot(MAC1).lease
    ms.booted(MAC1, "bios")
    for attempt in (1, 2):
        ms.report(lease, "started")
        ms.booted(MAC1, "bios")          # a reset half way
        m = ms.machine(MAC1)
        assert m["state"] == "assigned" and m["attempts"] == attempt
        # The run cut short can no longer report: a new lease runs.
        new = ms.next_boot(MAC1).lease
        assert new != lease
        with pytest.raises(StaleLease):
            ms.report(lease, "done", exit=0)
        lease = new
    ms.report(lease, "started")
    ms.booted(MAC1, "bios")              # a third cut run: past 2 retries
    m = ms.machine(MAC1)
    assert m["state"] == "failed" and m["result"]["exit"] is None
    assert 'after "started" with no ending' in m["result"]["reason"]
    assert "retries 2" in m["result"]["reason"]
    assert ms.next_boot(MAC1).kind == "local"       # the site's fallback
    with pytest.raises(StaleLease):
        ms.report(lease, "done", exit=0)


def test_the_log_says_reruns_failures_and_ends(tmp_path):
    """The log once never said a job was rerun or failed by its retries."""
    said = []
    site = once_site(tmp_path, retries=2)
    ms = Machines(site, tmp_path / "state" / "journal.jsonl",
                  log=said.append, clock=Clock())
    lease = ms.next_boot(MAC1).lease
    ms.booted(MAC1, "bios")
    assert said == []                    # the first boot: nothing to say
    for run in (2, 3):
        ms.report(lease, "started")
        ms.booted(MAC1, "bios")
        lease = ms.next_boot(MAC1).lease
        assert said[-1] == (f'pc01 {MAC1}: booted again after "started" '
                            f'with no ending: run {run} of 3')
    ms.report(lease, "started")
    ms.booted(MAC1, "bios")
    assert said[-1] == (f'pc01 {MAC1}: booted again after "started" with '
                        f'no ending: retries ran out: failed, next boot the '
                        f'local disk')
    assert len(said) == 3
    ms.assign(MAC1, "restore")
    lease = ms.next_boot(MAC1).lease
    ms.report(lease, "started")
    ms.report(lease, "done", exit=0)
    assert said[-1] == (f"pc01 {MAC1}: job restore done (exit 0): lease "
                        f"ended, next boot the local disk")
    ms.assign(MAC1, "restore")
    ms.cancel(MAC1)
    assert said[-1] == (f"pc01 {MAC1}: cancel (the console): lease ended, "
                        f"next boot the menu")
    ms.sync(once_site(tmp_path, retries=2))
    ms.sync(make_site(tmp_path))
    assert said[-1] == (f"{MAC1}: no longer in the site file: lease "
                        f"cancelled, next boot the menu")
    ms.close()


class Later:
    """A clock that can be moved on by hand."""

    def __init__(self):
        self.now = 1_764_600_000.0

    def __call__(self):
        self.now += 1
        return self.now


def test_boots_that_never_start_the_job_end_too(tmp_path):
    clock = Later()
    ms = Machines(once_site(tmp_path, retries=1),
                  tmp_path / "journal.jsonl", clock=clock)
    first = ms.next_boot(MAC1).lease
    ms.booted(MAC1, "bios")
    clock.now += 30                      # the same boot: a chained loader
    ms.booted(MAC1, "bios")
    assert ms.machine(MAC1)["attempts"] == 0
    assert ms.next_boot(MAC1).lease == first
    clock.now += 600                     # another boot; no "started" came
    ms.booted(MAC1, "bios")
    assert ms.machine(MAC1)["attempts"] == 1
    assert ms.next_boot(MAC1).lease != first
    clock.now += 600
    ms.booted(MAC1, "bios")
    m = ms.machine(MAC1)
    assert m["state"] == "failed" and "never started" in m["result"]["reason"]
    assert ms.next_boot(MAC1).kind == "local"


def test_job_retries_override_site(tmp_path):
    site = make_site(tmp_path, hosts=[Host(MAC1, job="wipe", assigned=T0)],
                     retries=5)
    ms = machines(tmp_path, site)
    lease = ms.next_boot(MAC1).lease
    ms.report(lease, "started")
    ms.booted(MAC1)
    assert ms.machine(MAC1)["state"] == "failed"


def test_several_fetches_of_one_boot_count_once(tmp_path):
    ms = machines(tmp_path, once_site(tmp_path, retries=1))
    lease = ms.next_boot(MAC1).lease
    ms.report(lease, "started")
    # pxelinux asks for several names; GRUB for two: one boot.
    for _ in range(4):
        ms.booted(MAC1, "efi")
    m = ms.machine(MAC1)
    assert m["state"] == "assigned" and m["attempts"] == 1
    assert m["firmware"] == "efi"


def test_always_job_runs_at_every_boot(tmp_path):
    site = make_site(tmp_path, hosts=[Host(MAC1, job="restore", once=False,
                                           assigned=T0)])
    ms = machines(tmp_path, site)
    first = ms.next_boot(MAC1).lease
    ms.report(first, "started")
    m = ms.report(first, "done", exit=0)
    assert m["state"] == "assigned" and m["result"]["event"] == "done"
    second = ms.next_boot(MAC1)
    assert second.kind == "job" and second.lease != first
    with pytest.raises(StaleLease):
        ms.report(first, "started")
    # The client retries an ending whose answer it lost: accepted, and the
    # new lease is untouched.
    assert ms.report(first, "done", exit=0)["state"] == "assigned"
    assert ms.next_boot(MAC1).lease == second.lease
    with pytest.raises(StaleLease):
        ms.report(first, "failed", exit=1)
    ms.report(second.lease, "started")


def test_stale_lease_never_changes_a_newer_one(tmp_path):
    site = once_site(tmp_path)
    ms = machines(tmp_path, site)
    old = ms.next_boot(MAC1).lease
    ms.report(old, "started")
    site.hosts[MAC1].assigned = "2026-12-01T17:00:00Z"   # host add again
    ms.sync(site)
    new = ms.next_boot(MAC1).lease
    assert new != old
    for event in ("started", "progress", "done", "failed"):
        with pytest.raises(StaleLease):
            ms.report(old, event, exit=0)
    m = ms.machine(MAC1)
    assert m["state"] == "assigned" and m["result"] is None
    with pytest.raises(StaleLease):
        ms.report("not-a-lease", "done", exit=0)
    with pytest.raises(StaleLease):
        ms.report(None, "done")


def test_repeated_ending_is_accepted_other_is_refused(tmp_path):
    ms = machines(tmp_path, once_site(tmp_path))
    lease = ms.next_boot(MAC1).lease
    ms.report(lease, "started")
    ms.report(lease, "done", exit=0)
    assert ms.report(lease, "done", exit=0)["state"] == "done"
    with pytest.raises(StaleLease):
        ms.report(lease, "failed", exit=1)
    with pytest.raises(StaleLease):
        ms.report(lease, "started")


@pytest.mark.parametrize("kw", [
    {"event": "finished"}, {"event": "done", "exit": "0"},
    {"event": "done", "exit": True}, {"event": "progress", "progress": [1]},
    {"event": "started", "log": "one line"},
    {"event": "started", "log": [1, 2]}])
def test_bad_reports(tmp_path, kw):
    ms = machines(tmp_path, once_site(tmp_path))
    lease = ms.next_boot(MAC1).lease
    with pytest.raises(InputError):
        ms.report(lease, **kw)
    assert ms.machine(MAC1)["state"] == "assigned"


def test_sync_keeps_unchanged_assignments(tmp_path):
    site = once_site(tmp_path)
    ms = machines(tmp_path, site)
    lease = ms.next_boot(MAC1).lease
    ms.sync(site)
    ms.sync(once_site(tmp_path))
    assert ms.next_boot(MAC1).lease == lease
    site = once_site(tmp_path)
    site.hosts[MAC1].job = None                          # job taken away
    ms.sync(site)
    assert ms.machine(MAC1)["state"] == "idle"
    assert ms.next_boot(MAC1).kind == "menu"
    ms.sync(make_site(tmp_path))                         # host removed
    assert ms.machine(MAC1)["state"] == "unknown"


def test_host_removed_cancels_its_lease(tmp_path):
    ms = machines(tmp_path, once_site(tmp_path))
    lease = ms.next_boot(MAC1).lease
    ms.sync(make_site(tmp_path))
    assert ms.machine(MAC1)["state"] == "cancelled"
    with pytest.raises(StaleLease):
        ms.report(lease, "started")


def test_unknown_machine_is_recorded_and_boots_the_menu(tmp_path):
    ms = machines(tmp_path, once_site(tmp_path))
    ms.booted("52-54-00-AB-CD-EF", "ipxe-efi")
    m = ms.machine(MAC2)
    assert m["state"] == "unknown" and m["firmware"] == "ipxe-efi"
    assert m["last_seen"] is not None and m["next"] == "menu"
    assert [x["mac"] for x in ms.snapshot()] == [MAC1, MAC2]


def test_menu_override(tmp_path):
    site = make_site(tmp_path, hosts=[Host(MAC1, menu="rescue")])
    ms = machines(tmp_path, site)
    boot = ms.next_boot(MAC1)
    assert boot.kind == "entry" and boot.entry.name == "rescue"
    assert ms.machine(MAC1)["state"] == "idle"


def test_console_actions(tmp_path, changes):
    ms = machines(tmp_path, make_site(tmp_path, hosts=[Host(MAC1,
                                                            name="pc01")]),
                  changes)
    with pytest.raises(NotFound):
        ms.assign(MAC2, "restore")
    with pytest.raises(NotFound):
        ms.assign(MAC1, "nope")
    m = ms.assign(MAC1, "restore", once=True)
    assert m["state"] == "assigned" and m["next"] == "job"
    lease = ms.next_boot(MAC1).lease
    m = ms.cancel(MAC1)
    assert m["state"] == "cancelled" and m["next"] == "menu"
    with pytest.raises(StaleLease):
        ms.report(lease, "started")
    assert ms.local(MAC1)["next"] == "local"
    ms.booted(MAC2)
    assert ms.assign(MAC2, "wipe", once=False)["job"] == "wipe"
    assert changes.count(MAC1) == 3


def test_console_assignment_survives_a_reload(tmp_path):
    site = make_site(tmp_path, hosts=[Host(MAC1)])
    ms = machines(tmp_path, site)
    ms.assign(MAC1, "restore")
    lease = ms.next_boot(MAC1).lease
    ms.sync(make_site(tmp_path, hosts=[Host(MAC1)]))
    assert ms.next_boot(MAC1).lease == lease


def test_progress_keeps_rate_and_eta(tmp_path):
    ms = machines(tmp_path, once_site(tmp_path))
    lease = ms.next_boot(MAC1).lease
    ms.report(lease, "started")
    # Without rate/eta in the object: from the samples (one per second).
    ms.report(lease, "progress", progress={"done": 100, "total": 1000})
    m = ms.report(lease, "progress", progress={"done": 300, "total": 1000})
    assert m["progress"]["rate"] == 200 and m["progress"]["eta"] == 3.5
    # rdeploy's own rate and eta are kept as they come.
    m = ms.report(lease, "progress", progress={
        "event": "progress", "task": "restore", "done": 400, "total": 1000,
        "percent": 40.0, "rate": 123, "eta": 4.9})
    assert m["progress"] == {"done": 400, "total": 1000, "percent": 40.0,
                             "rate": 123, "eta": 4.9, "task": "restore"}


def test_log_tail_is_bounded(tmp_path):
    ms = machines(tmp_path, once_site(tmp_path))
    lease = ms.next_boot(MAC1).lease
    m = ms.report(lease, "started",
                  log=[f"line {i}" for i in range(49)] + ["x" * 5000])
    assert len(m["log"]) == 20 and m["log"][0] == "line 30"
    assert len(m["log"][-1]) == 500


def test_each_report_s_tail_replaces_the_last(tmp_path):
    """The relay sends the whole tail so far each time; appending it
    showed a, a, b, a, b, c on the console."""
    ms = machines(tmp_path, once_site(tmp_path))
    lease = ms.next_boot(MAC1).lease
    ms.report(lease, "started", log=["a"])
    ms.report(lease, "progress", log=["a", "b"])
    m = ms.report(lease, "progress", log=["a", "b", "c"])
    assert m["log"] == ["a", "b", "c"]
    m = ms.report(lease, "progress", progress={"done": 1, "total": 2})
    assert m["log"] == ["a", "b", "c"]          # no tail: the last one stays


@pytest.mark.parametrize("progress", [
    {"done": float("inf"), "total": 10}, {"rate": float("inf")},
    {"done": 5, "total": 10, "rate": float("nan")},
    {"done": 10 ** 400, "total": 10 ** 401}, {"eta": -1.0},
    {"done": 1e308, "total": 1e-308}])
def test_hostile_progress_is_dropped_and_replays(tmp_path, progress):
    """Numbers that are not finite, out of range or absurd are dropped: the
    API stays strict JSON and the journal replays (an infinite rate once
    made every later start of the server fail)."""
    import json
    site = once_site(tmp_path)
    ms = machines(tmp_path, site)
    lease = ms.next_boot(MAC1).lease
    ms.report(lease, "started")
    ms.report(lease, "progress", progress={"done": 1, "total": 10})
    ms.report(lease, "progress", progress=progress)
    shown = ms.machine(MAC1)
    json.dumps(shown, allow_nan=False)
    ms.close()
    again = machines(tmp_path, site)
    assert again.machine(MAC1) == shown
    again.close()


def test_an_absurd_exit_code_is_refused(tmp_path):
    ms = machines(tmp_path, once_site(tmp_path))
    lease = ms.next_boot(MAC1).lease
    with pytest.raises(InputError):
        ms.report(lease, "done", exit=10 ** 30)
    assert ms.machine(MAC1)["state"] == "assigned"
