"""Where rdeploy's time goes: py-spy samples of one run, every thread,
idle time included, summarised per thread as the share of samples in each
(Python line, native leaf) pair."""

import collections
import os
import re
import shutil
import subprocess
import sys

from diskimage.host.tools import tool_env


def py_spy():
    here = os.path.join(os.path.dirname(sys.executable), "py-spy")
    return here if os.path.exists(here) else shutil.which("py-spy")


def record(argv, raw_path, cwd, rate=250):
    """Run argv under py-spy; the collapsed stacks go to raw_path.  False
    when py-spy is missing."""
    tool = py_spy()
    if not tool:
        return False
    subprocess.run([tool, "record", "--idle", "--threads", "--native",
                    "-r", str(rate), "-f", "raw", "-o", raw_path, "--",
                    *argv], cwd=cwd, env=tool_env(), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return True


def summary(raw_path, top=6):
    """[(thread, samples, [(share, where)])], busiest threads first."""
    per = collections.defaultdict(collections.Counter)
    totals = collections.Counter()
    with open(raw_path) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            frames = stack.split(";")
            thread = re.sub(r"^thread \(\d+\):? ?", "", frames[0]) or \
                "(unnamed)"
            thread = re.sub(r"_\d+$", "", thread)     # workers together
            python = [f for f in frames if ".py:" in f]
            leaf = re.sub(r"0x[0-9a-f]+ ", "", frames[-1])
            where = (python[-1] if python else "-") + f" <{leaf[:48]}>"
            per[thread][where] += int(count)
            totals[thread] += int(count)
    return [(thread, n, [(c / n, w) for w, c in per[thread].most_common(top)])
            for thread, n in totals.most_common() if n >= 20]


def lines(title, raw_path):
    """Markdown lines for one profile."""
    out = [f"#### {title}", "", "| thread | share | Python line <native leaf> |",
           "| --- | ---: | --- |"]
    for thread, samples, rows in summary(raw_path):
        for share, where in rows:
            out.append(f"| {thread} ({samples}) | {share:.0%} | "
                       f"`{where}` |")
    return out + [""]
