// Turns a C core module into a step component with the wasm-tools that jco
// ships compiled to WebAssembly (no `cargo install wasm-tools` needed):
//   node componentize.mjs CORE.wasm WIT_FILE WORLD OUT.wasm
// Embeds the world's types (`wasm-tools component embed`), then wraps the
// module (`wasm-tools component new`), with jco's WASI reactor adapter only
// when the module imports wasi_snapshot_preview1 (stdio, clocks, ...).
// The packages are looked up in $FLOWHOST_NODE_MODULES, else ./node_modules
// (build.sh installs the jco that package.json pins there).
import { readFile, writeFile, rename } from 'node:fs/promises';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [core, witFile, world, out] = process.argv.slice(2);
if (!out) {
  console.error('usage: node componentize.mjs CORE.wasm WIT_FILE WORLD OUT.wasm');
  process.exit(2);
}
const modules = resolve(process.env.FLOWHOST_NODE_MODULES || 'node_modules');
const tools = await import(
  pathToFileURL(resolve(modules, '@bytecodealliance/jco-transpile/dist/wasm-tools.js')).href
);

const binary = await readFile(core);
// jco 1.35's `jco embed --wit DIR` cannot read paths (wasi error 44), so the
// WIT goes in as source text.
const witSource = await readFile(witFile, 'utf8');
const embedded = await tools.componentEmbed({ binary, witSource, world });

const imports = WebAssembly.Module.imports(new WebAssembly.Module(binary));
const adapters = [];
if (imports.some((i) => i.module === 'wasi_snapshot_preview1')) {
  const adapter = resolve(modules, '@bytecodealliance/jco/lib/wasi_snapshot_preview1.reactor.wasm');
  adapters.push(['wasi_snapshot_preview1', await readFile(adapter)]);
}
const component = await tools.componentNew(embedded, adapters);
await writeFile(`${out}.tmp`, component);
await rename(`${out}.tmp`, out);
