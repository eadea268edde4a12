"""What the environment runs at a service boot (`bwpart service-boot ID`,
started by /init for ``rd.bwpart=ID``): the pending job, once per boot,
until it exits 0 or its tries are used up, and then the switch back.

The sequence (:func:`run`):

1. find the service partition by its id, load its state;
2. no pending job: disarm (the production OS boots next), return 0;
3. the try counted and saved (``job.used`` + 1) BEFORE the job runs, and
   the switch thrown again (arming.rearm: BootNext was used up), so that
   a cut from here on boots the service environment again;
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

A FAT that does not mount is a failed try (exit 1, the job not run).
The result is kept in ``state["last"]``: ``{"result": "done" | "failed" |
"exhausted", "exit": int (null: the last try was cut), "try": N, "at":
ISO time, "job": its name}``, with ``"interrupted": true`` for a cut last
try and ``"error": text`` when the FAT did not mount.

The result is written before the switch is thrown back (a cut between
them: the next boot finds no job and disarms), each write with the
signals held and fsynced.
"""

import contextlib
import os
import signal
import tempfile

from ..errors import DiskImageError, InputError
from ..host import tools
from ..sighold import held
from . import arming, partition, state

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
    from . import fatfs
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


def _finish(service, st, result, code, try_, vars, progress, **more):
    st["last"] = {"result": result, "exit": code, "try": try_,
                  "at": state.now(), "job": st["job"]["name"], **more}
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


def run(part_id, disk=None, mount=True, vars=None, progress=None,
        where=MOUNT_POINT, cwd="/tmp"):
    """The whole service boot for the partition `part_id` (see the
    module's text); the job's exit status (0 when there was none).

    `disk`: look for the partition on that disk only (else every disk of
    /sys/block is scanned); `mount=False` runs the job without the FAT
    mounted and without BWPART_STORE (for tests of the decisions on a disk
    file, where vfat does not mount); `vars`: the Efivars to use."""
    service = _find(part_id, disk)
    st = state.load(service)
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
    arming.rearm(service, vars=vars, st=st)
    try:
        with _store(service, mount, where) as store:
            code = run_job(job["text"], _job_env(service, job, store), cwd)
    except DiskImageError as e:
        _say(progress, f"job {job['name']} not run: {e}")
        code, error = 1, str(e)
    else:
        error = None
    more = {"error": error} if error else {}
    if code == 0:
        _finish(service, st, "done", 0, job["used"], vars, progress)
    elif job["used"] < job["tries"]:
        _finish(service, st, "failed", code, job["used"], vars, progress,
                **more)
    else:
        _finish(service, st, "exhausted", code, job["used"], vars,
                progress, **more)
    return code
