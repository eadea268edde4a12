"""Man pages and bash completion, made from the commands' usage texts.

    python -m deploytool.docgen          write man/*.1 and completions/*, and
                                      the exit-code table of docs/*.md
    python -m deploytool.docgen --check  exit 1 when a committed file differs

The files are committed (setup.cfg installs them to share/man/man1 and
share/bash-completion/completions) and tests/deploytool/test_docs.py checks
that regenerating gives the same bytes, so a usage text changed without
`make docs` fails the tests.  The exit-code table of docs/*.md is made from
cliutil/runner.py's docstring the same way (`exit_code_table`).
"""

import importlib
import os
import re
import sys

from diskimage import __version__

from cliutil import runner
from cliutil.usage import Usage

# command -> module whose docstring is its usage text: the commands of the
# multi-call binary, so a command added there gets its man page too.
from .multicall import COMMANDS
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_ENTRY = re.compile(r"^  (\S(?:.*?\S)?)(?: {2,}(\S.*))?$")


def usage_of(name):
    return Usage(importlib.import_module(COMMANDS[name]).__doc__)


def exit_codes():
    """[(code, meaning)] from cliutil/runner.py's docstring, the one table
    that the docs and every command's --help follow."""
    codes, block = [], False
    for line in runner.__doc__.splitlines():
        match = re.match(r"^    (\d+)\s+(\S.*)$", line)
        if match:
            block = True
            codes.append([int(match[1]), match[2]])
        elif block and re.match(r"^ {9,}\S", line):
            codes[-1][1] += " " + line.strip()
        elif block and line.strip():
            break
    return [(code, meaning) for code, meaning in codes]


def exit_code_table():
    """The Markdown table of docs/rdeploy.md, imgx.md and bootdisk.md."""
    rows = ["| code | meaning |", "| --- | --- |"]
    rows += [f"| {code} | {meaning} |" for code, meaning in exit_codes()]
    return "\n".join(rows) + "\n"


def _esc(text):
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text[:1] in (".", "'") else text


def _bold(spec):
    return "\\fB" + _esc(spec) + "\\fR"


def _body(body, literal=False):
    """roff for a section's indented lines: entries as .TP, other text as
    filled paragraphs, Examples as literal lines."""
    if literal:
        return [".nf"] + [_esc(line[2:] if line.startswith("  ") else line)
                          for line in body if line.strip()] + [".fi"]
    out, text, entry = [], [], None

    def flush():
        if entry:
            out.append(_esc(" ".join(entry)))
        if text:
            out.extend([".PP", _esc(" ".join(text))])
            text.clear()

    for line in body:
        match = _ENTRY.match(line)
        if not line.strip():
            flush()
            entry = None
        elif match and (match[2] or line.strip().startswith("-")):
            flush()
            out.extend([".TP", _bold(match[1])])
            entry = [match[2]] if match[2] else []
        elif entry is not None and line.startswith("   "):
            entry.append(line.strip())
        else:
            if entry:
                out.append(_esc(" ".join(entry)))
            entry = None
            text.append(line.strip())
    flush()
    return out


def manpage(name):
    usage = usage_of(name)
    lines = [f'.TH {name.upper()} 1 "" "rdeploy-toolkit {__version__}" '
             f'"User Commands"',
             ".nh", ".SH NAME",
             f"{name} \\- {_esc(usage.summary.rstrip('.'))}",
             ".SH SYNOPSIS", ".nf"]
    lines += [_esc(line[2:]) for line in usage.section("Usage")
              if line.strip()] + [".fi"]
    for title, body in usage.sections:
        head = " ".join(title.split())
        if head == "Usage:":
            continue
        if not head.endswith(":"):              # a paragraph at column 0
            lines += [".PP", _esc(head)] + _body(body)
            continue
        head, note = head[:-1], ""
        if len(head) > 40:      # "Editing (each writes ...):"
            head, _, note = head.partition(" (")
        lines.append(f".SH {_esc(head.upper())}")
        if note:
            lines += [".PP", _esc("(" + note)]
        lines += _body(body, literal=head == "Examples")
    others = [c for c in COMMANDS if c != name]
    lines += [".SH SEE ALSO",
              ", ".join(f"\\fB{c}\\fR(1)" for c in others) +
              f"; \\fB{name} help\\fR COMMAND for one command's part."]
    return "\n".join(lines) + "\n"


def completion(name):
    """A bash completion script: command words, each command's options,
    an option's choices for its value (Option.choices, read from its
    description), file names for arguments and other values."""
    usage = usage_of(name)
    func = f"_{name}"
    cases = []
    for word, command in usage.commands.items():
        options = sorted(
            (o.long + ("=" if o.takes_value else "")) if o.long else o.short
            for o in usage.options if set(o.names) & command.options
            and o.long not in ("--help", "--version"))
        options += sorted(command.words) + ["--help"]
        cases.append(f"        {word}) opts=\"{' '.join(options)}\" ;;")
    takes_value = sorted(o.short for o in usage.options
                         if o.short and o.takes_value)
    value_case = "|".join(takes_value) if takes_value else "--"
    long_values = "|".join(sorted(o.long for o in usage.options
                                  if o.long and o.takes_value)) or "--"
    choices = "\n".join(
        f"        {o.long}) words=\"{' '.join(o.choices)}\" ;;"
        for o in usage.options if o.long and o.choices)
    return f"""\
# bash completion for {name}, made by deploytool/docgen.py from its usage text
# (`{name} --help`); do not edit: run `make docs`.
{func}() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}} prev=${{COMP_WORDS[COMP_CWORD-1]}}
    local cmd="" opts="" i
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${{COMP_WORDS[i]}} in
            -*) ;;
            *) cmd=${{COMP_WORDS[i]}}; break ;;
        esac
    done
    COMPREPLY=()
    if [[ -z $cmd ]]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "--help --version" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "{' '.join(usage.commands)}" -- "$cur"))
        fi
        return 0
    fi
    if [[ $cmd == help ]]; then
        ((COMP_CWORD == i + 1)) &&
            COMPREPLY=($(compgen -W "{' '.join(usage.commands)}" -- "$cur"))
        return 0
    fi
    # An option's value: bash splits "--opt=VAL" into "--opt" "=" "VAL"
    # (COMP_WORDBREAKS holds "="); a shell without "=" there gives it whole;
    # "--opt VAL" is the next word.
    local optname="" prefix="" words=""
    if [[ $prev == = ]] && ((COMP_CWORD >= 2)); then
        optname=${{COMP_WORDS[COMP_CWORD-2]}}
    elif [[ $cur == --*=* ]]; then
        optname=${{cur%%=*}} prefix=${{cur%%=*}}= cur=${{cur#*=}}
    else
        case $prev in
            {long_values}) optname=$prev ;;
        esac
    fi
    if [[ -n $optname ]]; then
        case $optname in
{choices}
        esac
        if [[ -n $words ]]; then
            COMPREPLY=($(compgen -P "$prefix" -W "$words" -- "$cur"))
        else
            COMPREPLY=($(compgen -P "$prefix" -f -- "$cur"))
        fi
        return 0
    fi
    case $prev in
        {value_case}) COMPREPLY=($(compgen -f -- "$cur")); return 0 ;;
    esac
    case $cmd in
{chr(10).join(cases)}
        *) return 0 ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
        [[ ${{COMPREPLY[*]}} == *= ]] && compopt -o nospace 2>/dev/null
    else
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
    return 0
}}
complete -o filenames -F {func} {name}
"""


DOCS = ("docs/rdeploy.md", "docs/imgx.md", "docs/bootdisk.md",
        "docs/pxeconf.md", "docs/bwpart.md")
BEGIN = ("<!-- exit-codes: the toolkit's table, made by deploytool/docgen.py "
         "from cliutil/runner.py; edit it there -->\n")
END = "<!-- end exit-codes -->\n"


def with_table(text):
    """`text` (a docs page) with its exit-code block made anew."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError("no exit-codes block")
    return text[:start] + BEGIN + exit_code_table() + text[end:]


def outputs():
    """{path relative to the project: text} of every generated file."""
    files = {}
    for name in COMMANDS:
        files[f"man/{name}.1"] = manpage(name)
        files[f"completions/{name}"] = completion(name)
    for rel in DOCS:
        with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
            files[rel] = with_table(f.read())
    return files


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    check = argv == ["--check"]
    if argv and not check:
        print("usage: python -m deploytool.docgen [--check]", file=sys.stderr)
        return 2
    stale = []
    for rel, text in outputs().items():
        path = os.path.join(ROOT, rel)
        try:
            with open(path, encoding="utf-8") as f:
                same = f.read() == text
        except FileNotFoundError:
            same = False
        if same:
            continue
        if check:
            stale.append(rel)
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"docgen: wrote {rel}", file=sys.stderr)
    if stale:
        print(f"docgen: out of date: {', '.join(stale)} (run `make docs`)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
