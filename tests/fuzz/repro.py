"""Run one input of a target under a 600 MiB address-space cap and print
the traceback of what escapes (a finding): python -m tests.fuzz.repro
TARGET FILE."""
import sys, resource, traceback
resource.setrlimit(resource.RLIMIT_AS, (600<<20, 600<<20))
from tests.fuzz import targets_index as t
m = t.load(sys.argv[1])
try:
    t.call(m, open(sys.argv[2], 'rb').read())
    print("no finding")
except BaseException:
    traceback.print_exc()
