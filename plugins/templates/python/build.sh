#!/usr/bin/env bash
# Builds {{name}}.wasm with componentize-py. The tool is taken from ./.venv,
# else $FLOWHOST_PYTHON_VENV, else PATH; when none has it, a venv is made in
# ./.venv and requirements.txt (the pinned version) installed into it first.
# Messages go to stderr, so stdout stays free for what runs after the build.
set -euo pipefail
cd "$(dirname "$0")"
exec >&2
say() { echo "build.sh: $*"; }

tool=""
for venv in .venv "${FLOWHOST_PYTHON_VENV:-}"; do
    if [ -n "$venv" ] && [ -x "$venv/bin/componentize-py" ]; then tool="$venv/bin/componentize-py"; break; fi
done
[ -n "$tool" ] || tool="$(command -v componentize-py || true)"
if [ -z "$tool" ]; then
    command -v python3 >/dev/null 2>&1 || { say "python3 is needed to install componentize-py (Debian: apt-get install python3 python3-venv)"; exit 1; }
    say "installing componentize-py into ./.venv (python3 -m venv, pip install -r requirements.txt, once)"
    python3 -m venv .venv || { say "python3 -m venv failed (Debian: apt-get install python3-venv)"; exit 1; }
    .venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
    tool=.venv/bin/componentize-py
fi
"$tool" -d wit -w step componentize -p . app -o {{name}}.wasm >/dev/null
say "built {{name}}.wasm"
