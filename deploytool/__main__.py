"""``python -m deploytool``: the multi-call dispatcher, as the frozen binary."""

import sys

from .multicall import main

sys.exit(main())
