//! Benchmark probes: where the time of a fresh-instance call goes, and a call
//! into an already-live instance for comparison. Only in builds with the
//! `bench-internals` feature; not part of the API.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Limits;
use crate::host::Host;
use crate::plugin::Plugin;
use crate::runtime::{CallOptions, Context, new_store, run_bounded};

/// Time of each phase of one fresh-instance call.
#[derive(Debug, Clone, Copy, Default)]
pub struct Phases {
    /// Building the store and its WASI context.
    pub store: Duration,
    /// Instantiating from the pre-instantiated component.
    pub instantiate: Duration,
    /// The `run` call itself.
    pub call: Duration,
    /// Dropping the store (returning the instance to the pool).
    pub drop: Duration,
}

/// Runs `n` fresh-instance calls of `plugin`, timing each phase.
pub async fn phases(host: &Host, plugin: &Plugin, input: &str, n: usize) -> Vec<Phases> {
    let rt = host.runtime();
    let ctx = Arc::new(Context::direct(plugin.name()));
    let limits = &rt.config.limits;
    let options = CallOptions::default();
    let wit_ctx = ctx.to_wit();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t0 = Instant::now();
        let mut store = new_store(rt, plugin, &ctx, limits, &options).expect("store");
        let t1 = Instant::now();
        let mut t2 = t1;
        let r = run_bounded(&mut store, plugin, limits, async |store, step| {
            t2 = Instant::now();
            step.call_run(store, &wit_ctx, input).await
        })
        .await
        .expect("call");
        assert!(r.is_ok());
        let t3 = Instant::now();
        drop(store);
        let t4 = Instant::now();
        out.push(Phases {
            store: t1 - t0,
            instantiate: t2 - t1,
            call: t3 - t2,
            drop: t4 - t3,
        });
    }
    out
}

/// Calls `run` `n` times on one live instance; returns each call's time.
pub async fn live_calls(host: &Host, plugin: &Plugin, input: &str, n: usize) -> Vec<Duration> {
    let rt = host.runtime();
    let ctx = Arc::new(Context::direct(plugin.name()));
    let limits = Limits {
        fuel: None,
        timeout: Duration::from_secs(3600),
        ..rt.config.limits.clone()
    };
    let mut store = new_store(rt, plugin, &ctx, &limits, &CallOptions::default()).expect("store");
    let wit_ctx = ctx.to_wit();
    run_bounded(&mut store, plugin, &limits, async |store, step| {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            let r = step.call_run(&mut *store, &wit_ctx, input).await?;
            assert!(r.is_ok());
            out.push(t.elapsed());
        }
        Ok(out)
    })
    .await
    .expect("calls")
}
