"""The model of docs/SCALE.md: the time to image N machines with unicast,
multicast and the swarm, fitted to measured runs (the JSON files that
tests/swarm/test_swarm_times.py and bench/swarmbench.py write), and what
it predicts for larger sites.

    python bench/scalemodel.py RUN.json... [--predict]

For each method, seconds = a + b * X + c * log2(N), by least squares over
every row of every run given, where X is the time the bytes need on one
link: N * S / R for unicast (the server's uplink carries N images), S / R
for multicast and the swarm (one image's worth crosses each receiver's
downlink), S the image's bytes (the wanted raw bytes are within 1 % of
it on the runs' disks of random files) and R a link's rate in bytes/s.
a: the fixed cost (starting the processes, joining, the final check);
b: 1 / the link efficiency reached; c: what each doubling of the machines
adds (coordination, the slowest of more machines, CPU shared on the test
machine).  Prints the constants, the residuals, and with --predict the
predictions of docs/SCALE.md.
"""

import json
import math
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
    x = n * size / rate if method == "unicast" else size / rate
    return [1.0, x, math.log2(n)]


def _solve(matrix, vector):
    """Gaussian elimination with partial pivoting (3 x 3)."""
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


def fit(points):
    """{method: (a, b, c)}: least squares of seconds on feature()."""
    found = {}
    for method in METHODS:
        rows = [(feature(method, n, s, r), t) for m, n, s, r, t in points
                if m == method]
        if len(rows) < 3:
            continue
        ata = [[sum(x[i] * x[j] for x, _ in rows) for j in range(3)]
               for i in range(3)]
        aty = [sum(x[i] * t for x, t in rows) for i in range(3)]
        found[method] = tuple(_solve(ata, aty))
    return found


def predict(model, method, n, size, rate):
    a, b, c = model[method]
    return sum(k * x for k, x in zip((a, b, c),
                                     feature(method, n, size, rate)))


def residuals(model, points):
    return [(m, n, t, predict(model, m, n, s, r)) for m, n, s, r, t
            in points if m in model]


def main(argv):
    paths = [a for a in argv if not a.startswith("--")]
    points = load(paths)
    model = fit(points)
    for method, (a, b, c) in model.items():
        print(f"{method}: a = {a:.2f} s, b = {b:.3f} (link efficiency "
              f"{1 / b if b else float('inf'):.2f}), c = {c:.2f} s per "
              f"doubling")
    for m, n, t, p in residuals(model, points):
        print(f"  {m} N={n}: measured {t:.1f} s, model {p:.1f} s")
    if "--predict" in argv:
        for gbit in (1, 10):
            for n in (100, 1000):
                cells = [f"{predict(model, m, n, 50e9, gbit * 1.25e8):.0f}"
                         for m in METHODS if m in model]
                print(f"50 GB, {gbit} Gb/s, {n} machines: " +
                      ", ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
