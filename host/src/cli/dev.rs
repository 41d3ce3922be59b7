//! `flowhost dev`: run a flow, then re-run it on every change of its plugins
//! or its flow file, printing what reloaded.
//!
//! Plugins with a `step.toml` (see `build.rs`) are rebuilt from source when
//! their sources change; the new `.wasm` flows in through the same reload
//! path as any other file.

use std::time::Duration;

use flowhost::{
    Executor, Host, LiveFlows, LivePlugins, ReloadEvent, ReloadOutcome, RunInput, RunOptions,
    WatchOptions, plugin_name,
};
use tokio::sync::broadcast::error::RecvError;

use super::run::{self, FlowArgs};
use super::{Failure, build, plugins, trace};

/// Arguments of `flowhost dev`.
#[derive(clap::Args)]
pub(crate) struct DevArgs {
    #[command(flatten)]
    run: FlowArgs,
}

pub(crate) async fn run(args: DevArgs) -> Result<(), Failure> {
    let args = args.run;
    let input = args.input().await?;
    let host = Host::new(args.cache.config()).map_err(Failure::failed)?;

    let builds = build::discover(&args.plugins).await?;
    for b in &builds {
        b.build().await;
    }
    let (_source_watcher, mut rebuild) = build::watch(&builds)?;

    let options = WatchOptions::default();
    let plugins = LivePlugins::open(&host, &args.plugins, options.clone())
        .await
        .map_err(Failure::usage)?;
    let flows = LiveFlows::open(&args.flow, options)
        .await
        .map_err(Failure::usage)?;
    let mut plugin_events = plugins.subscribe();
    let mut flow_events = flows.subscribe();
    eprint!("{}", plugins::table(&plugins.statuses().await));
    for status in flows.statuses().await {
        if let Some(error) = status.error {
            eprintln!("[dev] the flow has errors:\n{error}");
        }
    }

    let session = Session {
        // Key-value state in memory, kept across the session's re-runs.
        executor: Executor::with_services(
            host,
            flowhost::Services::new().kv(std::sync::Arc::new(flowhost::kv::MemoryKv::new())),
        ),
        plugins,
        flows,
        flow_name: plugin_name(&args.flow),
        input,
        trace: args.trace,
    };
    session.run_once().await;
    eprintln!(
        "[dev] watching {} and {} (Ctrl-C to stop)",
        args.plugins.display(),
        args.flow.display()
    );

    loop {
        let mut rerun = false;
        tokio::select! {
            event = plugin_events.recv() => rerun |= report(event),
            event = flow_events.recv() => rerun |= report(event),
            Some(i) = rebuild.recv() => {
                while rebuild.try_recv().is_ok() {}
                if let Some(b) = builds.get(i) {
                    b.build().await;
                }
            }
            _ = tokio::signal::ctrl_c() => {
                eprintln!("[dev] stopped");
                return Ok(());
            }
        }
        // Changes often come in bursts (a build replacing several plugins):
        // take what arrives within a moment, then run once.
        let settle = tokio::time::sleep(Duration::from_millis(50));
        tokio::pin!(settle);
        loop {
            tokio::select! {
                event = plugin_events.recv() => rerun |= report(event),
                event = flow_events.recv() => rerun |= report(event),
                () = &mut settle => break,
            }
        }
        if rerun {
            session.run_once().await;
        }
    }
}

struct Session {
    executor: Executor,
    plugins: LivePlugins,
    flows: LiveFlows,
    flow_name: String,
    input: RunInput,
    trace: bool,
}

impl Session {
    /// Runs the flow as it is now, with the plugins as they are now.
    async fn run_once(&self) {
        let Some(flow) = self.flows.get(&self.flow_name) else {
            eprintln!("[dev] no valid flow to run yet; fix the flow file");
            return;
        };
        // The flow may have changed, its input_schema with it.
        let mut input = self.input.clone();
        if let Err(e) = input.check(&flow) {
            eprintln!("[dev] --input: {e}");
            return;
        }
        let snapshot = self.plugins.snapshot();
        eprintln!("[dev] running flow `{}`", flow.name());
        let record = self
            .executor
            .run_input(&flow, &snapshot, input, RunOptions::default())
            .await;
        if self.trace {
            eprint!("{}", trace::timeline(&record));
        }
        match run::outcome(&record) {
            Ok(output) => {
                println!("{output}");
                eprintln!("[dev] {} in {:.1} ms", record.status, record.duration_ms);
            }
            Err(lines) => {
                for line in lines {
                    eprintln!("[dev] {line}");
                }
            }
        }
    }
}

/// Prints a reload event; true when it changed what runs.
fn report(event: Result<ReloadEvent, RecvError>) -> bool {
    match event {
        Ok(event) => {
            eprintln!("[dev] {event}");
            !matches!(event.outcome, ReloadOutcome::Failed { .. })
        }
        Err(RecvError::Lagged(n)) => {
            eprintln!("[dev] ({n} reload events skipped)");
            true
        }
        Err(RecvError::Closed) => false,
    }
}
