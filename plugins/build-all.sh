#!/usr/bin/env bash
# Builds every plugin in every language, installing the toolchains first:
#   Rust        plugins/build.sh                 -> dist/, dist/testing/, dist/hostile/
#   JavaScript  js/*.js, js/hostile/*.js         -> dist/js/<stem>.wasm       (componentize-qjs)
#   Python      python/*.py, python/hostile/*.py -> dist/python/<stem>.wasm   (componentize-py)
#   C           c/*.c                            -> dist/c/<stem>.wasm        (clang + jco's wasm-tools)
# Idempotent: a toolchain is installed only when missing (npm into js/node_modules,
# pip into python/.venv, apt for clang and wasi-libc), and a component is rebuilt
# only when its source, a helper or the WIT is newer. Works from any directory.
#
#   --no-install  never install; fail when a toolchain is missing
#   --regen-c     regenerate templates/c/gen/ with `wit-bindgen c` (after a WIT
#                 change; needs `cargo install wit-bindgen-cli --version 0.63.0 --locked`)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
wit="$root/wit"
out="$here/dist"
install=1 regen_c=0
for arg in "$@"; do
    case "$arg" in
        --no-install) install=0 ;;
        --regen-c) regen_c=1 ;;
        *) echo "build-all.sh: unknown argument $arg" >&2; exit 2 ;;
    esac
done

say() { echo "build-all: $*"; }
die() { echo "build-all: $*" >&2; exit 1; }
need() { [ "$install" = 1 ] || die "$1 is missing (run without --no-install, or: $2)"; }
timed() { local t0=$SECONDS; "$@"; say "  took $((SECONDS - t0)) s"; }

# --- Rust -------------------------------------------------------------------
bash "$here/build.sh"

# --- toolchains -------------------------------------------------------------
js_bin="$here/js/node_modules/.bin"
py_venv="$here/python/.venv"

command -v node >/dev/null && command -v npm >/dev/null || die "node and npm are needed (apt-get install nodejs npm)"
if [ ! -x "$js_bin/componentize-qjs" ] || [ ! -x "$js_bin/jco" ]; then
    need "the JavaScript toolchain" "npm install --prefix plugins/js"
    say "installing componentize-qjs and jco into plugins/js/node_modules"
    timed npm install --prefix "$here/js" --no-audit --no-fund --loglevel=error
fi

if [ ! -x "$py_venv/bin/componentize-py" ] || ! "$py_venv/bin/pip" show -q componentize-py >/dev/null 2>&1; then
    need "componentize-py" "python3 -m venv plugins/python/.venv && plugins/python/.venv/bin/pip install -r plugins/python/requirements.txt"
    say "installing componentize-py into plugins/python/.venv"
    timed bash -c "python3 -m venv '$py_venv' && '$py_venv/bin/pip' install -q --disable-pip-version-check -r '$here/python/requirements.txt'"
fi

if ! command -v clang >/dev/null || ! command -v wasm-ld >/dev/null || [ ! -e /usr/include/wasm32-wasi/stdlib.h ] \
    || ! ls /usr/lib/llvm-*/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a >/dev/null 2>&1; then
    need "clang, lld or wasi-libc" "apt-get install clang lld wasi-libc libclang-rt-dev-wasm32"
    [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || die "clang, lld, wasi-libc and libclang-rt-dev-wasm32 are needed (Debian packages)"
    say "installing clang, lld and wasi-libc (apt)"
    timed bash -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends clang lld wasi-libc libclang-rt-dev-wasm32 >/dev/null"
fi

# --- C bindings (vendored in templates/c/gen, generated from the WIT) -------
c_gen="$here/templates/c/gen"
wit_sum="$(sha256sum "$wit/step.wit" | cut -d' ' -f1)"
if [ "$regen_c" = 1 ]; then
    command -v wit-bindgen >/dev/null || die "--regen-c needs wit-bindgen (cargo install wit-bindgen-cli --version 0.63.0 --locked)"
    wit-bindgen c "$wit" --world step --no-object-file --out-dir "$c_gen" >/dev/null
    echo "$wit_sum" >"$c_gen/wit.sha256"
    say "regenerated $c_gen"
elif [ "$(cat "$c_gen/wit.sha256")" != "$wit_sum" ]; then
    die "wit/step.wit changed since templates/c/gen was generated: run plugins/build-all.sh --regen-c"
fi

# --- build ------------------------------------------------------------------
built=0 fresh=0
# stale OUT DEP...: true when OUT is missing or older than a DEP.
stale() {
    local o="$1"; shift
    [ -e "$o" ] || return 0
    local d
    for d in "$@"; do [ "$d" -nt "$o" ] && return 0; done
    return 1
}
# publish TMP DST: check the magic of a component, then move it into place.
publish() {
    if [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" != "0061736d0d000100" ]; then
        die "$1 is not a WebAssembly component"
    fi
    mv -f "$1" "$2"
    built=$((built + 1))
}
declare -A seen=()
unique() {
    [ -z "${seen[$1]:-}" ] || die "two plugins are named $1"
    [ ! -e "$out/$1.wasm" ] && [ ! -e "$out/testing/$1.wasm" ] && [ ! -e "$out/hostile/$1.wasm" ] \
        || die "$1 clashes with a Rust plugin's name"
    seen[$1]=1
}

mkdir -p "$out/js" "$out/python" "$out/c"

for src in "$here"/js/*.js "$here"/js/hostile/*.js; do
    [ -e "$src" ] || continue
    name="$(basename "$src" .js)"; unique "$name"
    dst="$out/js/$name.wasm"
    if stale "$dst" "$src" "$here/templates/js/step.js" "$wit/step.wit"; then
        say "js: $name"
        # --sync: the default runtime needs the component-model async feature,
        # which the host does not enable. The module root is plugins/, so
        # examples can import ../templates/js/step.js.
        (cd "$here" && nice -n 10 "$js_bin/componentize-qjs" --sync --wit "$wit" --world step \
            --module-root "$here" --js "$src" -o "$dst.tmp.$$" >/dev/null)
        publish "$dst.tmp.$$" "$dst"
    else
        fresh=$((fresh + 1))
    fi
done

for src in "$here"/python/*.py "$here"/python/hostile/*.py; do
    [ -e "$src" ] || continue
    name="$(basename "$src" .py)"; unique "$name"
    dst="$out/python/$name.wasm"
    if stale "$dst" "$src" "$here/templates/python/flowhost_step.py" "$wit/step.wit"; then
        say "python: $name"
        nice -n 10 "$py_venv/bin/componentize-py" -d "$wit" -w step componentize \
            -p "$(dirname "$src")" -p "$here/templates/python" "$name" -o "$dst.tmp.$$" >/dev/null
        publish "$dst.tmp.$$" "$dst"
    else
        fresh=$((fresh + 1))
    fi
done

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for src in "$here"/c/*.c; do
    [ -e "$src" ] || continue
    name="$(basename "$src" .c)"; unique "$name"
    dst="$out/c/$name.wasm"
    if stale "$dst" "$src" "$here/templates/c/flowhost_step.h" "$c_gen/step.c" "$c_gen/step.h" "$wit/step.wit"; then
        say "c: $name"
        clang --target=wasm32-wasi -mexec-model=reactor -O2 -Wall -Werror -Wl,--strip-all \
            -I "$here/templates/c" -I "$c_gen" "$src" "$c_gen/step.c" "$c_gen/component_type.c" \
            -o "$tmp/$name.core.wasm"
        FLOWHOST_NODE_MODULES="$here/js/node_modules" node "$here/templates/c/componentize.mjs" \
            "$tmp/$name.core.wasm" "$wit/step.wit" step "$dst.tmp.$$"
        publish "$dst.tmp.$$" "$dst"
    else
        fresh=$((fresh + 1))
    fi
done

# Drop components whose source is gone.
removed=0
for f in "$out"/js/*.wasm "$out"/python/*.wasm "$out"/c/*.wasm; do
    [ -e "$f" ] || continue
    if [ -z "${seen[$(basename "$f" .wasm)]:-}" ]; then
        rm -f "$f"; removed=$((removed + 1))
    fi
done
say "js, python, c: $((built + fresh)) components in $out/{js,python,c} ($built built, $fresh unchanged, $removed removed)"
