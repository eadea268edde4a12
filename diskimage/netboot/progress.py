"""A job's progress as the imaging environment reports it (rdeploy's
``--progress=json`` objects): kept with a rate and an ETA.

rdeploy's own ``rate`` and ``eta`` are kept as they come; an object
without them gets them from the last few samples (bytes done at the time
of each report).
"""


def _rate(samples):
    if len(samples) < 2:
        return None
    (t0, d0), (t1, d1) = samples[0], samples[-1]
    if t1 <= t0 or d1 < d0:
        return None
    return (d1 - d0) / (t1 - t0)


def _number(value):
    return value if isinstance(value, (int, float)) and \
        not isinstance(value, bool) and value >= 0 else None


def update(m, p, at):
    """Machine `m`'s progress from report object `p` made at time `at`
    (unix seconds): m.progress, and m.samples for the rate."""
    if not isinstance(p, dict):
        return
    done, total = _number(p.get("done")), _number(p.get("total"))
    if done is not None and at is not None:
        if m.samples and done < m.samples[-1][1]:
            m.samples.clear()                 # a new task started
        m.samples.append((at, done))
    rate = _number(p.get("rate"))
    if rate is None:
        rate = _rate(m.samples)
    percent = _number(p.get("percent"))
    if percent is None and done is not None and total:
        percent = round(100 * done / total, 1)
    eta = _number(p.get("eta"))
    if eta is None and rate and done is not None and total:
        eta = round(max(total - done, 0) / rate, 1)
    m.progress = {"done": done, "total": total, "percent": percent,
                  "rate": round(rate) if rate is not None else None,
                  "eta": eta}
    if isinstance(p.get("task"), str):
        m.progress["task"] = p["task"][:80]


def clean(progress):
    """The fields of an rdeploy progress object worth keeping."""
    if not progress:
        return {}
    keep = {}
    for key in ("done", "total", "percent", "rate", "eta"):
        if _number(progress.get(key)) is not None:
            keep[key] = progress[key]
    if isinstance(progress.get("task"), str):
        keep["task"] = progress["task"][:80]
    return keep
