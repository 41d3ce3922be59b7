//! Loading and compiling: a `.wasm` file becomes a [`Plugin`], a component
//! type-checked against the `step` world and pre-instantiated.
//!
//! Compilation is CPU-bound (a 20 MB component takes seconds), so it runs in
//! `spawn_blocking`, never on the async runtime.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

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
    component: Component,
    pre: StepPre<StepState>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.inner.name)
            .field("path", &self.inner.path)
            .field("hash", &self.inner.hash)
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

    /// Size of the file in bytes.
    pub fn size(&self) -> u64 {
        self.inner.size
    }

    /// How long compiling and type-checking took.
    pub fn compile_time(&self) -> Duration {
        self.inner.compile_time
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

/// Reads, checks and compiles a plugin file, off the async runtime.
pub(crate) async fn load_file(
    engine: &Engine,
    linker: &Linker<StepState>,
    path: &Path,
) -> Result<Plugin, LoadError> {
    let fail = |reason| LoadError {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|e| fail(LoadErrorReason::Io(e)))?;
    load_bytes(engine, linker, path, bytes).await
}

/// Checks and compiles a plugin from bytes; `path` names it in errors and gives its name.
pub(crate) async fn load_bytes(
    engine: &Engine,
    linker: &Linker<StepState>,
    path: &Path,
    bytes: Vec<u8>,
) -> Result<Plugin, LoadError> {
    let fail = |reason| LoadError {
        path: path.to_path_buf(),
        reason,
    };
    check_header(&bytes).map_err(fail)?;
    let (engine, linker, owned_path) = (engine.clone(), linker.clone(), path.to_path_buf());
    tokio::task::spawn_blocking(move || compile(&engine, &linker, owned_path, &bytes))
        .await
        .map_err(|e| {
            fail(LoadErrorReason::Compile(format!(
                "compiler task failed: {e}"
            )))
        })?
}

fn compile(
    engine: &Engine,
    linker: &Linker<StepState>,
    path: PathBuf,
    bytes: &[u8],
) -> Result<Plugin, LoadError> {
    let fail = |reason| LoadError {
        path: path.clone(),
        reason,
    };
    let started = Instant::now();
    let hash = hex(&Sha256::digest(bytes));
    let component = Component::new(engine, bytes)
        .map_err(|e| fail(LoadErrorReason::Compile(format!("{e:#}"))))?;

    let ty = component.component_type();
    let exports: HashSet<&str> = ty.exports(engine).map(|(n, _)| n).collect();
    for name in ["describe", "run"] {
        if !exports.contains(name) {
            return Err(fail(LoadErrorReason::MissingExport(name.into())));
        }
    }
    let pre = linker
        .instantiate_pre(&component)
        .map_err(|e| fail(LoadErrorReason::UnknownImport(format!("{e:#}"))))?;
    let pre =
        StepPre::new(pre).map_err(|e| fail(LoadErrorReason::WrongSignature(format!("{e:#}"))))?;

    Ok(Plugin {
        inner: Arc::new(PluginInner {
            name: plugin_name(&path),
            path,
            hash,
            size: bytes.len() as u64,
            compile_time: started.elapsed(),
            component,
            pre,
        }),
    })
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

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
