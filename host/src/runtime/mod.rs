//! Executing one guest call under limits.
//!
//! Every call gets a fresh instance (from the plugin's pre-instantiated
//! component and the pooling allocator) in a fresh store, so nothing leaks
//! between calls. The call is async and bounded:
//! - by a deadline, enforced by epoch interruption for guest code and by a
//!   tokio timeout for guest waits (a WASI sleep or poll), both mapped to
//!   `deadline`; it bounds CPU time too, unless a fuel cap is lower;
//! - by fuel when the limits cap it; fuel is always counted (reported, and a
//!   yield to tokio every `fuel_yield_interval` units);
//! - by a memory and table cap ([`limiter`]);
//! - by output and log-volume caps.
//!
//! The output is checked to be JSON here, where the contract is crossed, so
//! every caller (a direct call, a flow, the server) gets JSON or the step's
//! own `permanent` error.
//!
//! This module knows nothing of flows: it runs one call of one plugin.

#[cfg(feature = "bench-internals")]
#[doc(hidden)]
pub mod bench;
pub(crate) mod bindings;
mod classify;
pub(crate) mod events;
pub(crate) mod http;
mod limiter;
pub use logs::LogLine;
pub(crate) mod logs;
mod sandbox;
pub(crate) mod state;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use wasmtime::component::ResourceTable;
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi_http::WasiHttpCtx;

use crate::config::{Config, Grants, Limits};
use crate::error::{CallError, Limit, StepError};
use crate::plugin::Plugin;
use bindings::Step;
use events::EventSink;
use state::StepState;

/// What the host tells a step about a call (the WIT `context`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    /// Flow name; "" when called directly.
    pub flow: String,
    /// Correlation id of the run.
    pub run_id: String,
    /// The step's id in its flow; the plugin name when called directly.
    pub step_id: String,
    /// 1 for the first try, 2 for the first retry, ...
    pub attempt: u32,
    /// The step's config, a JSON document; "{}" when none.
    pub config: String,
    /// The same on every attempt and after a restart: `<run id>/<step
    /// path>` in a flow, the plugin name when called directly. Not in the
    /// WIT `context` record (0.1.0); a step reads it through `host`'s
    /// `execution-key` (0.1.1).
    #[serde(default)]
    pub execution_key: String,
}

impl Context {
    /// The context of a direct call (no flow) of the plugin `name`.
    pub fn direct(name: &str) -> Self {
        Context {
            flow: String::new(),
            run_id: String::new(),
            step_id: name.to_string(),
            attempt: 1,
            config: "{}".to_string(),
            execution_key: name.to_string(),
        }
    }
}

impl Context {
    pub(crate) fn to_wit(&self) -> bindings::Context {
        bindings::Context {
            flow: self.flow.clone(),
            run_id: self.run_id.clone(),
            step_id: self.step_id.clone(),
            attempt: self.attempt,
            config: self.config.clone(),
        }
    }
}

/// What a step says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Metadata {
    /// The step's name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// What it does.
    pub description: String,
}

/// How one call is bounded and what it may reach.
#[derive(Clone, Default)]
pub struct CallOptions {
    /// Limits; `None` takes the host's defaults.
    pub limits: Option<Limits>,
    /// Capabilities; the default grants nothing.
    pub grants: Grants,
    /// Where `emit`ted events go; `None` logs them and starts nothing.
    pub events: Option<Arc<dyn EventSink>>,
    /// What `sql` and `kv` grants lead to; the default has nothing.
    pub services: crate::Services,
}

impl std::fmt::Debug for CallOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallOptions")
            .field("limits", &self.limits)
            .field("grants", &self.grants)
            .field("events", &self.events.is_some())
            .field("services", &self.services)
            .finish()
    }
}

/// The result of a call, with what it cost. `T` is how the output is held:
/// JSON text as a `String` for callers of [`Host`](crate::Host).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CallReport<T = String> {
    /// The step's JSON output (checked to be JSON), or why there is none.
    pub result: Result<T, CallError>,
    /// Fuel the call used.
    pub fuel_used: u64,
    /// Wall time of the call, instantiation included.
    pub duration: Duration,
    /// The largest linear memory the instance had, summed over its memories, in bytes.
    pub peak_memory: u64,
    /// Log lines dropped because the call went over its log budget.
    pub logs_dropped: u64,
    /// The call's first guest output lines (at most 50), for its record.
    pub logs: Vec<LogLine>,
    /// Lines logged but not in `logs` (past its 50).
    pub logs_not_kept: u64,
}

/// What every call shares: the engine, the configuration, the outbound
/// HTTP pool and the count of instances alive.
pub(crate) struct Runtime {
    pub(crate) engine: Engine,
    pub(crate) config: Config,
    pub(crate) http: http::HttpPool,
    pub(crate) alive: Arc<AtomicUsize>,
}

/// Counts one live instance (store) for as long as it exists.
pub(crate) struct Alive(Arc<AtomicUsize>);

impl Alive {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Alive(count.clone())
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<T> CallReport<T> {
    /// The same report with the output converted by `f`.
    pub(crate) fn map<U>(self, f: impl FnOnce(T) -> U) -> CallReport<U> {
        CallReport {
            result: self.result.map(f),
            fuel_used: self.fuel_used,
            duration: self.duration,
            peak_memory: self.peak_memory,
            logs_dropped: self.logs_dropped,
            logs: self.logs,
            logs_not_kept: self.logs_not_kept,
        }
    }
}

/// Runs `run` of `plugin` in a fresh instance under `options`.
pub(crate) async fn call(
    rt: &Runtime,
    plugin: &Plugin,
    ctx: &Arc<Context>,
    input: &str,
    options: &CallOptions,
) -> CallReport<Box<RawValue>> {
    let started = Instant::now();
    let limits = options.limits.as_ref().unwrap_or(&rt.config.limits);
    let mut store = match new_store(rt, plugin, ctx, limits, options) {
        Ok(store) => store,
        Err(e) => return report(Err(e), (0, 0), started, Logs::default()),
    };
    let wit_ctx = ctx.to_wit();
    let returned = run_bounded(&mut store, plugin, limits, async |store, step| {
        step.call_run(store, &wit_ctx, input).await
    })
    .await;
    let result = match returned {
        Err(e) => Err(e),
        Ok(Err(step_error)) => Err(CallError::Step(step_error.into())),
        Ok(Ok(output)) => check_output(output, limits),
    };
    let fuel_used = match store.get_fuel() {
        Ok(left) => fuel_budget(limits).saturating_sub(left),
        Err(_) => 0,
    };
    let peak_memory = store.data().limiter.peak();
    let dropped = store.data().logs.finish();
    let (lines, not_kept) = store.data().logs.take_kept();
    let logs = Logs {
        dropped,
        lines,
        not_kept,
    };
    report(result, (fuel_used, peak_memory), started, logs)
}

/// Runs `describe` of `plugin` under the host's default limits.
pub(crate) async fn describe(rt: &Runtime, plugin: &Plugin) -> Result<Metadata, CallError> {
    let ctx = Arc::new(Context::direct(plugin.name()));
    let limits = &rt.config.limits;
    let mut store = new_store(rt, plugin, &ctx, limits, &CallOptions::default())?;
    let returned = run_bounded(&mut store, plugin, limits, async |store, step| {
        step.call_describe(store).await
    })
    .await;
    store.data().logs.finish();
    returned.map(|m| Metadata {
        name: m.name,
        version: m.version,
        description: m.description,
    })
}

/// Instantiates `plugin` in `store` and runs `export` on the instance, both
/// under the store's deadline, and classifies what wasmtime reports. Every
/// guest call goes through here.
pub(crate) async fn run_bounded<T>(
    store: &mut Store<StepState>,
    plugin: &Plugin,
    limits: &Limits,
    export: impl AsyncFnOnce(&mut Store<StepState>, &Step) -> wasmtime::Result<T>,
) -> Result<T, CallError> {
    let deadline = store.data().deadline;
    let run = async {
        let step = plugin.pre().instantiate_async(&mut *store).await?;
        export(&mut *store, &step).await
    };
    // Epoch interruption stops guest code at the deadline; this timeout stops
    // guest waits (a WASI sleep or poll), which run no guest code. Counted
    // on tokio's clock from now, which is the wall clock unless a test paused it.
    let left = deadline.saturating_duration_since(Instant::now());
    match tokio::time::timeout(left, run).await {
        Err(_elapsed) => Err(classify::deadline(limits)),
        Ok(Err(trap)) => Err(classify::trap(trap, limits, &store.data().logs)),
        Ok(Ok(value)) => Ok(value),
    }
}

/// The fuel a call starts with: its cap, or all there is when uncapped
/// (fuel is still counted, for the report and for yields to tokio).
fn fuel_budget(limits: &Limits) -> u64 {
    limits.fuel.unwrap_or(u64::MAX)
}

/// `ctx` is shared by everything that tags the call (logs, events, denials).
pub(crate) fn new_store(
    rt: &Runtime,
    plugin: &Plugin,
    ctx: &Arc<Context>,
    limits: &Limits,
    options: &CallOptions,
) -> Result<Store<StepState>, CallError> {
    // Every call's limits pass here: ones built in code are checked once,
    // as flow files and flags are where they are read.
    limits.check().map_err(CallError::Host)?;
    let logs = Arc::new(logs::LogSink::new(plugin.name(), ctx, limits.max_log));
    let wasi = sandbox::wasi_ctx(&options.grants, &logs, ctx)?;
    let deadline = crate::duration::after(Instant::now(), limits.timeout);
    let state = StepState {
        table: ResourceTable::new(),
        wasi,
        http: WasiHttpCtx::new(),
        http_policy: http::HttpPolicy::new(
            &options.grants.http,
            rt.http.clone(),
            ctx.clone(),
            deadline,
        ),
        limiter: limiter::Limiter::new(
            limits.max_memory,
            limits.max_table_elements,
            limits.max_instances,
        ),
        logs,
        events: options.events.clone(),
        services: options.services.clone(),
        grants: options.grants.clone(),
        sql: Default::default(),
        ctx: ctx.clone(),
        deadline,
        _alive: Alive::new(&rt.alive),
    };
    let config = &rt.config;
    let mut store = Store::new(&rt.engine, state);
    store.limiter(|s| &mut s.limiter);
    // Bounds what one guest-to-host transfer (the output, a log line) may
    // copy, so an oversized output fails before the host allocates it.
    let transfer = limits.max_output.saturating_add(64 << 10);
    store.set_hostcall_fuel(usize::try_from(transfer).unwrap_or(usize::MAX));
    let host = |e: wasmtime::Error| CallError::Host(format!("{e:#}"));
    if config.meters_fuel() {
        store.set_fuel(fuel_budget(limits)).map_err(host)?;
        store
            .fuel_async_yield_interval(Some(config.fuel_yield_interval))
            .map_err(host)?;
    }
    if config.meters_epochs() {
        // Check the deadline on every epoch tick, yielding to tokio in between.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|cx| {
            if Instant::now() >= cx.data().deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
    }
    Ok(store)
}

/// The output within its size cap, and JSON.
fn check_output(output: String, limits: &Limits) -> Result<Box<RawValue>, CallError> {
    if output.len() as u64 > limits.max_output {
        return Err(CallError::limit(
            Limit::OutputTooLarge,
            format!(
                "the step returned {} of output; the limit is {}",
                bytesize::ByteSize(output.len() as u64).display().iec(),
                bytesize::ByteSize(limits.max_output).display().iec()
            ),
        ));
    }
    RawValue::from_string(output).map_err(|e| {
        CallError::Step(StepError::Permanent(format!(
            "the step returned invalid JSON: {e}"
        )))
    })
}

/// What a call's guest wrote, for its report.
#[derive(Default)]
struct Logs {
    dropped: u64,
    lines: Vec<LogLine>,
    not_kept: u64,
}

/// `cost` is the fuel used and the peak memory.
fn report(
    result: Result<Box<RawValue>, CallError>,
    (fuel_used, peak_memory): (u64, u64),
    started: Instant,
    logs: Logs,
) -> CallReport<Box<RawValue>> {
    CallReport {
        result,
        fuel_used,
        duration: started.elapsed(),
        peak_memory,
        logs_dropped: logs.dropped,
        logs: logs.lines,
        logs_not_kept: logs.not_kept,
    }
}

impl From<bindings::StepError> for StepError {
    fn from(e: bindings::StepError) -> Self {
        match e {
            bindings::StepError::Transient(m) => StepError::Transient(m),
            bindings::StepError::Permanent(m) => StepError::Permanent(m),
            bindings::StepError::InvalidInput(m) => StepError::InvalidInput(m),
        }
    }
}
