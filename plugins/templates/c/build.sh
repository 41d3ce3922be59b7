#!/usr/bin/env bash
# Builds {{name}}.wasm: clang (wasm32-wasi, with wasi-libc) makes a core module,
# then `wasm-tools` (if on PATH) or jco's wasm-tools (node componentize.mjs,
# packages from ./node_modules or $FLOWHOST_NODE_MODULES) makes the component.
# Debian: apt-get install clang lld wasi-libc libclang-rt-dev-wasm32
# gen/ holds the `wit-bindgen c` bindings of wit/; after changing the WIT:
#   wit-bindgen c wit --world step --no-object-file --out-dir gen
set -euo pipefail
cd "$(dirname "$0")"
core="$(mktemp)"
trap 'rm -f "$core" "$core.embedded"' EXIT
clang --target=wasm32-wasi -mexec-model=reactor -O2 -Wall -Wl,--strip-all \
    -I . -I gen app.c gen/step.c gen/component_type.c -o "$core"
if command -v wasm-tools >/dev/null 2>&1; then
    wasm-tools component embed wit "$core" --world step -o "$core.embedded"
    # An adapter is needed only when the code uses stdio, clocks, ... (WASI preview 1).
    wasm-tools component new "$core.embedded" -o {{name}}.wasm ${WASI_ADAPTER:+--adapt wasi_snapshot_preview1="$WASI_ADAPTER"}
else
    node componentize.mjs "$core" wit/step.wit step {{name}}.wasm
fi
echo "built {{name}}.wasm"
