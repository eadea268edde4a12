#!/usr/bin/env bash
# Freeze the toolkit into dist/deploytool (one onefile binary, see
# deploytool/recipe/deploytool.spec: the recipe is installed with the
# package, so `bootdisk toolkit` freezes from the same one) plus a link
# dist/<command> -> deploytool for every command in deploytool/multicall.py's
# COMMANDS, then smoke-test the result with an empty environment, as on boot
# media.
#
# Usage: build/freeze.sh            (PYTHON defaults to .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
DIST=dist
WORK=build/_work

# -O/-OO would strip the docstrings that docopt parses.
unset PYTHONOPTIMIZE
# Analyse the source tree itself, whatever the editable install maps.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

"$PYTHON" -m PyInstaller --noconfirm --log-level WARN \
    --distpath "$DIST" --workpath "$WORK" deploytool/recipe/deploytool.spec

names=$("$PYTHON" -c 'from deploytool.multicall import COMMANDS; print(*COMMANDS)')

# Links for the commands, and none for commands that left the table.
for link in "$DIST"/*; do
    if [ -L "$link" ] && [ "$(readlink "$link")" = deploytool ]; then
        rm -f "$link"
    fi
done
for name in $names; do
    ln -sfn deploytool "$DIST/$name"
done

# Smoke test: the listing must match the table, and every command whose module
# exists in the tree must show its --help (a docopt docstring) through its link.
listed=$(env -i "$DIST/deploytool" --list | tr '\n' ' ')
if [ "${listed% }" != "$names" ]; then
    echo "freeze: $DIST/deploytool --list gave '${listed% }', expected '$names'" >&2
    exit 1
fi
missing=""
for name in $names; do
    module=$("$PYTHON" -c "from deploytool.multicall import COMMANDS; print(COMMANDS['$name'])")
    if [ -f "${module//.//}.py" ]; then
        env -i "$DIST/$name" --help >/dev/null
    else
        missing="$missing $name"
    fi
done

size=$(du -k "$DIST/deploytool" | cut -f1)
echo "froze $DIST/deploytool ($((size / 1024)) MiB), links: $names${missing:+ (not written yet, not checked:$missing)}"
