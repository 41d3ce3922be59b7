//! The wasmtime engine, the linker and the epoch clock, shared by every call.
//!
//! Lifecycle: built once by [`crate::Host::new`]; the epoch clock is an OS
//! thread (not a tokio task) so that it keeps ticking while guests hold every
//! worker thread, and it stops when the engine is dropped.

use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::config::Config;
use crate::error::SetupError;
use crate::runtime::bindings::Step;
use crate::runtime::state::StepState;

/// Builds the engine: fuel, epochs, and a pooling allocator sized from `config`.
pub(crate) fn build_engine(config: &Config) -> Result<Engine, SetupError> {
    let n = config.max_instances;
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(n)
        // Large components hold many core instances (componentize-py: ~38).
        .total_core_instances(n.saturating_mul(8))
        .total_memories(n.saturating_mul(4))
        .total_tables(n.saturating_mul(8))
        .total_stacks(n)
        .max_memories_per_module(2)
        .max_tables_per_module(8)
        .table_elements(config.limits.max_table_elements.max(20_000) as usize)
        .max_memory_size(config.max_memory_size as usize)
        .max_component_instance_size(4 << 20)
        .max_core_instance_size(4 << 20)
        // Reset only the pages a call dirtied (PAGEMAP_SCAN, Linux 6.7+), with
        // memset and no madvise: dropping an instance stays cheap and the next
        // call on the slot takes no page faults.
        .pagemap_scan(Enabled::Auto)
        .linear_memory_keep_resident(4 << 20)
        .table_keep_resident(1 << 16);

    let mut wasm = wasmtime::Config::new();
    wasm.consume_fuel(config.meters_fuel())
        .epoch_interruption(config.meters_epochs())
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&wasm).map_err(|e| SetupError(format!("{e:#}")))
}

/// Links WASI 0.2 (all of it, granting nothing by itself), wasi-http and our host interface.
pub(crate) fn build_linker(engine: &Engine) -> Result<Linker<StepState>, SetupError> {
    let mut linker = Linker::new(engine);
    let setup = |e: wasmtime::Error| SetupError(format!("{e:#}"));
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(setup)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(setup)?;
    Step::add_to_linker::<StepState, HasSelf<StepState>>(&mut linker, |s| s).map_err(setup)?;
    Ok(linker)
}

/// Starts the epoch clock for `engine`: one tick every `tick`, until the engine is dropped.
pub(crate) fn start_epoch_clock(engine: &Engine, tick: Duration) -> Result<(), SetupError> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("flowhost-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(tick);
            }
        })
        .map(|_| ())
        .map_err(|e| SetupError(format!("cannot start the epoch clock thread: {e}")))
}
