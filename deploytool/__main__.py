"""``python -m deploytool``: the multi-call dispatcher, as frozen."""

import sys

from .multicall import main

sys.exit(main())
