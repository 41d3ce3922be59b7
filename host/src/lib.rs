//! # flowhost
//!
//! A tokio host that runs flow steps compiled to WebAssembly components
//! against the `flowhost:step` WIT contract, sandboxed and bounded.
//!
//! Embedding takes three lines: make a [`Host`], [`load`](Host::load) a
//! plugin, [`call`](Host::call) it.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let host = flowhost::Host::new(flowhost::Config::default())?;
//! let echo = host.load("plugins/dist/testing/echo.wasm").await?;
//! let out = host.call(&echo, &flowhost::Context::direct("echo"), r#"{"hi":1}"#).await?;
//! assert_eq!(out, r#"{"hi":1}"#);
//! # Ok(()) }
//! ```
//!
//! Flows compose steps. Load a flow file, the plugins it uses, and run it:
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use flowhost::{Config, Executor, Host, RunOptions, load_plugins, scan_dir};
//! let host = Host::new(Config::default())?;
//! let flow = flowhost::flow::load_flow("flows/examples/orders.yaml", None)
//!     .await
//!     .map_err(|errors| anyhow::anyhow!("{}", errors[0]))?;
//! let files = scan_dir("plugins/dist".as_ref()).map_err(anyhow::Error::msg)?;
//! let (plugins, _errors) = load_plugins(&host, &files, flow.plugin_names()).await;
//! let record = Executor::new(host).run(&flow, &plugins, serde_json::json!({}), RunOptions::default()).await;
//! println!("{}: {:?}", record.status, record.output);
//! # Ok(()) }
//! ```
//!
//! Every call runs in a fresh instance with fuel, a deadline, a memory cap and
//! output and log caps ([`Limits`]), and sees only what its [`Grants`] open.
//! A failure is typed: the step's own error, a trap, a limit hit, or a host
//! failure ([`CallError`], [`ErrorKind`]).

mod bounded_read;
mod cache;
mod config;
mod duration;
mod engine;
mod error;
pub mod executor;
pub mod flow;
pub mod flowtest;
mod host;
mod human;
pub mod kv;
mod live;
mod metrics;
mod plugin;
mod printable;
mod registry;
pub mod replay;
mod runtime;
pub mod server;
mod services;
pub mod sql;
pub mod store;
mod ui;
mod walk;

pub use cache::{
    CacheError, CacheInfo, CacheStats, DEFAULT_CACHE_LIMIT, cache_clear, cache_info,
    cache_key_file, default_cache_dir, prepare_cache_dir, prepare_cache_key,
};
#[cfg(feature = "bench-internals")]
#[doc(hidden)]
pub use config::Metering;
pub use config::{Config, DirGrant, DirMode, Grants, HttpGrant, HttpGrantError, Limits};
pub use duration::{DurationError, MAX_DURATION, parse_duration};
pub use error::{
    CallError, ErrorClass, ErrorKind, Limit, LoadError, LoadErrorReason, SetupError, StepError,
    UnknownErrorKind,
};
pub use executor::{Executor, InputError, RunInput, RunOptions, RunRecord, RunStatus};
pub use host::Host;
pub use live::{
    EntryStatus, LiveFlows, LivePlugins, ReloadEvent, ReloadOutcome, WatchError, WatchOptions,
    Watched,
};
pub use plugin::{Plugin, plugin_name};
pub use registry::{PluginSet, load_plugins, scan_dir};
#[cfg(feature = "bench-internals")]
#[doc(hidden)]
pub use runtime::bench;
pub use runtime::events::{Event, EventSink};
pub use runtime::{CallOptions, CallReport, Context, LogLine, Metadata};
pub use services::Services;
