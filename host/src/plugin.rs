//! Loading and compiling: a `.wasm` file becomes a [`Plugin`], a component
//! type-checked against the `step` world and pre-instantiated.
//!
//! Compilation is CPU-bound (a 20 MB component takes seconds), so it runs in
//! `spawn_blocking`, never on the async runtime.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

use crate::cache::CompileCache;
use crate::error::{LoadError, LoadErrorReason};
use crate::runtime::bindings::StepPre;
use crate::runtime::state::StepState;

/// A loaded step: compiled, type-checked and ready to instantiate. Cheap to clone.
#[derive(Clone)]
pub struct Plugin {
    inner: Arc<PluginInner>,
}

struct PluginInner {
    name: String,
    path: PathBuf,
    hash: String,
    size: u64,
    compile_time: Duration,
    cached: bool,
    version: u64,
    loaded_at: SystemTime,
    component: Component,
    pre: StepPre<StepState>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.inner.name)
            .field("path", &self.inner.path)
            .field("hash", &self.inner.hash)
            .field("version", &self.inner.version)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    /// The plugin's name: its file stem.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// SHA-256 of the file's bytes, in hex: the plugin's version identity.
    pub fn hash(&self) -> &str {
        &self.inner.hash
    }

    /// The bytes of its file, if they are still the version it was loaded
    /// from (a file changed or removed since gives `None`): what a store
    /// keeps so that a run resumes on the version it started with.
    pub async fn unchanged_bytes(&self) -> Option<Vec<u8>> {
        let bytes = crate::bounded_read::read_capped(&self.inner.path, MAX_PLUGIN_FILE_BYTES)
            .await
            .ok()?;
        (hex(&Sha256::digest(&bytes)) == self.inner.hash).then_some(bytes)
    }

    /// Size of the file in bytes.
    pub fn size(&self) -> u64 {
        self.inner.size
    }

    /// How long compiling (or loading from the compile cache) and
    /// type-checking took.
    pub fn compile_time(&self) -> Duration {
        self.inner.compile_time
    }

    /// Whether the compiled code came from the compile cache.
    pub fn cached(&self) -> bool {
        self.inner.cached
    }

    /// The version counter: 1 for the first load of a name, then 2, 3, ...
    /// for each reload by a [`LivePlugins`](crate::LivePlugins) registry.
    /// A plugin loaded by [`Host::load`](crate::Host::load) is version 1.
    pub fn version(&self) -> u64 {
        self.inner.version
    }

    /// When it was loaded.
    pub fn loaded_at(&self) -> SystemTime {
        self.inner.loaded_at
    }

    /// The same plugin with version counter `version`.
    pub(crate) fn with_version(&self, version: u64) -> Plugin {
        let i = &self.inner;
        Plugin {
            inner: Arc::new(PluginInner {
                name: i.name.clone(),
                path: i.path.clone(),
                hash: i.hash.clone(),
                size: i.size,
                compile_time: i.compile_time,
                cached: i.cached,
                version,
                loaded_at: i.loaded_at,
                component: i.component.clone(),
                pre: i.pre.clone(),
            }),
        }
    }

    /// The component's imports, as `name`s (for example `wasi:cli/environment@0.2.6`).
    pub fn imports(&self) -> Vec<String> {
        let engine = self.inner.component.engine();
        let ty = self.inner.component.component_type();
        ty.imports(engine).map(|(n, _)| n.to_string()).collect()
    }

    /// The component's exports.
    pub fn exports(&self) -> Vec<String> {
        let engine = self.inner.component.engine();
        let ty = self.inner.component.component_type();
        ty.exports(engine).map(|(n, _)| n.to_string()).collect()
    }

    pub(crate) fn pre(&self) -> &StepPre<StepState> {
        &self.inner.pre
    }
}

/// The name a plugin file gets: its stem.
pub fn plugin_name(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// What loading needs: the engine, the linker, the compile cache and the
/// compile counter. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Loader {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<StepState>,
    pub(crate) cache: Option<Arc<CompileCache>>,
    /// Components compiled by cranelift (cache hits are not counted).
    pub(crate) compiles: Arc<AtomicU64>,
}

/// The largest plugin file read: 256 MiB, over ten times the largest bundled
/// component (an 18 MB Python step). A larger file is refused unread.
pub(crate) const MAX_PLUGIN_FILE_BYTES: u64 = 256 << 20;

impl Loader {
    /// Reads, checks and compiles a plugin file, off the async runtime. Only
    /// a regular file of at most [`MAX_PLUGIN_FILE_BYTES`] is read.
    pub(crate) async fn load_file(&self, path: &Path) -> Result<Plugin, LoadError> {
        let bytes = crate::bounded_read::read_capped(path, MAX_PLUGIN_FILE_BYTES)
            .await
            .map_err(|e| LoadError {
                path: path.to_path_buf(),
                reason: LoadErrorReason::Io(e),
            })?;
        self.load_bytes(path, bytes).await
    }

    /// Checks and compiles a plugin from bytes; `path` names it in errors and gives its name.
    pub(crate) async fn load_bytes(
        &self,
        path: &Path,
        bytes: Vec<u8>,
    ) -> Result<Plugin, LoadError> {
        let fail = |reason| LoadError {
            path: path.to_path_buf(),
            reason,
        };
        check_header(&bytes).map_err(fail)?;
        let (loader, owned_path) = (self.clone(), path.to_path_buf());
        tokio::task::spawn_blocking(move || loader.compile(owned_path, &bytes))
            .await
            .map_err(|e| {
                fail(LoadErrorReason::Compile(format!(
                    "compiler task failed: {e}"
                )))
            })?
    }

    /// Blocking: the compile cache, or cranelift; then the type check.
    fn compile(&self, path: PathBuf, bytes: &[u8]) -> Result<Plugin, LoadError> {
        let fail = |reason| LoadError {
            path: path.clone(),
            reason,
        };
        let engine = &self.engine;
        let started = Instant::now();
        let digest = Sha256::digest(bytes);
        let hash = hex(&digest);
        let key = self.cache.as_ref().map(|c| c.key(&digest));
        let from_cache = match (&self.cache, &key) {
            (Some(cache), Some(key)) => cache.get(engine, key),
            _ => None,
        };
        let cached = from_cache.is_some();
        let component = match from_cache {
            Some(c) => c,
            None => {
                self.compiles.fetch_add(1, Ordering::Relaxed);
                Component::new(engine, bytes)
                    .map_err(|e| fail(LoadErrorReason::Compile(format!("{e:#}"))))?
            }
        };

        let ty = component.component_type();
        let exports: HashSet<&str> = ty.exports(engine).map(|(n, _)| n).collect();
        for name in ["describe", "run"] {
            if !exports.contains(name) {
                return Err(fail(LoadErrorReason::MissingExport(name.into())));
            }
        }
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| fail(LoadErrorReason::UnknownImport(format!("{e:#}"))))?;
        let pre = StepPre::new(pre)
            .map_err(|e| fail(LoadErrorReason::WrongSignature(format!("{e:#}"))))?;
        // Only components that pass the type check are cached.
        if let (Some(cache), Some(key), false) = (&self.cache, &key, cached) {
            cache.put(key, &component);
        }

        Ok(Plugin {
            inner: Arc::new(PluginInner {
                name: plugin_name(&path),
                path,
                hash,
                size: bytes.len() as u64,
                compile_time: started.elapsed(),
                cached,
                version: 1,
                loaded_at: SystemTime::now(),
                component,
                pre,
            }),
        })
    }
}

/// Tells a component from a core module or a non-wasm file before compiling.
fn check_header(bytes: &[u8]) -> Result<(), LoadErrorReason> {
    const MAGIC: &[u8] = b"\0asm";
    if bytes.len() < 8 {
        return Err(
            if !bytes.is_empty() && MAGIC.starts_with(&bytes[..bytes.len().min(4)]) {
                LoadErrorReason::Compile("truncated: the file ends inside its header".into())
            } else {
                LoadErrorReason::NotWasm
            },
        );
    }
    if &bytes[..4] != MAGIC {
        return Err(LoadErrorReason::NotWasm);
    }
    match bytes[4..8] {
        [1, 0, 0, 0] => Err(LoadErrorReason::CoreModule),
        [_, _, 1, 0] => Ok(()),
        _ => Err(LoadErrorReason::Compile(format!(
            "unsupported WebAssembly version/layer bytes {:02x?}",
            &bytes[4..8]
        ))),
    }
}

use crate::cache::hex;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_tells_kinds_apart() {
        assert!(matches!(check_header(b""), Err(LoadErrorReason::NotWasm)));
        assert!(matches!(
            check_header(b"\0as"),
            Err(LoadErrorReason::Compile(_))
        ));
        assert!(matches!(
            check_header(b"hello world"),
            Err(LoadErrorReason::NotWasm)
        ));
        assert!(matches!(
            check_header(b"\0asm\x01\0\0\0"),
            Err(LoadErrorReason::CoreModule)
        ));
        assert!(check_header(b"\0asm\x0d\0\x01\0").is_ok());
    }
}
