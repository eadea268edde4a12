"""The benchmark's results as Markdown: machine, command, one table per disk,
the issue's targets checked, written between markers in docs/BENCHMARKS.md
so the hand-written analysis around them stays."""

import os

BEGIN = "<!-- bench:begin (written by bench/run.py; do not edit) -->"
END = "<!-- bench:end -->"
MB = 1e6

DISK_TITLE = {
    "a": "Disk (a): GPT, FAT32 + ext4 + NTFS with real files",
    "b": "Disk (b): the same partitions and bytes on a large sparse disk",
    "c": "Disk (c): one partition of random bytes (incompressible)",
}


def _num(value, fmt="{:.2f}"):
    return "-" if value is None else fmt.format(value)


def _row(res, by_name):
    wall, cpu = res.median("wall"), res.median("cpu")
    rss = res.median("rss_kib")
    ratio = size_ratio = "-"
    ours = by_name.get(res.versus) if res.versus else None
    if ours and ours.median("wall") and wall:
        ratio = f"{ours.median('wall') / wall:.2f}"
        if ours.size and res.size:
            size_ratio = f"{ours.size / res.size:.2f}"
    name = res.name.replace("|", "\\|") + (
        f" ({res.note} in {len(res.samples) and 'some' or 'every'} round)"
        if res.note else "")
    return (f"| {res.op} | {name} | {res.source} | {_num(wall)} | "
            f"{_num(cpu)} | {_num(rss and rss / 1024, '{:.0f}')} | "
            f"{_num(res.size and res.size / MB, '{:.0f}')} | {ratio} | "
            f"{size_ratio} |")


def disk_section(name, disk, results, extra_lines):
    by_name = {r.name: r for r in results}
    parts = ", ".join(
        f"p{p['number']} {p['fs'] or 'no filesystem'} "
        f"{p['size'] / MB:.0f} MB holding {p['file_bytes'] / MB:.0f} MB"
        + (f" in {p['files']} files" if p["files"] else "")
        for p in disk["partitions"])
    lines = [f"### {DISK_TITLE[name]}", "",
             f"{disk['size'] / (1 << 30):.2f} GiB disk file: {parts}.", "",
             "| op | contender | source | wall s | CPU s | peak RSS MB | "
             "image MB | rdeploy/peer wall | rdeploy/peer size |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    lines += [_row(r, by_name) for r in results]
    lines += [""] + extra_lines + [""]
    return lines


def paired_section(results, rounds):
    """rdeploy's captures of disks (a) and (b) run in the same rounds."""
    lines = ["### Disk (b) against disk (a), paired", "",
             f"rdeploy capture of both disks in alternation, {rounds} "
             f"rounds, the page cache dropped before each run; the disk (b) "
             f"target compares these medians.", "",
             "| op | contender | source | wall s | CPU s | peak RSS MB | "
             "image MB | rdeploy/peer wall | rdeploy/peer size |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    lines += [_row(r, {}) for r in results]
    return lines + [""]


def render(meta, sections, targets):
    m = meta["machine"]
    load = ", ".join(f"{x:.2f}" for x in m["load"])
    end_load = ", ".join(f"{x:.2f}" for x in meta["load_end"])
    lines = [
        BEGIN, "",
        f"Run of {meta['started']} UTC, {meta['elapsed'] / 60:.1f} minutes.",
        "",
        f"- Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB "
        f"memory, {m['kernel']}",
        f"- Load average at start: {load}; at the end: {end_load}",
        f"- Command: `{meta['command']}`",
        f"- Rounds: {meta['rounds']}, contenders in alternation (the order "
        f"rotates each round); medians shown.",
        f"- Page cache: {meta['cache']}",
        "- CPU s = user + system time of every process (os.wait4); peak "
        "RSS = the largest peak resident set of any one process, as GNU "
        "time reports it (for a pipeline: the max over its processes, not "
        "their sum; about 1.5 MB is GNU time's own floor).",
        "- rdeploy/peer wall < 1 means rdeploy is faster; size < 1 means "
        "its image is smaller.  Every capture and restore ends with an "
        "fsync of what it wrote (rdeploy does its own).",
        "", "### Targets of issue 6", ""]
    lines += [f"- {'PASS' if ok else 'INFO' if ok is None else 'FAIL'}: "
              f"{text}" for ok, text in targets]
    lines.append("")
    for section in sections:
        lines += section
    lines.append(END)
    return "\n".join(lines) + "\n"


def write(path, text, begin=BEGIN, end=END, after=None):
    """Put `text` (which starts with `begin` and ends with `end`) between
    those markers of `path` (or create it); where the file has none, right
    after the marker `after` if it has that, else at its end."""
    try:
        with open(path) as f:
            old = f.read()
    except FileNotFoundError:
        old = "# Benchmarks\n\n" + begin + "\n" + end + "\n"
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        tail = rest.split(end, 1)[1]
        new = head + text.rstrip("\n") + tail
    elif after and after in old:
        head, tail = old.split(after, 1)
        new = head + after + "\n\n" + text.rstrip("\n") + tail
    else:
        new = old.rstrip("\n") + "\n\n" + text
    tmp = path + ".partial"
    with open(tmp, "w") as f:
        f.write(new)
    os.replace(tmp, path)
