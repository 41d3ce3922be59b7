#!/usr/bin/env bash
# Builds {{name}}.wasm with componentize-py, found in ./.venv, in
# $FLOWHOST_PYTHON_VENV, or on PATH
# (python3 -m venv .venv && .venv/bin/pip install -r requirements.txt).
set -euo pipefail
cd "$(dirname "$0")"
tool=""
for venv in .venv "${FLOWHOST_PYTHON_VENV:-}"; do
    if [ -n "$venv" ] && [ -x "$venv/bin/componentize-py" ]; then tool="$venv/bin/componentize-py"; break; fi
done
[ -n "$tool" ] || tool="$(command -v componentize-py || true)"
[ -n "$tool" ] || { echo "componentize-py not found: pip install -r requirements.txt" >&2; exit 1; }
"$tool" -d wit -w step componentize -p . app -o {{name}}.wasm >/dev/null
echo "built {{name}}.wasm"
