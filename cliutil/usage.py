"""A command's usage text (its module docstring, docopt's language) read as
data: the commands, their arguments and options, and the sections around
them.  One reading serves the one-line usage errors (cliutil/usageerrors.py),
`PROG help COMMAND` (`command_help`), the man pages and the bash completion.

Sections are a title at column 0 (one or more lines without a blank between
them, the last ending with ":") and the indented lines below it; lines at
column 0 that do not end so are text of the section before.  An entry in a
section starts two spaces in ("  capture   Copy ...", "  --level=N
Compression ...") and continues on lines indented deeper.

An option's choices (offered by the bash completion) are read from its
description: when the description begins with lowercase words joined by
", " and " or ", up to the first ".", ":" or "[" (what is in parentheses
left out), they are its choices: "lz4, zstd or none [default: lz4].",
"auto (a bar ...), bar, json (...), none", "proportional: every ...".
"""

import re
from dataclasses import dataclass, field

_TOKEN = re.compile(r"\.\.\.|[\[\]()|]|[^\s\[\]()|]+")
_POSITIONAL = re.compile(r"^(<[^>]+>|[A-Z][A-Z0-9_]*)$")


@dataclass
class Option:
    short: str = None
    long: str = None
    takes_value: bool = False
    value_name: str = ""
    text: str = ""

    @property
    def choices(self):
        """The values the description lists ("lz4, zstd or none"), or []."""
        if not self.takes_value:
            return []
        text, depth, plain = self.text, 0, ""
        for char in text:
            depth += char == "("
            if not depth:
                plain += char
            depth -= char == ")" and depth > 0
        head = re.split(r"[.:\[]", plain, 1)[0]
        words = [w.strip() for w in re.split(r",|\bor\b", head)]
        if words and all(re.match(r"^[a-z0-9][a-z0-9_-]*$", w)
                         for w in words):
            return words
        return []

    @property
    def names(self):
        return [n for n in (self.short, self.long) if n]

    def spelling(self):
        name = self.long or self.short
        if not self.takes_value:
            return name
        return f"{name}={self.value_name}" if self.long else \
            f"{name} {self.value_name}"


@dataclass
class Command:
    name: str
    patterns: list = field(default_factory=list)
    options: set = field(default_factory=set)   # names: "--raw", "-o"
    words: set = field(default_factory=set)     # literal flags like -name
    least: int = 0          # positionals required
    most: int = 0           # positionals allowed (None: no limit)
    positionals: list = field(default_factory=list)
    required: list = field(default_factory=list)  # options outside [ ]
    exclusive: list = field(default_factory=list)  # [[names] | [names]]


class Usage:
    def __init__(self, doc):
        self.doc = doc
        lines = doc.strip("\n").splitlines()
        self.prog, _, self.summary = lines[0].partition(" - ")
        self.sections = _sections(lines[1:])
        self.options = _options(self.section("Options"))
        self.by_name = {n: o for o in self.options for n in o.names}
        self.patterns = _patterns(self.section("Usage"), self.prog)
        self.commands = {}
        for text in self.patterns:
            self._add_pattern(text)

    def section(self, title):
        for name, body in self.sections:
            if " ".join(name.split()).rstrip(":") == title:
                return body
        return []

    def _add_pattern(self, text):
        tokens = _TOKEN.findall(text)[1:]
        if not tokens or not re.match(r"^[a-z][a-z0-9-]*$", tokens[0]):
            return
        command = self.commands.setdefault(tokens[0], Command(tokens[0]))
        command.patterns.append(text)
        depth, least, most, names, groups = 0, 0, 0, [], []
        i = 1
        while i < len(tokens):
            token = tokens[i]
            if token in "[(":
                depth += token == "["
                groups.append([[]])
            elif token in "])":
                depth -= token == "]"
                group = groups.pop()
                if len(group) > 1 and all(group):
                    command.exclusive.append(group)
                if groups:
                    groups[-1][-1].extend(n for alt in group for n in alt)
            elif token == "|":
                if groups:
                    groups[-1].append([])
            elif token == "...":
                most = None
            elif token == "options":
                command.options.update(self.by_name)
            elif token.startswith("-"):
                name = token.split("=")[0]
                option = self.by_name.get(name)
                if option is None:
                    command.words.add(token)
                else:
                    command.options.update(option.names)
                    if groups:
                        groups[-1][-1].append(option.long or option.short)
                    if depth == 0 and option not in command.required:
                        command.required.append(option)
                    if option.takes_value and "=" not in token and \
                            i + 1 < len(tokens) and \
                            _POSITIONAL.match(tokens[i + 1]):
                        i += 1
            elif _POSITIONAL.match(token):
                names.append(token)
                least += depth == 0
                most = None if most is None else most + 1
            i += 1
        if not command.positionals or least < command.least:
            command.least = least
        if command.most is not None:
            command.most = None if most is None else max(command.most, most)
        if len(names) > len(command.positionals):
            command.positionals = names

    def entry(self, word):
        """The lines of the entry for `word` in the sections that describe
        commands (every section but Usage, Options, Examples, Exit codes)."""
        for title, body in self.sections:
            if title.split()[0] in ("Usage:", "Options:", "Examples:",
                                    "Exit"):
                continue
            for key, lines in _entries(body):
                if key == word:
                    return title, lines
        return None, []


def _sections(lines):
    """[(title, body lines)]: a run of column-0 lines whose last ends with
    ":" is a title (all of it); another run is text of the body before."""
    sections, title, body, run = [], None, [], []

    def end_run():
        nonlocal title, body
        if not run:
            return
        if run[-1].rstrip().endswith(":"):
            if title is not None:
                sections.append((title, body))
            title, body = "\n".join(run), []
        elif title is None:        # text before any section: its own
            sections.append(("\n".join(run), []))
        else:
            body.extend(run)
        run.clear()

    for line in lines:
        if line and not line[0].isspace():
            run.append(line)
            continue
        end_run()
        if title is not None:
            body.append(line)
    end_run()
    if title is not None:
        sections.append((title, body))
    return [(t, _trim(b)) for t, b in sections]


def _trim(body):
    while body and not body[-1].strip():
        body = body[:-1]
    return body


def _entries(body):
    """(first word, lines) of each entry: a line two spaces in starts one."""
    entries = []
    for line in body:
        if re.match(r"^  \S", line):
            entries.append((line.split()[0], [line]))
        elif entries and line.strip():
            entries[-1][1].append(line)
    return entries


def _options(body):
    options = []
    for key, lines in _entries(body):
        if not key.startswith("-"):
            continue
        spec, _, text = lines[0].strip().partition("  ")
        option = Option(text=" ".join([text.strip()] + [
            line.strip() for line in lines[1:]]).strip())
        for token in spec.replace(",", " ").replace("=", " ").split():
            if token.startswith("--"):
                option.long = token
            elif token.startswith("-"):
                option.short = token
            elif not option.value_name:
                option.takes_value, option.value_name = True, token
        options.append(option)
    return options


def _patterns(body, prog):
    patterns = []
    for line in body:
        words = line.split()
        if not words:
            continue
        if words[0] == prog:
            patterns.append(" ".join(words))
        elif patterns:
            patterns[-1] += " " + " ".join(words)
    return patterns


def command_help(usage, name):
    """The part of the help about one command: its usage lines, what it
    does, the options it takes and its examples."""
    command = usage.commands[name]
    out = ["Usage:"] + [f"  {_wrap(p)}" for p in command.patterns]
    title, lines = usage.entry(name)
    if lines:
        out += ["", title] + lines
    options = [o for o in usage.options if set(o.names) & command.options
               and not set(o.names) & {"-h", "--help", "--version"}]
    if options:
        entries = dict((tuple(_opt_key(lines[0])), lines) for _, lines in
                       _entries(usage.section("Options")))
        out += ["", "Options:"]
        for option in options:
            for key, lines in entries.items():
                if option.long in key or option.short in key:
                    out += lines
                    break
    examples = [line for line in usage.section("Examples")
                if re.search(rf"\b{re.escape(usage.prog)} {name}\b", line)]
    if examples:
        out += ["", "Examples:"] + examples
    out += ["", f"See '{usage.prog} --help' for every command and the exit "
                f"codes."]
    return "\n".join(out)


def _opt_key(line):
    spec = line.strip().partition("  ")[0]
    return [t for t in spec.replace(",", " ").replace("=", " ").split()
            if t.startswith("-")]


def _wrap(pattern, width=78):
    words, lines, current = pattern.split(" "), [], ""
    indent = " " * (len(pattern.split(" ")[0]) + len(words[1]) + 4) \
        if len(words) > 1 else "    "
    for word in words:
        if current and len(current) + 1 + len(word) > width - 2:
            lines.append(current)
            current = indent[:-2] + word
        else:
            current = f"{current} {word}" if current else word
    lines.append(current)
    return "\n  ".join(lines)
