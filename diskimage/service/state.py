"""The service partition's state: the pending job and its tries, what
arming changed, the last result.  Kept in the tail's two state slots
(tail.py), so each save is torn-write safe.

    {"job": null | {"name", "sha256", "text", "tries", "used", "created"},
     "armed": null | {"firmware": "bios"|"uefi", "bios": {...},
                      "uefi": {"entry": "Boot0007", "bootorder_before": ...}},
     "last": null | {"result": "done"|"failed"|"exhausted", "exit": int,
                     "try": int, "at": iso}}

The functions that change a state dict change it in place and return
what the caller wants; given a *service* they also save it.
"""

import datetime
import hashlib

from ..errors import InputError
from . import tail

JOB_LIMIT = 128 << 10
RESULTS = ("done", "failed", "exhausted")
KEYS = ("job", "armed", "last")


def now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds")


def empty():
    return {key: None for key in KEYS}


def load(service):
    """The state dict, every key present (None when unset)."""
    state = empty()
    state.update(tail.read_state(service))
    return state


def save(service, state):
    """Write *state* over the tail (the other slot, fsync)."""
    tail.write_state(service, state)


def new_job(name, text, tries=3):
    """A job dict for *text* (str or bytes, UTF-8), at most 128 KiB;
    InputError otherwise."""
    if isinstance(text, str):
        text = text.encode("utf-8")
    if len(text) > JOB_LIMIT:
        raise InputError(f"job {name}: {len(text)} bytes, more than the "
                         f"{JOB_LIMIT} (128 KiB) a job may have")
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(f"job {name}: not UTF-8 text (byte {err.start})") \
            from None
    if not isinstance(tries, int) or tries < 1:
        raise InputError(f"job {name}: tries must be 1 or more, not {tries}")
    return {"name": name, "sha256": hashlib.sha256(text).hexdigest(),
            "text": decoded, "tries": tries, "used": 0, "created": now()}


def set_job(state, job, service=None):
    """Make *job* the pending job (the last result stays until it ends)."""
    state["job"] = job
    if service is not None:
        save(service, state)
    return job


def pending(state):
    """The job still to run (tries left), or None."""
    job = state.get("job")
    if job and job.get("used", 0) < job.get("tries", 0):
        return job
    return None


def count_try(state, service=None):
    """Count one more try of the pending job (used += 1) and return its
    number; saved when *service* is given, before the job runs, so a power
    cut during the job still counts it.  InputError when nothing is
    pending."""
    job = pending(state)
    if job is None:
        raise InputError("no pending job to run")
    job["used"] = job.get("used", 0) + 1
    if service is not None:
        save(service, state)
    return job["used"]


def tries_left(state):
    job = state.get("job")
    return max(0, job["tries"] - job["used"]) if job else 0


def finish(state, result, exit, service=None):
    """End the job's try with *result* ("done", "failed" or "exhausted")
    and its exit status.  "failed" keeps the job (tries left); "done" and
    "exhausted" clear it."""
    if result not in RESULTS:
        raise ValueError(f"result {result!r} is not one of {RESULTS}")
    job = state.get("job")
    state["last"] = {"result": result, "exit": int(exit),
                     "try": job["used"] if job else 0, "at": now()}
    if result != "failed":
        state["job"] = None
    if service is not None:
        save(service, state)
    return state["last"]
