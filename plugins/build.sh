#!/usr/bin/env bash
# Builds every Rust plugin for wasm32-wasip2 and copies the components to a
# flat layout, named after their crate (the plugin name is the file stem):
#   plugins/dist/<name>.wasm           examples
#   plugins/dist/testing/<name>.wasm   test plugins
#   plugins/dist/hostile/<name>.wasm   hostile plugins
# Idempotent: files are only replaced when their content changed. Works from
# any directory.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
target=wasm32-wasip2
# A fixed target dir, whatever CARGO_TARGET_DIR the caller has set.
target_dir="$here/target"
out="$here/dist"

if command -v rustup >/dev/null 2>&1; then
    installed="$(rustup target list --installed)"
    grep -qx "$target" <<<"$installed" || rustup target add "$target"
fi

cargo build --release --target "$target" --manifest-path "$here/Cargo.toml" --target-dir "$target_dir"

built="$target_dir/$target/release"
total=0 updated=0
declare -A expected=()
for group in examples testing hostile; do
    dest="$out"
    [ "$group" = examples ] || dest="$out/$group"
    mkdir -p "$dest"
    for manifest in "$here/$group"/*/Cargo.toml; do
        [ -e "$manifest" ] || continue
        name="$(basename "$(dirname "$manifest")")"
        src="$built/${name//-/_}.wasm"   # cargo turns '-' into '_' in artifact names
        dst="$dest/$name.wasm"
        expected["$dst"]=1
        if [ "$(head -c 8 "$src" | od -An -tx1 | tr -d ' \n')" != "0061736d0d000100" ]; then
            echo "build.sh: $src is not a WebAssembly component" >&2
            exit 1
        fi
        if ! cmp -s "$src" "$dst"; then
            # Copy then rename, so a reader never sees a half-written file.
            cp "$src" "$dst.tmp.$$"
            mv -f "$dst.tmp.$$" "$dst"
            updated=$((updated + 1))
        fi
        total=$((total + 1))
    done
done

# Drop components of plugins that no longer exist.
removed=0
for f in "$out"/*.wasm "$out"/testing/*.wasm "$out"/hostile/*.wasm; do
    if [ -e "$f" ] && [ -z "${expected[$f]:-}" ]; then
        rm -f "$f"
        removed=$((removed + 1))
    fi
done

echo "plugins: $total components in $out ($updated updated, $((total - updated)) unchanged, $removed removed)"
