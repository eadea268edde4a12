"""What is wrong with a command line, as the short phrase of a usage error
(`PROG: error: PHRASE; see 'PROG COMMAND --help'`), read from the usage
text (cliutil/usage.py).

`precheck` runs before docopt and refuses what docopt would let through:
an abbreviated long option (docopt takes `--dry` for `--dry-run`; for
tools that overwrite disks a guess is not good enough) and an option given
an empty value (`--split=`, `-o ""`), which docopt reads as "not given".
`diagnose` names what docopt refused.
"""

import re


def _near(usage, command, name):
    """The long options that `name` abbreviates, the command's own first."""
    found = [o.long for o in usage.options
             if o.long and o.long.startswith(name)]
    own = [n for n in found if command and n in command.options]
    return own or found


def command_of(usage, argv):
    """The Command whose word is the first argument that is not an option
    (nor an option's value), or None: `rdeploy --progress=json capture`
    is for capture too."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            return None
        if arg == "-" or not arg.startswith("-"):
            return usage.commands.get(arg)
        option = usage.by_name.get(arg.partition("=")[0])
        if option and option.takes_value and "=" not in arg and \
                (arg.startswith("--") or len(arg) == 2):
            i += 1
    return None


def precheck(usage, argv):
    """(phrase, command) of the first abbreviated long option or empty
    option value in `argv`, or None when there is none."""
    command = command_of(usage, argv)
    seen = set()

    def twice(option):
        key = option.long or option.short
        if key in seen and not _repeatable(usage, option):
            return f"option {key} is given more than once"
        seen.add(key)
        return None

    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            break
        if arg == "-" or not arg.startswith("-") or \
                (command and arg in command.words):
            continue
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            option = usage.by_name.get(name)
            if option is None:
                near = _near(usage, command, name)
                if near:
                    return (f"unknown option {name} (did you mean "
                            f"{_either(near)}?)"), command
                continue            # unknown: diagnose() names it
            if twice(option):
                return twice(option), command
            if not option.takes_value:
                continue
            if not eq:
                if i >= len(argv):
                    continue        # no value at all: diagnose() says so
                value = argv[i]
                i += 1
            if value == "":
                return (f"option {name} has an empty value "
                        f"({option.spelling()})"), command
            continue
        for pos, letter in enumerate(arg[1:]):
            option = usage.by_name.get(f"-{letter}")
            if option is not None and twice(option):
                return twice(option), command
            if option is None or not option.takes_value:
                continue
            value = arg[pos + 2:]
            if not value:
                if i >= len(argv):
                    break
                value = argv[i]
                i += 1
            if value == "":
                return (f"option -{letter} has an empty value "
                        f"({option.spelling()})"), command
            break
    return None


def _repeatable(usage, option):
    """Whether a usage pattern lets `option` repeat ("[--add=X]...",
    "[--size=N=SIZE...]")."""
    names = "|".join(re.escape(n) for n in option.names)
    return any(re.search(rf"(?:^|[\s\[(|])(?:{names})(?:[= ][^\s\]|)]*)?"
                         rf"\]?\.\.\.", p) for p in usage.patterns)


def _either(names):
    return names[0] if len(names) == 1 else \
        f"{', '.join(names[:-1])} or {names[-1]}"


def diagnose(usage, argv):
    """What is wrong with `argv` (docopt refused it), as a short phrase, and
    the command it was for (or None)."""
    prog, commands = usage.prog, usage.commands
    words = [a for a in argv if a != "--"]
    if not words:
        return f"no command given (one of: {', '.join(commands)})", None
    command = commands.get(words[0]) if not words[0].startswith("-") \
        or words[0] == "-" else None
    if command is None and not words[0].startswith("-"):
        return f"unknown command {words[0]!r} (one of: " \
               f"{', '.join(commands)})", None
    positionals, i, ended, seen = [], 1 if command else 0, False, set()
    while i < len(argv):
        arg = argv[i]
        i += 1
        if ended or arg == "-" or not arg.startswith("-"):
            if command is None and not positionals and not ended and \
                    arg in commands:
                command = commands[arg]     # after options: still its
                continue
            positionals.append(arg)
            continue
        if arg == "--":
            ended = True
            continue
        if command and arg in command.words:
            continue
        if arg.startswith("--"):
            name, eq, _ = arg.partition("=")
            found = [o for o in usage.options
                     if o.long and o.long.startswith(name)]
            found = [o for o in found if o.long == name] or found
            if not found:
                return f"unknown option {name}", command
            if len(found) > 1:
                return (f"option {name} is ambiguous: "
                        f"{', '.join(o.long for o in found)}"), command
            given = found
            if found[0].takes_value and not eq:
                if i >= len(argv):
                    return (f"option {found[0].long} needs a value "
                            f"({found[0].spelling()})"), command
                i += 1
            elif not found[0].takes_value and eq:
                return f"option {found[0].long} takes no value", command
        else:
            given = []
            for pos, letter in enumerate(arg[1:]):
                option = usage.by_name.get(f"-{letter}")
                if option is None:
                    return f"unknown option -{letter}", command
                given.append(option)
                if option.takes_value:
                    if pos + 2 == len(arg):
                        if i >= len(argv):
                            return (f"option -{letter} needs a value "
                                    f"({option.spelling()})"), command
                        i += 1
                    break
        for option in given:
            seen.add(option.long or option.short)
            if command and not set(option.names) & command.options:
                return (f"{command.name} does not take "
                        f"{option.long or option.short}"), command
    if command is None:
        if positionals and positionals[0] not in commands:
            return f"unknown command {positionals[0]!r} (one of: " \
                   f"{', '.join(commands)})", None
        return f"no command given (one of: {', '.join(commands)})", None
    for option in command.required:
        if (option.long or option.short) not in seen:
            return (f"{command.name}: missing {option.spelling()}"
                    + (f" (or {option.short} {option.value_name})"
                       if option.short and option.long else "")), command
    if len(positionals) < command.least:
        missing = command.positionals[len(positionals):command.least]
        return (f"{command.name}: missing {' '.join(missing)} "
                f"(usage: {prog} {command.name} "
                f"{' '.join(command.positionals[:command.least])} ...)"
                if len(command.positionals) > command.least else
                f"{command.name}: missing {' '.join(missing)}"), command
    if command.most is not None and len(positionals) > command.most:
        return (f"{command.name}: unexpected argument "
                f"{positionals[command.most]!r}"), command
    for group in command.exclusive:
        given = [alt[0] for alt in group if seen & set(alt)]
        if len(given) > 1:
            return (f"{command.name}: {' and '.join(given)} do not go "
                    f"together"), command
    return f"{command.name}: these arguments do not fit its usage", command
