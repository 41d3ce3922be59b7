//! [`Host`]: the entry point for embedding. It owns the engine, the linker and
//! the epoch clock, loads plugins and calls them.

use std::path::Path;
use std::sync::Arc;

use wasmtime::component::Linker;

use crate::config::Config;
use crate::engine;
use crate::error::{CallError, LoadError, SetupError};
use crate::plugin::{self, Plugin};
use crate::runtime::{self, CallOptions, CallReport, Context, Metadata, Runtime, state::StepState};

/// Loads step components and runs them sandboxed. Cheap to clone; clones share
/// the engine, the instance pool and the epoch clock.
#[derive(Clone)]
pub struct Host {
    inner: Arc<HostInner>,
}

struct HostInner {
    runtime: Runtime,
    linker: Linker<StepState>,
}

impl Host {
    /// Builds the engine, links WASI and the host interface, and starts the epoch clock.
    pub fn new(config: Config) -> Result<Self, SetupError> {
        let engine = engine::build_engine(&config)?;
        let linker = engine::build_linker(&engine)?;
        engine::start_epoch_clock(&engine, config.epoch_tick)?;
        Ok(Host {
            inner: Arc::new(HostInner {
                runtime: Runtime {
                    engine,
                    config,
                    alive: Arc::default(),
                },
                linker,
            }),
        })
    }

    /// The host's configuration.
    pub fn config(&self) -> &Config {
        &self.inner.runtime.config
    }

    /// Reads, type-checks and compiles a `.wasm` step component (off the async runtime).
    pub async fn load(&self, path: impl AsRef<Path>) -> Result<Plugin, LoadError> {
        plugin::load_file(
            &self.inner.runtime.engine,
            &self.inner.linker,
            path.as_ref(),
        )
        .await
    }

    /// Like [`Host::load`], from bytes; `path` names the plugin and appears in errors.
    pub async fn load_bytes(
        &self,
        path: impl AsRef<Path>,
        bytes: Vec<u8>,
    ) -> Result<Plugin, LoadError> {
        plugin::load_bytes(
            &self.inner.runtime.engine,
            &self.inner.linker,
            path.as_ref(),
            bytes,
        )
        .await
    }

    /// Calls the step with a JSON `input` under the default limits and no grants.
    pub async fn call(
        &self,
        plugin: &Plugin,
        ctx: &Context,
        input: &str,
    ) -> Result<String, CallError> {
        self.call_with(plugin, ctx, input, &CallOptions::default())
            .await
            .result
    }

    /// Calls the step under `options`, and reports what the call cost.
    pub async fn call_with(
        &self,
        plugin: &Plugin,
        ctx: &Context,
        input: &str,
        options: &CallOptions,
    ) -> CallReport {
        runtime::call(&self.inner.runtime, plugin, ctx, input, options).await
    }

    pub(crate) fn runtime(&self) -> &Runtime {
        &self.inner.runtime
    }

    /// Guest instances alive right now, across all calls of this host.
    pub fn instances_alive(&self) -> usize {
        self.inner
            .runtime
            .alive
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Asks the step for its metadata.
    pub async fn describe(&self, plugin: &Plugin) -> Result<Metadata, CallError> {
        runtime::describe(&self.inner.runtime, plugin).await
    }
}
