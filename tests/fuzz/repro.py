"""Run one input of a fuzz target without atheris, under a 600 MiB
address-space cap, and print the traceback of what escapes (a finding),
or "no finding":  python -m tests.fuzz.repro TARGET FILE."""

import resource
import sys
import traceback

from tests.fuzz import targets_index as index

CAP = 600 << 20


def main(argv):
    name, path = argv
    module = index.load(name)
    with open(path, "rb") as f:
        data = f.read()
    resource.setrlimit(resource.RLIMIT_AS,
                       (CAP, resource.getrlimit(resource.RLIMIT_AS)[1]))
    try:
        index.call(module, data)
    except BaseException:
        traceback.print_exc()
        return 1
    print("no finding")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
