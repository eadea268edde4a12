"""What a self-restoring image (made by ``imgx sfx``) does when it is run.

Usage:
  restore.run TARGET [--yes] [--verify] [--partitions=LIST] [--quiet]
  restore.run info [--json]
  restore.run verify
  restore.run --help

TARGET is a disk (/dev/sdb) or a disk file, created sparse when missing.
The restore is `rdeploy restore` on the image this file carries, with the
same checks: a target too small, mounted, in use, of another sector size or
this file itself is refused before anything is written, and without a
terminal --yes is needed.  Exit codes are rdeploy's (see rdeploy --help).
"""

import sys


def run(executable, argv):
    """Run the self-restoring binary `executable` with `argv`."""
    from rdeploy.cli import main as rdeploy
    if not argv or argv[0] in ("-h", "--help"):
        sys.stdout.write(__doc__)
        return 0 if argv else 2
    if argv[0] in ("info", "verify"):
        return rdeploy([argv[0], executable, *argv[1:]])
    return rdeploy(["restore", executable, *argv])
