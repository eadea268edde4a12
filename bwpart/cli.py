"""bwpart - the hidden service partition (being built: issue 15).

Usage:
  bwpart (-h | --help)
  bwpart --version
"""

import sys

from cliutil.runner import run


def _main(argv):
    from docopt import docopt
    from diskimage import __version__
    docopt(__doc__, argv=argv, version=__version__)
    return 0


def main(argv=None):
    return run("bwpart", _main, sys.argv[1:] if argv is None else argv)
