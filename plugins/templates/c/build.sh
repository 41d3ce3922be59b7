#!/usr/bin/env bash
# Builds {{name}}.wasm: clang (wasm32-wasi, with wasi-libc) makes a core module,
# then `wasm-tools` (if on PATH) or jco's wasm-tools (node componentize.mjs)
# makes the component. jco is taken from ./node_modules, else
# $FLOWHOST_NODE_MODULES; when neither has it, the version pinned in
# package.json (and package-lock.json) is installed into ./node_modules first.
# clang, lld and wasi-libc come from the system: when they are missing this
# says which packages to install and stops. Messages go to stderr, so stdout
# stays free for what runs after the build.
# gen/ holds the `wit-bindgen c` bindings of wit/; after changing the WIT:
#   wit-bindgen c wit --world step --no-object-file --out-dir gen
set -euo pipefail
cd "$(dirname "$0")"
exec >&2
say() { echo "build.sh: $*"; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# A reactor with libc, linked: fails when clang, wasm-ld, wasi-libc or the
# wasm32 compiler runtime is missing.
if ! command -v clang >/dev/null 2>&1 \
    || ! printf '#include <stdlib.h>\nvoid *f(void) { return malloc(1); }\n' \
        | clang --target=wasm32-wasi -mexec-model=reactor -x c - -o "$tmp/probe.wasm" 2>"$tmp/probe.log"; then
    [ -s "$tmp/probe.log" ] && sed 's/^/  /' "$tmp/probe.log"
    say "clang cannot build for wasm32-wasi: it needs clang, lld, wasi-libc and the wasm32 compiler runtime. On Debian or Ubuntu, as root:"
    echo "  apt-get install -y clang lld wasi-libc libclang-rt-dev-wasm32"
    exit 1
fi

core="$tmp/core.wasm"
clang --target=wasm32-wasi -mexec-model=reactor -O2 -Wall -Wl,--strip-all \
    -I . -I gen app.c gen/step.c gen/component_type.c -o "$core"

if command -v wasm-tools >/dev/null 2>&1; then
    wasm-tools component embed wit "$core" --world step -o "$core.embedded"
    # An adapter is needed only when the code uses stdio, clocks, ... (WASI preview 1).
    wasm-tools component new "$core.embedded" -o {{name}}.wasm ${WASI_ADAPTER:+--adapt wasi_snapshot_preview1="$WASI_ADAPTER"}
else
    command -v node >/dev/null 2>&1 || { say "node is needed to make the component (Debian: apt-get install nodejs npm), or wasm-tools on PATH"; exit 1; }
    has_jco() { [ -e "$1/@bytecodealliance/jco-transpile/dist/wasm-tools.js" ] && [ -e "$1/@bytecodealliance/jco/package.json" ]; }
    modules=""
    for dir in node_modules "${FLOWHOST_NODE_MODULES:-}"; do
        if [ -n "$dir" ] && has_jco "$dir"; then modules="$dir"; break; fi
    done
    if [ -z "$modules" ]; then
        command -v npm >/dev/null 2>&1 || { say "npm is needed to install jco (Debian: apt-get install nodejs npm)"; exit 1; }
        how=install
        [ -e package-lock.json ] && how=ci
        say "installing jco (its wasm-tools) into ./node_modules (npm $how, once)"
        npm "$how" --no-audit --no-fund --loglevel=error
        modules=node_modules
    fi
    FLOWHOST_NODE_MODULES="$modules" node componentize.mjs "$core" wit/step.wit step {{name}}.wasm
fi
say "built {{name}}.wasm"
