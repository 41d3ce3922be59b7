#!/usr/bin/env bash
# Builds {{name}}.wasm (release, wasm32-wasip2), adding rustup's wasm32-wasip2
# target when it is missing. Messages go to stderr, so stdout stays free for
# what runs after the build.
set -euo pipefail
cd "$(dirname "$0")"
exec >&2
if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx wasm32-wasip2; then
    echo "build.sh: adding the wasm32-wasip2 target (rustup, once)"
    rustup target add wasm32-wasip2
fi
cargo build --release --target wasm32-wasip2
cp "${CARGO_TARGET_DIR:-target}/wasm32-wasip2/release/{{crate}}.wasm" {{name}}.wasm
echo "build.sh: built {{name}}.wasm"
