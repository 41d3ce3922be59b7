#!/usr/bin/env bash
# Builds {{name}}.wasm with componentize-qjs (QuickJS). The tool is taken from
# ./node_modules, else $FLOWHOST_NODE_MODULES, else PATH; when none has it, the
# version pinned in package.json (and package-lock.json) is installed into
# ./node_modules first. Messages go to stderr, so stdout stays free for what
# runs after the build.
set -euo pipefail
cd "$(dirname "$0")"
exec >&2
say() { echo "build.sh: $*"; }

tool=""
for dir in node_modules "${FLOWHOST_NODE_MODULES:-}"; do
    if [ -n "$dir" ] && [ -x "$dir/.bin/componentize-qjs" ]; then tool="$dir/.bin/componentize-qjs"; break; fi
done
[ -n "$tool" ] || tool="$(command -v componentize-qjs || true)"
if [ -z "$tool" ]; then
    command -v npm >/dev/null 2>&1 || { say "npm is needed to install componentize-qjs (Debian: apt-get install nodejs npm)"; exit 1; }
    how=install
    [ -e package-lock.json ] && how=ci
    say "installing componentize-qjs into ./node_modules (npm $how, once)"
    npm "$how" --no-audit --no-fund --loglevel=error
    tool=node_modules/.bin/componentize-qjs
fi
# --sync: flowhost does not enable the component-model async feature.
"$tool" --sync --wit wit --world step --js app.js -o {{name}}.wasm >/dev/null
say "built {{name}}.wasm"
