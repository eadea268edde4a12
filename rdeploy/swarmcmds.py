"""rdeploy swarm prepare, seed and receive (usage in cli.py): option values
converted and checked here, the work in diskimage.swarm."""

from diskimage.errors import UsageError


def _not_yet(args):
    raise UsageError("rdeploy swarm is not built yet")


cmd_prepare = cmd_seed = cmd_receive = _not_yet
