"""What encryption costs: rdeploy capture and restore of disk (a) with
--encrypt against without, in the same rounds (in alternation, the order
rotating), so that the ratios compare runs under the same machine load.

The passphrase comes from a file (--passphrase-file), so the time includes
the key derivation (scrypt n=2**17, r=8: about 0.5 s here) once per run,
as a real capture or restore pays it.  Target of issue 16: each encrypted
median within 15% of the plain one."""

import os

from measure import Pipe

from contenders import RDEPLOY, _cap, _remove

BEGIN = "<!-- bench-encrypt:begin (written by bench/run.py; do not edit) -->"
END = "<!-- bench-encrypt:end -->"
TARGET = 1.15
MB = 1e6

PLAIN_CAPTURE = "rdeploy capture"
SEALED_CAPTURE = "rdeploy capture --encrypt"
PLAIN_RESTORE = "rdeploy restore"
SEALED_RESTORE = "rdeploy restore (encrypted image)"
PAIRS = ((SEALED_CAPTURE, PLAIN_CAPTURE), (SEALED_RESTORE, PLAIN_RESTORE))


def passphrase_file(work):
    path = os.path.join(work, "bench-passphrase")
    with open(path, "w") as f:
        f.write("benchmark pass phrase, not a secret\n")
    os.chmod(path, 0o600)
    return path


def capture_rows(disk, out, pwfile):
    plain, sealed = out("crypt-plain.rdi"), out("crypt-sealed.rdi")
    return [
        _cap(PLAIN_CAPTURE, "file", [Pipe([RDEPLOY + [
            "capture", disk["path"], plain, "-q"]])], [plain], None),
        _cap(SEALED_CAPTURE, "file", [Pipe([RDEPLOY + [
            "capture", disk["path"], sealed, "--encrypt",
            f"--passphrase-file={pwfile}", "-q"]])], [sealed],
            PLAIN_CAPTURE),
    ]


def restore_rows(out, pwfile):
    target = out("crypt-target.img")
    plain, sealed = out("crypt-plain.rdi"), out("crypt-sealed.rdi")
    return [
        dict(name=PLAIN_RESTORE, op="restore", source="file",
             outputs=[target], versus=None, setup=_remove(target),
             steps=[Pipe([RDEPLOY + ["restore", plain, target, "--yes",
                                     "-q"]])]),
        dict(name=SEALED_RESTORE, op="restore", source="file",
             outputs=[target], versus=PLAIN_RESTORE, setup=_remove(target),
             steps=[Pipe([RDEPLOY + ["restore", sealed, target, "--yes",
                                     f"--passphrase-file={pwfile}",
                                     "-q"]])]),
    ]


def ratios(results, what="wall"):
    """[(encrypted name, plain name, encrypted/plain median of `what`)]
    (wall, or cpu: user + system seconds, steadier on a loaded machine)."""
    by = {r.name: r for r in results}
    out = []
    for sealed, plain in PAIRS:
        a, b = by.get(sealed), by.get(plain)
        if a and b and a.median(what) and b.median(what):
            out.append((sealed, plain, a.median(what) / b.median(what)))
    return out


def targets(results):
    return [(ratio <= TARGET,
             f"{sealed} takes {ratio:.2f}x the time of {plain} (target: "
             f"within 15%, at most {TARGET:.2f}x)")
            for sealed, plain, ratio in ratios(results)]


def section(disk, results, rounds):
    lines = ["### Encryption: disk (a) with --encrypt and without", "",
             f"{disk['size'] / (1 << 30):.2f} GiB disk file; each row "
             f"{rounds} rounds in alternation; medians.  The encrypted "
             f"runs include the key derivation from the passphrase file.",
             "", "| op | contender | wall s | CPU s | peak RSS MB | "
             "image MB | encrypted/plain wall |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    ratio = {sealed: r for sealed, _, r in ratios(results)}
    for res in results:
        rss = res.median("rss_kib")
        lines.append(
            f"| {res.op} | {res.name} | {res.median('wall') or 0:.2f} | "
            f"{res.median('cpu') or 0:.2f} | "
            f"{(rss or 0) / 1024:.0f} | "
            f"{(res.size or 0) / MB:.0f} | "
            f"{ratio[res.name]:.3f} |" if res.name in ratio else
            f"| {res.op} | {res.name} | {res.median('wall') or 0:.2f} | "
            f"{res.median('cpu') or 0:.2f} | {(rss or 0) / 1024:.0f} | "
            f"{(res.size or 0) / MB:.0f} | - |")
    lines.append("")
    lines += [f"- {'PASS' if ok else 'FAIL'}: {text}"
              for ok, text in targets(results)]
    lines += [f"- CPU (user + system): {sealed} takes {ratio:.3f}x that of "
              f"{plain}" for sealed, plain, ratio in ratios(results, "cpu")]
    return lines + [""]


def run(disk, args, work, measure_rows, say):
    """The rows measured (run.py's measure_rows, `args["rounds"]` rounds,
    warm when `args["--warm"]`): (results, section lines)."""
    made = []

    def out(file):
        made.append(os.path.join(work, f"crypt-{file}"))
        return made[-1]
    pwfile = passphrase_file(work)
    warm_cap = warm_rest = None
    if args["--warm"]:
        def warm_cap(row):
            return [(disk["path"], disk["size"])]

        def warm_rest(row):
            return [(path, 1 << 62) for path in made
                    if path.endswith(".rdi")]
    try:
        log = out("tools.log")
        results = measure_rows(capture_rows(disk, out, pwfile),
                               args["rounds"], warm_cap, log)
        results += measure_rows(restore_rows(out, pwfile), args["rounds"],
                                warm_rest, log)
    finally:
        os.unlink(pwfile)
        if not args["--keep"]:
            for path in made:
                if os.path.exists(path):
                    os.unlink(path)
    for what in ("wall", "cpu"):
        for sealed, plain, ratio in ratios(results, what):
            say(f"  {sealed} / {plain}: {what} {ratio:.3f}")
    return results, section(disk, results, args["rounds"])
