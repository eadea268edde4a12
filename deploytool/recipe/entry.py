"""Entry script of the frozen multi-call binary, see deploytool/recipe/deploytool.spec.

PyInstaller needs a script path; all it does is run the dispatcher, which
picks the command by the name the binary was called by (sys.argv[0]).
"""

import sys

from deploytool.multicall import main

if __name__ == "__main__":
    sys.exit(main())
