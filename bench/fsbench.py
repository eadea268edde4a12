"""The filesystem sizes case of the benchmark (`run.py --fs-sizes`): the
fleet disk of tests/fleetdisk.py (GPT: XFS; btrfs with subvolumes and a
read-only snapshot; an LVM2 PV with an ext4 LV and an XFS LV), built
afresh in the work directory, captured by `rdeploy capture`, and each
volume imaged by `partclone.<fs> -c -s DEV -o - | lz4 -1` through a
read-only loop device at the volume's place (the LVs through their
segment's offset in the PV).  Sizes only, no times: what each costs in
bytes, per partition, from `rdeploy info --json`.  Needs root (loop
devices, mounts).

    python bench/fsbench.py [WORK]     # the table, printed
"""

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [HERE, ROOT]

from tests import fleetdisk  # noqa: E402
from tests.needs import missing as _missing  # noqa: E402

BEGIN = "<!-- fleet-sizes:begin (written by bench/run.py --fs-sizes) -->"
END = "<!-- fleet-sizes:end -->"
OUT = os.path.join("docs", "filesystems", "fleet.md")
# Which partclone volumes each partition of the image holds.
PARTITION_VOLUMES = {1: ("xfs",), 2: ("btrfs",), 3: ("lvm/root", "lvm/data")}


def missing():
    """Why the case cannot run here, or None."""
    return _missing(*fleetdisk.TOOLS, root=True)


def _mib(n):
    return f"{n / (1 << 20):.2f} MiB" if n >= 1 << 20 else \
        f"{n / 1024:.1f} KiB"


def measure(work):
    """{"partclone": {volume: bytes}, "areas": rdeploy info's areas,
    "image": bytes, "volumes": the fleet's volumes}."""
    if os.path.exists(work):
        shutil.rmtree(work)
    os.makedirs(work)
    fleet = fleetdisk.build(os.path.join(work, "fleet.img"))
    image = os.path.join(work, "fleet.rdi")
    rdeploy = [sys.executable, "-m", "rdeploy"]
    subprocess.run(rdeploy + ["capture", fleet.disk, image, "-q"], cwd=ROOT,
                   check=True, stdin=subprocess.DEVNULL)
    info = json.loads(subprocess.run(
        rdeploy + ["info", image, "--json"], cwd=ROOT, check=True,
        capture_output=True, stdin=subprocess.DEVNULL).stdout)
    log = os.path.join(work, "partclone.log")
    clones = {name: fleetdisk.partclone_bytes(fleet.disk, volume, log)
              for name, volume in sorted(fleet.volumes.items())}
    return {"partclone": clones, "areas": info["areas"],
            "image": info["image_bytes"], "volumes": fleet.volumes}


def render(found, command):
    """The markdown table between the markers."""
    clones = found["partclone"]
    lines = [BEGIN, "",
             f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC "
             f"by `{command}`.", "",
             "| area | holds | rdeploy stores | how | partclone \\| lz4 -1 |",
             "| --- | --- | ---: | --- | ---: |"]
    for area in found["areas"]:
        number = area["partition"]
        names = PARTITION_VOLUMES.get(number, ())
        theirs = " + ".join(_mib(clones[n]) for n in names) or "-"
        holds = ", ".join(f"{n} ({found['volumes'][n].fs})" for n in names) \
            or area["kind"]
        how = area["method"] + (f" ({area['fallback']})"
                                if area.get("fallback") else "")
        lines.append(f"| {area['kind']} {number or ''} | {holds} | "
                     f"{_mib(area['stored_bytes'])} | {how} | {theirs} |")
    total = sum(clones.values())
    lines += [f"| **whole image** | | **{_mib(found['image'])}** | | "
              f"**{_mib(total)}** |", "",
              f"rdeploy / partclone: {found['image'] / total:.2f}", "", END]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(measure(sys.argv[1] if len(sys.argv) > 1 else
                         "/var/tmp/rdeploy-fleet"), "bench/fsbench.py"))
