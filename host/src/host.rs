//! [`Host`]: the entry point for embedding. It owns the engine, the linker and
//! the epoch clock, loads plugins and calls them.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::value::RawValue;

use crate::cache::{CacheStats, CompileCache};
use crate::config::Config;
use crate::engine;
use crate::error::{CallError, LoadError, SetupError};
use crate::plugin::{Loader, Plugin};
use crate::runtime::{self, CallOptions, CallReport, Context, Metadata, Runtime};

/// Loads step components and runs them sandboxed. Cheap to clone; clones share
/// the engine, the instance pool, the outbound HTTP connection pool and the
/// epoch clock.
#[derive(Clone)]
pub struct Host {
    inner: Arc<HostInner>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("instances_alive", &self.instances_alive())
            .finish_non_exhaustive()
    }
}

struct HostInner {
    runtime: Runtime,
    loader: Loader,
}

impl Host {
    /// Builds the engine, links WASI and the host interface, opens the
    /// compile cache (if [`Config::cache`] set one), sets up the outbound
    /// HTTP pool (no connection is made yet) and starts the epoch clock.
    ///
    /// Opening the cache is blocking file I/O on a small directory; a cache
    /// directory owned by another user is an error.
    pub fn new(config: Config) -> Result<Self, SetupError> {
        let engine = engine::build_engine(&config)?;
        let linker = engine::build_linker(&engine)?;
        let cache = match &config.cache_dir {
            Some(dir) => Some(Arc::new(
                CompileCache::open(dir, config.cache_limit, &engine)
                    .map_err(|e| SetupError(e.to_string()))?,
            )),
            None => None,
        };
        let http = runtime::http::HttpPool::new(config.http_pool())?;
        engine::start_epoch_clock(&engine, config.epoch_tick)?;
        Ok(Host {
            inner: Arc::new(HostInner {
                loader: Loader {
                    engine: engine.clone(),
                    linker,
                    cache,
                    compiles: Arc::default(),
                },
                runtime: Runtime {
                    engine,
                    config,
                    http,
                    alive: Arc::default(),
                },
            }),
        })
    }

    /// Components compiled by cranelift since the host started. A load served
    /// by the compile cache does not count.
    pub fn compile_count(&self) -> u64 {
        self.inner.loader.compiles.load(Ordering::Relaxed)
    }

    /// The compile cache's counters, or `None` without a cache.
    pub fn cache_stats(&self) -> Option<CacheStats> {
        self.inner.loader.cache.as_ref().map(|c| c.stats())
    }

    /// The compile cache directory in use, if any.
    pub fn cache_dir(&self) -> Option<&Path> {
        self.inner.loader.cache.as_ref().map(|c| c.dir())
    }

    /// The host's configuration.
    pub fn config(&self) -> &Config {
        &self.inner.runtime.config
    }

    /// Reads, type-checks and compiles a `.wasm` step component (off the async runtime).
    pub async fn load(&self, path: impl AsRef<Path>) -> Result<Plugin, LoadError> {
        self.inner.loader.load_file(path.as_ref()).await
    }

    /// Like [`Host::load`], from bytes; `path` names the plugin and appears in errors.
    pub async fn load_bytes(
        &self,
        path: impl AsRef<Path>,
        bytes: Vec<u8>,
    ) -> Result<Plugin, LoadError> {
        self.inner.loader.load_bytes(path.as_ref(), bytes).await
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
        self.call_raw(plugin, &Arc::new(ctx.clone()), input, options)
            .await
            // Checked JSON text to a `String`, without a copy.
            .map(|raw| Box::<str>::from(raw).into_string())
    }

    /// Like [`Host::call_with`], with the output as checked JSON.
    pub(crate) async fn call_raw(
        &self,
        plugin: &Plugin,
        ctx: &Arc<Context>,
        input: &str,
        options: &CallOptions,
    ) -> CallReport<Box<RawValue>> {
        runtime::call(&self.inner.runtime, plugin, ctx, input, options).await
    }

    #[cfg(feature = "bench-internals")]
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
