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
import re

from ..errors import InputError
from . import fields as f
from . import tail

JOB_LIMIT = 128 << 10
TRIES_LIMIT = 1000
RESULTS = ("done", "failed", "exhausted", "state damaged")
KEYS = ("job", "armed", "last")

_U64 = f.integer(0, (1 << 64) - 1)
_PRIMARY = re.compile(r"[1-4]\Z")
_NUMBER = re.compile(r"[1-9][0-9]{0,2}\Z")
_FLAGS = f.either(
    f.mapping(_PRIMARY, f.integer(0, 255), 4),
    f.obj({"table": f.text(8, choices=("mbr", "gpt"))},
          {"active": f.items(f.integer(1, 4), 4),
           "attrs": f.mapping(_NUMBER, _U64, 256)}))
_JOB = f.obj({"name": f.text(255), "sha256": f.text(64, f.HEX64),
              "text": f.text(JOB_LIMIT), "tries": f.integer(1, TRIES_LIMIT),
              "used": f.integer(0, TRIES_LIMIT)},
             {"created": f.text(64)})
_ARMED = f.obj({"firmware": f.text(8, choices=("bios", "uefi"))}, {
    "bios": f.nullable(f.obj(optional={
        "method": f.text(16, choices=("active-flag", "legacy-attr")),
        "flags_before": _FLAGS,
        "attrs_before": f.mapping(_NUMBER, _U64, 256)})),
    "uefi": f.nullable(f.obj(optional={
        "entry": f.nullable(f.text(8, f.BOOT_ENTRY)),
        "bootorder_before": f.nullable(f.b64(8192)),
        "bootorder_attrs": f.nullable(f.integer(0, (1 << 32) - 1))}))})
_LAST = f.obj({"result": f.text(16, choices=RESULTS)},
              {"exit": f.nullable(f.integer(-255, 255)),
               "try": f.integer(0, TRIES_LIMIT), "at": f.text(64),
               "job": f.nullable(f.text(255)),
               "interrupted": f.boolean, "error": f.text(64 << 10)})
SPEC = f.obj(optional={"job": f.nullable(_JOB), "armed": f.nullable(_ARMED),
                       "last": f.nullable(_LAST)})


def validate(value, where):
    """*value* (a state read back) when each field is of its kind and in
    its bounds, and the job's text is the one its sha256 names (the job
    runs as root in the environment); InputError naming the field and
    *where* otherwise."""
    f.run(SPEC, value, where, "the state")
    job = value.get("job")
    if job and hashlib.sha256(job["text"].encode("utf-8")).hexdigest() \
            != job["sha256"]:
        raise InputError(f"{where}: service state job.text does not have "
                         f"the sha256 job.sha256 names")
    return value


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
    if not isinstance(tries, int) or not 1 <= tries <= TRIES_LIMIT:
        raise InputError(f"job {name}: tries must be 1 to {TRIES_LIMIT}, "
                         f"not {tries}")
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
