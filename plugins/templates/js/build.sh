#!/usr/bin/env bash
# Builds {{name}}.wasm with componentize-qjs (QuickJS), found in ./node_modules
# (`npm install`), in $FLOWHOST_NODE_MODULES, or on PATH.
set -euo pipefail
cd "$(dirname "$0")"
tool=""
for dir in node_modules "${FLOWHOST_NODE_MODULES:-}"; do
    if [ -n "$dir" ] && [ -x "$dir/.bin/componentize-qjs" ]; then tool="$dir/.bin/componentize-qjs"; break; fi
done
[ -n "$tool" ] || tool="$(command -v componentize-qjs || true)"
[ -n "$tool" ] || { echo "componentize-qjs not found: run npm install" >&2; exit 1; }
# --sync: flowhost does not enable the component-model async feature.
"$tool" --sync --wit wit --world step --js app.js -o {{name}}.wasm >/dev/null
echo "built {{name}}.wasm"
