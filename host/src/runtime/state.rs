//! The data of one call's store, and the host interface the guest imports.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::runtime::Context;
use crate::runtime::bindings::flowhost::step::{host, types};
use crate::runtime::events::{Event, EventSink};
use crate::runtime::http::HttpPolicy;
use crate::runtime::limiter::Limiter;
use crate::runtime::logs::{Level, LogSink};

/// Everything a running guest can reach, and nothing more.
pub(crate) struct StepState {
    pub(crate) table: ResourceTable,
    pub(crate) wasi: WasiCtx,
    pub(crate) http: WasiHttpCtx,
    pub(crate) http_policy: HttpPolicy,
    pub(crate) limiter: Limiter,
    pub(crate) logs: Arc<LogSink>,
    pub(crate) events: Option<Arc<dyn EventSink>>,
    /// What `sql` and `kv` names lead to, and which of them this call was granted.
    pub(crate) services: crate::Services,
    pub(crate) grants: crate::Grants,
    /// The call's open SQL transactions.
    pub(crate) sql: crate::sql::CallSql,
    /// Who is calling: the tags of emitted events.
    pub(crate) ctx: Arc<Context>,
    pub(crate) deadline: Instant,
    pub(crate) _alive: crate::runtime::Alive,
}

impl WasiView for StepState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for StepState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_policy,
        }
    }
}

impl types::Host for StepState {}

impl host::Host for StepState {
    async fn log(&mut self, level: host::Level, message: String) {
        let level = match level {
            host::Level::Trace => Level::Trace,
            host::Level::Debug => Level::Debug,
            host::Level::Info => Level::Info,
            host::Level::Warn => Level::Warn,
            host::Level::Error => Level::Error,
        };
        self.logs.log(level, &message);
    }

    async fn execution_key(&mut self) -> String {
        self.ctx.execution_key.clone()
    }

    async fn emit(&mut self, topic: String, payload: String) -> Result<(), String> {
        let payload = serde_json::value::RawValue::from_string(payload)
            .map_err(|e| format!("event payload is not valid JSON: {e}"))?;
        let event = Event {
            topic,
            payload,
            flow: self.ctx.flow.clone(),
            run_id: self.ctx.run_id.clone(),
            step_id: self.ctx.step_id.clone(),
        };
        match &self.events {
            Some(sink) => sink.emit(event),
            None => {
                tracing::info!(target: "flowhost::events", topic = %crate::printable::printable(&event.topic), step = %event.step_id,
                    "event emitted; no event bus in this mode, so no flow is started");
                Ok(())
            }
        }
    }
}
