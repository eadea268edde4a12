"""The model of docs/SCALE.md: the time to image N machines with unicast,
multicast and the swarm, fitted to measured runs (the JSON files that
tests/swarm/test_swarm_times.py and bench/swarmbench.py write), and what
it predicts for larger sites.

    python bench/scalemodel.py RUN.json... [--predict]

For each method, by least squares over every row of every run given:

    unicast              seconds = a + b * N * S / R
    multicast, swarm     seconds = a + b * S / R + k * (N - 1) * S

S the image's bytes, R the server's uplink in bytes/s: unicast sends N
images through it, multicast and the swarm one at the least.  a: the
fixed cost (starting Python, joining, the final check of a small disk);
b: 1 / the efficiency reached on the link, fitted for unicast (its runs
determine it: N * S / R spans 3 to 54 s) and taken from it for the swarm
(TCP through the same bucket), 1 / 0.9 for multicast (udp-sender is given
--rate = 0.9 R); a free b is not determined by two sizes with the k term
beside it.  k (seconds per GB per extra machine): the receivers share the
test machine's 2 cores (N receivers, each hashing, checking and writing
S), which a site's machines do not: the predictions leave k out and put
each machine's own disk in its place (writing S at WRITE bytes/s, and for
the swarm reading it back at READ for the final check).  Prints the
constants, the residuals, and with --predict docs/SCALE.md's table (50 GB,
32, 100 and 1,000 machines, 1 and 10 Gb/s).
"""

import json
import sys

METHODS = ("unicast", "multicast", "swarm")


def load(paths):
    """[(method, N, S bytes, R bytes/s, seconds)] of every row."""
    points = []
    for path in paths:
        with open(path) as f:
            run = json.load(f)
        rate = run["mbit"] * 1e6 / 8
        for row in run["rows"]:
            points.append((row["method"], row["machines"],
                           run["image_bytes"], rate, row["seconds"]))
    return points


def feature(method, n, size, rate):
    if method == "unicast":
        return [1.0, n * size / rate]
    return [1.0, size / rate, (n - 1) * size / 1e9]


def _solve(matrix, vector):
    """Gaussian elimination with partial pivoting."""
    m = [row[:] + [v] for row, v in zip(matrix, vector)]
    k = len(m)
    for col in range(k):
        pivot = max(range(col, k), key=lambda r: abs(m[r][col]))
        m[col], m[pivot] = m[pivot], m[col]
        if abs(m[col][col]) < 1e-12:
            raise ValueError("the runs do not determine the model: give "
                             "runs of two image sizes or rates")
        for r in range(k):
            if r != col:
                f = m[r][col] / m[col][col]
                m[r] = [a - f * b for a, b in zip(m[r], m[col])]
    return [m[i][k] / m[i][i] for i in range(k)]


MULTICAST_B = 1 / 0.9
WRITE, READ = 1e9, 2e9      # a receiver's disk (NVMe class), bytes/s


def _least_squares(rows):
    width = len(rows[0][0])
    ata = [[sum(x[i] * x[j] for x, _ in rows) for j in range(width)]
           for i in range(width)]
    aty = [sum(x[i] * t for x, t in rows) for i in range(width)]
    return _solve(ata, aty)


def fit(points):
    """{method: (a, b[, k])}: unicast's a and b by least squares; for the
    others b fixed (unicast's, or MULTICAST_B), a and k fitted."""
    rows = [(feature(m, n, s, r), t) for m, n, s, r, t in points
            if m == "unicast"]
    found = {"unicast": tuple(_least_squares(rows))}
    for method in METHODS[1:]:
        b = MULTICAST_B if method == "multicast" else found["unicast"][1]
        rows = []
        for m, n, s, r, t in points:
            if m == method:
                one, x, shared = feature(m, n, s, r)
                rows.append(([one, shared], t - b * x))
        if len(rows) > 2:
            a, k = _least_squares(rows)
            found[method] = (a, b, k)
    return found


def predict(model, method, n, size, rate, shared_cpu=True):
    """Seconds for `n` machines.  Without `shared_cpu`: the k term (the
    test machine's cores shared by all receivers) left out, and no less
    than each machine's disk allows (writing the image; for the swarm,
    then reading it back for its check)."""
    x = feature(method, n, size, rate)
    if shared_cpu:
        return sum(c * v for c, v in zip(model[method], x))
    seconds = sum(c * v for c, v in zip(model[method], x[:2]))
    seconds = max(seconds, model[method][0] + size / WRITE)
    return seconds + (size / READ if method == "swarm" else 0)


def residuals(model, points):
    return [(m, n, t, predict(model, m, n, s, r)) for m, n, s, r, t
            in points if m in model]


def main(argv):
    paths = [a for a in argv if not a.startswith("--")]
    points = load(paths)
    model = fit(points)
    for method, (a, b, *k) in model.items():
        print(f"{method}: a = {a:.2f} s, b = {b:.3f} (link efficiency "
              f"{1 / b:.2f})" + (f", k = {k[0]:.2f} s per GB per extra "
                                 f"machine" if k else ""))
    for m, n, t, p in residuals(model, points):
        print(f"  {m} N={n}: measured {t:.1f} s, model {p:.1f} s")
    if "--predict" in argv:
        for gbit in (1, 10):
            for n in (32, 100, 1000):
                cells = [
                    f"{m} " + format(predict(model, m, n, 50e9, gbit * 1.25e8,
                                             shared_cpu=False), ".0f") + " s"
                    for m in METHODS if m in model]
                print(f"50 GB, {gbit} Gb/s, {n} machines: " +
                      ", ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
