"""The name a restore marker keeps for the image's source, and what that
name says about how to finish the restore it marks.

The name is written by the command that restores (restoremark.Marker.name,
256 bytes at most) and read back by verify-target: this module is the one
place that makes the names of sessions and swarms and tells the kinds
apart, so the advice a marked target gets is a command that can be run.

Kinds: "pipe" ("-"), "session" (a multicast session: "multicast session of
SENDER (port N)"), "swarm" ("swarm:" + the source that `rdeploy swarm
receive` was given), "url" (an http:// or https:// URL, as shown), "file"
(an absolute path) and "unnamed" (an empty name).
"""

import re

SESSION_PREFIX = "multicast session of "
SWARM_PREFIX = "swarm:"
DEFAULT_PORT = 9000
_SESSION = re.compile(r"^multicast session of (\S+) \(port (\d+)\)$")
_URL = re.compile(r"^https?://", re.IGNORECASE)


def session(sender, port):
    """The name of a multicast session's image."""
    return f"{SESSION_PREFIX}{sender} (port {port})"


def swarm(source):
    """The name of a swarm's image (`source`: what swarm receive got)."""
    return SWARM_PREFIX + source


def kind(name):
    """The kind of source `name` names (the module docstring's list)."""
    if not name:
        return "unnamed"
    if name == "-":
        return "pipe"
    if name.startswith(SESSION_PREFIX):
        return "session"
    if name.startswith(SWARM_PREFIX):
        return "swarm"
    if _URL.match(name):
        return "url"
    return "file"


def described(name):
    """The source in words: "an image read from stdin", a session, a
    swarm, the URL or path itself."""
    return {"pipe": "an image read from stdin",
            "unnamed": "an unnamed image"}.get(kind(name), name)


def finish_advice(name, target):
    """How to finish (or redo) the interrupted restore of `name` on
    `target`: a command that can be run, and what it does."""
    what = kind(name)
    if what == "session":
        match = _SESSION.match(name)
        port = f" --port={match[2]}" if match and \
            int(match[2]) != DEFAULT_PORT else ""
        return (f"receive the next session with rdeploy multicast receive "
                f"{target}{port} --yes and the options it was started with "
                f"(a session cannot be resumed: the next one sends the "
                f"image from its start, and the whole disk is written "
                f"again)")
    if what == "swarm":
        return (f"receive it again with rdeploy swarm receive "
                f"{name[len(SWARM_PREFIX):]} {target} --yes and the "
                f"options it was started with")
    again = name if what in ("url", "file") else "IMAGE"
    how = " (IMAGE: that image, as a file or again on stdin)" \
        if what == "pipe" else ""
    return (f"finish it with rdeploy restore {again} {target} --resume "
            f"--yes{how} and the options it was started with (an encrypted "
            f"image's passphrase option too)")
