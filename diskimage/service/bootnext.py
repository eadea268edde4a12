"""`bwpart boot-next`: a job for the service environment, its tries, and
the switch thrown so that the machine boots there next.

A job is a shell script (run with ``sh JOB`` in the environment: busybox
ash), at most 128 KiB of text; an empty file, a binary one (a NUL byte, or
not UTF-8) and anything that is not a regular file are refused.  Its text
is kept in the service partition's state, so it needs nothing from the
network or the production OS at the service boot.

A job is required: a service boot without one has nothing to do and boots
the production OS again at once (serviceboot disarms), so `boot-next`
without a job is refused rather than costing the machine a reboot for
nothing.

The order: every check first (the job, the tries, the firmware and its
boot code: arming.check), then the state written (job, tries, used 0),
then the switch thrown (arming.arm).  A cut between the two leaves a
pending job and a machine that boots production: `bwpart status` shows it
as not armed, and boot-next again arms it.  A pending job is replaced; the
result says so in its warnings.
"""

import os
import stat

from ..errors import InputError, TargetChangedError, TargetError, \
    DiskImageError
from ..sighold import held
from . import arming, lock, partition, record, state, tail

MAX_JOB = 128 << 10
MAX_TRIES = 100


def read_job(job_path):
    """The job's (name, text), or InputError saying why it cannot be one."""
    if job_path is None:
        raise InputError("boot-next needs a job (--job=FILE): a service "
                         "boot without one would only reboot into the "
                         "production OS")
    try:
        st = os.stat(job_path)
    except OSError as e:
        raise InputError(f"{job_path}: cannot read the job: "
                         f"{e.strerror}") from e
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{job_path}: the job is not a regular file")
    if st.st_size > MAX_JOB:
        raise InputError(f"{job_path}: the job is {st.st_size} bytes, more "
                         f"than {MAX_JOB} (128 KiB)")
    try:
        with open(job_path, "rb") as f:
            data = f.read(MAX_JOB + 1)
    except OSError as e:
        raise InputError(f"{job_path}: cannot read the job: "
                         f"{e.strerror}") from e
    if len(data) > MAX_JOB:
        raise InputError(f"{job_path}: the job is more than {MAX_JOB} "
                         f"bytes (128 KiB)")
    if not data.strip():
        raise InputError(f"{job_path}: the job is empty")
    nul = data.find(b"\0")
    if nul >= 0:
        raise InputError(f"{job_path}: the job is binary (a NUL byte at "
                         f"offset {nul}): it must be a shell script")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{job_path}: the job is not UTF-8 text (byte "
                         f"{e.start}): it must be a shell script") from None
    return os.path.basename(job_path), text


def _tries(tries):
    if isinstance(tries, bool) or not isinstance(tries, int) or \
            not 1 <= tries <= MAX_TRIES:
        raise InputError(f"--tries={tries}: a whole number from 1 to "
                         f"{MAX_TRIES}")
    return tries


def _replaced(job):
    return (f"the pending job {job.get('name')!r} ({job.get('used', 0)} of "
            f"{job.get('tries')} tries used) is replaced")


def _fresh(service, damage, vars, warnings):
    """Both state slots damaged: the switch thrown back from the install
    record (fallback.disarm_from_record), and a fresh state to arm from,
    with a warning saying so."""
    from . import fallback
    with held():
        thrown = fallback.disarm_from_record(service, vars=vars)
    warnings.append(f"state damaged: {damage}; disarmed from the install "
                    f"record ({', '.join(thrown) or 'nothing was armed'}) "
                    f"and started a fresh state")
    return state.empty()


def boot_next(disk, job_path, tries=3, firmware=None, vars=None,
              progress=None):
    """Boot `disk`'s service environment next and run the job there, up to
    `tries` boots, until it exits 0.  `firmware`: "bios" or "uefi" (None:
    the running machine's).  Returns a summary dict (disk, partition, job,
    sha256, tries, firmware, armed, warnings).  Holds the disk's lock
    (lock.held) from the search for the partition to the arming."""
    name, text = read_job(job_path)
    tries = _tries(tries)
    with lock.held(disk):
        return _boot_next(disk, name, text, tries, firmware, vars, progress)


def _boot_next(disk, name, text, tries, firmware, vars, progress):
    service = partition.find_service(disk)
    if service is None:
        raise TargetError(f"{disk}: no service partition (bwpart install "
                          f"first)")
    if not record.whole(service):
        raise TargetError(f"{disk}: partition {service.number}: "
                          f"{record.INTERRUPTED} (then install again); "
                          f"nothing written")
    firmware = firmware or arming.firmware()
    arming.check(service, firmware, vars)
    warnings = []
    try:
        st = state.load(service)
    except tail.Damaged as err:
        st = _fresh(service, err, vars, warnings)
    if st.get("job"):
        warnings.append(_replaced(st["job"]))
    st["job"] = state.new_job(name, text, tries)
    sha = st["job"]["sha256"]
    if progress:
        progress(f"saving job {name} ({tries} tries)")
    with held():
        state.save(service, st)
    if progress:
        progress(f"arming the next boot ({firmware})")
    try:
        armed = arming.arm(service, firmware, vars=vars, st=st)
    except DiskImageError as e:
        raise TargetChangedError(
            f"{disk}: the job is saved but the next boot is not armed: "
            f"{e}; `bwpart boot-next` again arms it, `bwpart status` "
            f"shows it") from e
    return {"disk": disk, "partition": service.part_id, "job": name,
            "sha256": sha, "tries": tries, "firmware": firmware,
            "armed": armed, "warnings": warnings}
