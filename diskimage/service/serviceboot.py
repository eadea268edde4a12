"""What the environment runs at a service boot (`bwpart service-boot ID`,
started by /init for ``rd.bwpart=ID``): the pending job, once per boot,
until it exits 0 or its tries are used up, and then the switch back.

The sequence (:func:`run`):

1. find the service partition by its id, load its state;
2. no pending job: disarm (the production OS boots next), return 0;
3. the try counted and saved (``job.used`` + 1) BEFORE the job runs, and
   the switch thrown again (arming.rearm: BootNext was used up; not armed
   at all: armed now, for the running firmware), so that a cut from here
   on boots the service environment again;
4. the FAT mounted at /run/bwpart/service, the job run with ``sh JOB`` in
   /tmp, with BWPART_DISK (the disk, e.g. /dev/sda), BWPART_PARTITION (the
   service partition's number), BWPART_ID (its id), BWPART_STORE
   (/run/bwpart/service/store), BWPART_TRY (1, 2, ...) and BWPART_TRIES in
   its environment; the FAT unmounted (synced) after;
5. exit 0: result "done", the job cleared, disarmed.  Failure with tries
   left: result "failed", the job kept, still armed (the next boot runs it
   again).  Failure on the last try: result "exhausted", the job cleared,
   disarmed.

A power cut (or a crash, a reset) during a job counts as a used try: the
try was saved before the job started.  The next boot is the service
environment's again, which runs the job again while tries are left (a job
re-imaging the production OS must therefore be safe to run again from the
start, which rdeploy restore is).  When the cut try was the last one, that
boot records "exhausted" (interrupted) and disarms: the production OS
boots, whatever the job left of it.  Choose --tries with that in mind.

After the job the partition is found again and its state read again: a
job that rewrote the disk's table so that the service partition is gone
gets nothing written to the disk (only the UEFI variables are put back);
a job that queued the next job (`bwpart boot-next` inside the job) leaves
that job and its arming in place, only its own result is recorded.

A FAT that does not mount is a failed try (exit 1, the job not run); one
that does not unmount after the job leaves the job's status as it is.
The result is kept in ``state["last"]``: ``{"result": "done" | "failed" |
"exhausted", "exit": int (null: the last try was cut), "try": N, "at":
ISO time, "job": its name}``, with ``"interrupted": true`` for a cut last
try and ``"error": text`` when the FAT did not mount or unmount.

The result is written before the switch is thrown back (a cut between
them: the next boot finds no job and disarms), each write with the
signals held and fsynced.

Both state slots damaged (before or after the job): the job is lost and
so is what arming saved; the switch is thrown back from the install
record instead (fallback.py), a fresh state is written whose "last" is
``{"result": "state damaged", "exit": N, "try": 0, "job": null, "error":
what was wrong}``, and run() returns 1: the machine reboots into the
production OS, never into the service environment for ever.

The disk's lock (lock.py) is held over each step that writes, and let go
while the job runs.
"""

import contextlib
import os
import signal
import tempfile

from ..errors import DiskImageError, InputError
from ..host import tools
from ..sighold import held
from . import arming, fallback, fatfs, fields, lock, partition, state

MOUNT_POINT = "/run/bwpart/service"


def _find(part_id, disk):
    if disk is None:
        return partition.service_by_id(part_id)
    service = partition.find_service(disk)
    if service is None or service.part_id != part_id:
        raise InputError(f"{disk}: no service partition {part_id}")
    return service


@contextlib.contextmanager
def _store(service, mount, where):
    """The store directory for the job (None: not mounted)."""
    if not mount:
        yield None
        return
    os.makedirs(where, exist_ok=True)
    with fatfs.mounted(service, where):
        yield os.path.join(where, "store")


def _exit_status(returncode):
    return 128 - returncode if returncode < 0 else returncode


def run_job(text, env, cwd="/tmp"):
    """Run the job's text with ``sh`` in `cwd`, output to ours (the
    consoles); its exit status (128 + N for a signal N)."""
    fd, path = tempfile.mkstemp(prefix="bwpart-job.", suffix=".sh")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        child = tools.start(["sh", path], env=env, cwd=cwd,
                            what="the service job")
        while True:
            try:
                return _exit_status(child.wait())
            except KeyboardInterrupt:
                child.send_signal(signal.SIGINT)
    finally:
        os.unlink(path)


def _job_env(service, job, store):
    env = {"BWPART_DISK": str(service.disk),
           "BWPART_PARTITION": str(service.number),
           "BWPART_ID": service.part_id,
           "BWPART_TRY": str(job["used"]),
           "BWPART_TRIES": str(job["tries"])}
    if store is not None:
        env["BWPART_STORE"] = store
    return env


def _save(service, st):
    with held():
        state.save(service, st)


def _say(progress, text):
    if progress:
        progress(text)


def _last(result, code, job, more):
    return {"result": result, "exit": code, "try": job["used"],
            "at": state.now(), "job": job["name"], **more}


def _same(found, job):
    return bool(found) and all(found.get(k) == job[k]
                               for k in ("sha256", "created", "tries"))


def _after(service, st, vars, progress):
    """(service, state) as the job left them: the partition found again
    (a job may rewrite the disk's table) and its state read again (a job
    may queue the next one with `bwpart boot-next`).  None when the
    partition is gone: nothing is written to the disk then, only the UEFI
    variables are put back."""
    try:
        again = partition.find_service(service.disk)
    except DiskImageError:
        again = None
    if again is not None and again.part_id == service.part_id:
        return again, state.load(again)
    _say(progress, f"{service.disk}: the service partition is gone after "
         f"the job (the table was rewritten): no result is recorded")
    if (st.get("armed") or {}).get("firmware") == "uefi":
        arming.disarm(service, vars=vars, st=st, save=False)
    return None


def _finish(service, st, result, code, try_, vars, progress, **more):
    st["last"] = _last(result, code, st["job"], more)
    keep = result == "failed"
    if not keep:
        st["job"] = None
    _save(service, st)
    if keep:
        _say(progress, f"job failed (exit {code}), try {try_} of "
             f"{st['job']['tries']}: the next boot runs it again")
        return
    _say(progress, f"job {result} (exit {code}): disarming, the next boot "
         f"is the production OS")
    arming.disarm(service, vars=vars, st=st)


def _rearm(service, st, vars, progress):
    """The switch thrown again; armed when it was not (a boot-next cut
    before it armed, a service boot chosen by hand), so that a cut during
    the job boots here again.  A refusal of that arming is said and the
    job runs all the same."""
    if st.get("armed"):
        arming.rearm(service, vars=vars, st=st)
        return
    firmware = arming.firmware()
    try:
        arming.arm(service, firmware, vars=vars, st=st)
    except DiskImageError as e:
        _say(progress, f"not armed ({firmware}): {e}; a cut during the job "
             f"boots the production OS")


def _damaged(service, damage, vars, progress, job_code=None):
    """Both state slots damaged (or a state that fails its checks): the
    job and what arming changed are lost.  The switch thrown back from
    the install record (fallback.disarm_from_record) first, then a fresh
    state whose "last" says so; 1, so that the machine reboots into the
    production OS.  (A cut between the two: the next boot is production's,
    and the state still damaged says it in `bwpart status`.)"""
    _say(progress, f"{damage}: the pending job and the arming are lost; "
         f"disarming from the install record")
    done = fallback.disarm_from_record(service, vars=vars)
    fresh = state.empty()
    fresh["last"] = {"result": "state damaged",
                     "exit": 1 if job_code is None else job_code,
                     "try": 0, "at": state.now(), "job": None,
                     "error": str(damage)[:4096]}
    _save(service, fresh)
    _say(progress, "disarmed: " + (", ".join(done) or "nothing was armed")
         + "; the next boot is the production OS")
    return 1


def _load(service, vars, progress, job_code=None):
    """(state, None), or (None, exit status) when the state is damaged
    and the fallback ran."""
    try:
        return state.load(service), None
    except InputError as damage:
        return None, _damaged(service, damage, vars, progress, job_code)


def run(part_id, disk=None, mount=True, vars=None, progress=None,
        where=MOUNT_POINT, cwd="/tmp"):
    """The whole service boot for the partition `part_id` (see the
    module's text); the job's exit status (0 when there was none).

    `disk`: look for the partition on that disk only (else every disk of
    /sys/block is scanned); `mount=False` runs the job without the FAT
    mounted and without BWPART_STORE (for tests of the decisions on a disk
    file, where vfat does not mount); `vars`: the Efivars to use.

    The disk's lock (lock.held) is held over the decisions and the state
    writes before the job and after it, not while the job runs (a job may
    run bwpart itself)."""
    fields.part_id(part_id, "rd.bwpart")
    service = _find(part_id, disk)
    with lock.held(service.disk):
        st, code = _load(service, vars, progress)
        if st is None:
            return code
        job = _start(service, st, vars, progress)
    if not isinstance(job, dict):
        return job
    code, more = _job(service, job, mount, where, cwd, progress)
    with lock.held(service.disk):
        return _end(service, st, job, code, more, vars, progress)


def _start(service, st, vars, progress):
    """The decisions before the job: the job to run (its try counted and
    saved, the switch thrown again), or the exit status when there is
    none to run."""
    job = st.get("job")
    if not job:
        _say(progress, "no pending job: disarming")
        arming.disarm(service, vars=vars, st=st)
        return 0
    if job["used"] >= job["tries"]:
        _say(progress, f"job {job['name']}: its last try "
             f"({job['used']} of {job['tries']}) did not end (power cut?)")
        _finish(service, st, "exhausted", None, job["used"], vars,
                progress, interrupted=True)
        return 1
    if job["used"] and (st.get("last") or {}).get("try") != job["used"]:
        _say(progress, f"job {job['name']}: try {job['used']} did not end "
             f"(power cut?)")
    job["used"] += 1
    _save(service, st)
    _say(progress, f"job {job['name']}: try {job['used']} of "
         f"{job['tries']}")
    _rearm(service, st, vars, progress)
    return job


def _job(service, job, mount, where, cwd, progress):
    """The job run, with the FAT mounted: (exit status, more for "last")."""
    code = error = None
    try:
        with _store(service, mount, where) as store:
            code = run_job(job["text"], _job_env(service, job, store), cwd)
    except DiskImageError as e:
        error = str(e)
        if code is None:
            _say(progress, f"job {job['name']} not run: {e}")
            code = 1
        else:       # the FAT did not unmount: the job's status stands
            _say(progress, f"after job {job['name']}: {e}")
    return code, ({"error": error} if error else {})


def _end(service, st, job, code, more, vars, progress):
    """The result recorded and the switch thrown back (or left, for a try
    that failed with tries left); the job's exit status."""
    if code == 0:
        result = "done"
    elif job["used"] < job["tries"]:
        result = "failed"
    else:
        result = "exhausted"
    try:
        found = _after(service, st, vars, progress)
    except InputError as damage:        # the job left the state damaged
        return _damaged(service, damage, vars, progress, code)
    if found is None:
        return code
    service, now = found
    if not _same(now.get("job"), job):
        _say(progress, f"job {job['name']} {result} (exit {code}); it "
             f"queued the job {now['job']['name']!r}, which runs next")
        now["last"] = _last(result, code, job, more)
        _save(service, now)
        return code
    now["job"] = job
    _finish(service, now, result, code, job["used"], vars, progress, **more)
    return code
