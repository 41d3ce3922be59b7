//! `flowhost bench`: run a flow many times at once in this process and print
//! throughput, latency, failures by kind and per-step figures.
//!
//! Plugins are compiled once and the input read once; every run goes through
//! one `Executor` (so circuit breakers are shared, as on a server). A few
//! warm-up runs come first and are not counted. `concurrency` tasks then run
//! the flow back to back until `--runs` have started or `--duration` has
//! passed; their records flow to one tally (see `figures`).

mod figures;
mod text;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use flowhost::flow::Flow;
use flowhost::{Executor, Host, PluginSet, RunInput, RunOptions, RunRecord, RunStatus};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Failure, args, run};
use figures::{Head, Tally};

/// The most runs one bench measures, `--runs` or `--duration` alike: the
/// latencies of all of them are kept.
const MAX_RUNS: u64 = 1_000_000;
/// The most runs at once.
const MAX_CONCURRENCY: usize = 1024;
/// The longest `--duration`.
const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);
/// Runs when neither `--runs` nor `--duration` is given.
const DEFAULT_RUNS: u64 = 1000;
/// Warm-up runs: one per concurrent task, at most this many.
const MAX_WARMUP: usize = 32;
/// How often the progress line is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// Arguments of `flowhost bench`.
#[derive(clap::Args)]
pub(crate) struct BenchArgs {
    /// The flow file (YAML or JSON).
    flow: PathBuf,
    /// The plugins folder (searched recursively; a plugin's name is its file stem).
    #[arg(long)]
    plugins: PathBuf,
    /// Input JSON, `@FILE`, or `@-` for stdin; read once, every run gets it.
    #[arg(long, default_value = "{}")]
    input: String,
    /// Runs to measure, at most 1000000 (default 1000).
    #[arg(long, value_parser = runs, conflicts_with = "duration")]
    runs: Option<u64>,
    /// Start runs for this long instead (for example 30s), at most 24h.
    #[arg(long, value_parser = duration)]
    duration: Option<Duration>,
    /// Runs at once, at most 1024.
    #[arg(long, default_value_t = 8, value_parser = concurrency)]
    concurrency: usize,
    /// Print the figures as one JSON document.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    cache: super::cache::CacheFlags,
}

fn runs(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(0) => Err("at least one run".into()),
        Ok(n) if n > MAX_RUNS => Err(format!("at most {MAX_RUNS} runs")),
        Ok(n) => Ok(n),
        Err(_) => Err("expected a whole number of runs".into()),
    }
}

fn concurrency(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("at least one run at once".into()),
        Ok(n) if n > MAX_CONCURRENCY => Err(format!("at most {MAX_CONCURRENCY} runs at once")),
        Ok(n) => Ok(n),
        Err(_) => Err("expected a whole number of runs at once".into()),
    }
}

fn duration(s: &str) -> Result<Duration, String> {
    match flowhost::parse_duration(s).map_err(|e| e.to_string())? {
        d if d.is_zero() => Err("a bench must last longer than zero".into()),
        d if d > MAX_DURATION => Err("at most 24h".into()),
        d => Ok(d),
    }
}

/// When the measured runs stop being started.
#[derive(Clone, Copy)]
enum Until {
    Runs(u64),
    Deadline(Instant),
}

/// What every run of the bench shares.
#[derive(Clone)]
struct Bench {
    executor: Executor,
    flow: Arc<Flow>,
    plugins: Arc<PluginSet>,
    input: RunInput,
    /// Cancelled by Ctrl-C: runs in flight stop, none starts.
    stop: CancellationToken,
}

impl Bench {
    async fn run_once(&self) -> RunRecord {
        let options = RunOptions {
            cancel: Some(self.stop.clone()),
            ..RunOptions::default()
        };
        self.executor
            .run_input(&self.flow, &self.plugins, self.input.clone(), options)
            .await
    }
}

/// A finished run and how long it took.
struct Finished {
    record: RunRecord,
    latency: Duration,
}

pub(crate) async fn run(args: BenchArgs) -> Result<(), Failure> {
    let (text, origin) = args::text_arg("--input", &args.input).await?;
    let mut input = RunInput::parse(text, &origin).map_err(Failure::usage)?;
    let files = run::scan(&args.plugins).await?;
    let flow = run::parse(&args.flow, Some(&files)).await?;
    input
        .check(&flow)
        .map_err(|e| Failure::usage(format!("--input: {e}")))?;
    let host = Host::new(args.cache.config()).map_err(Failure::failed)?;
    let plugins = run::load(&host, &files, &flow).await?;

    let stop = CancellationToken::new();
    let on_signal = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_signal.cancel();
        }
    });
    let bench = Bench {
        executor: Executor::with_services(
            host,
            flowhost::Services::new().kv(Arc::new(flowhost::kv::MemoryKv::new())),
        ),
        flow: Arc::new(flow),
        plugins: Arc::new(plugins),
        input,
        stop,
    };

    let warmup = args.concurrency.min(MAX_WARMUP);
    eprintln!(
        "flowhost: bench of flow `{}`: {warmup} warm-up runs, then measuring (Ctrl-C stops early)",
        bench.flow.name()
    );
    let warmups = (0..warmup).map(|_| bench.run_once());
    futures::future::join_all(warmups).await;

    let until = match args.duration {
        Some(d) => Until::Deadline(Instant::now() + d),
        None => Until::Runs(args.runs.unwrap_or(DEFAULT_RUNS)),
    };
    let measured = measure(&bench, until, args.concurrency).await;
    let interrupted = bench.stop.is_cancelled();
    let head = Head {
        flow: bench.flow.name().to_string(),
        warmup_runs: if interrupted && measured.tally.counts().0 == 0 {
            0
        } else {
            warmup as u64
        },
        concurrency: args.concurrency,
        interrupted,
        cancelled_in_flight: measured.cancelled,
    };
    let figures = measured.tally.figures(head, measured.elapsed);
    if args.json {
        let json = serde_json::to_string_pretty(&figures).map_err(Failure::failed)?;
        println!("{json}");
    } else {
        print!("{}", text::render(&figures));
    }
    Ok(())
}

/// What the measured phase gave.
struct Measured {
    tally: Tally,
    /// From the start to the last counted run's end.
    elapsed: Duration,
    /// Runs stopped by Ctrl-C, not counted.
    cancelled: u64,
}

/// Runs the flow on `concurrency` tasks until `until` (or Ctrl-C), tallying
/// each record as it comes; draws a progress line on a terminal.
async fn measure(bench: &Bench, until: Until, concurrency: usize) -> Measured {
    let started = Instant::now();
    let issued = Arc::new(AtomicU64::new(0));
    let (tx, mut rx) = mpsc::channel::<Finished>(concurrency * 2);
    for _ in 0..concurrency {
        let (bench, issued, tx) = (bench.clone(), issued.clone(), tx.clone());
        tokio::spawn(async move {
            while !bench.stop.is_cancelled() && claim(until, &issued) {
                let t = Instant::now();
                let record = bench.run_once().await;
                let done = Finished {
                    record,
                    latency: t.elapsed(),
                };
                if tx.send(done).await.is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);

    let mut progress = std::io::stderr()
        .is_terminal()
        .then(|| tokio::time::interval(PROGRESS_EVERY));
    let mut tally = Tally::new();
    let mut cancelled = 0;
    let mut last_end = started;
    loop {
        tokio::select! {
            done = rx.recv() => {
                let Some(Finished { record, latency }) = done else { break };
                if record.status == RunStatus::Cancelled && bench.stop.is_cancelled() {
                    cancelled += 1;
                    continue;
                }
                tally.add(&record, latency);
                last_end = Instant::now();
            }
            _ = tick(&mut progress) => draw(&tally, started, until),
        }
    }
    if progress.is_some() {
        // Clears the progress line.
        eprint!("\r\x1b[2K");
    }
    Measured {
        tally,
        elapsed: last_end - started,
        cancelled,
    }
}

/// Claims the start of one more run, if the bench is not over.
fn claim(until: Until, issued: &AtomicU64) -> bool {
    let n = issued.fetch_add(1, Ordering::Relaxed);
    match until {
        Until::Runs(runs) => n < runs,
        Until::Deadline(at) => n < MAX_RUNS && Instant::now() < at,
    }
}

/// The next progress tick; never, without a terminal.
async fn tick(progress: &mut Option<tokio::time::Interval>) {
    match progress {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// `[bench] 420/1000 runs  3 failed  212.4 runs/s  2.0 s`, over itself.
fn draw(tally: &Tally, started: Instant, until: Until) {
    let (runs, failed) = tally.counts();
    let secs = started.elapsed().as_secs_f64();
    let rate = if secs > 0.0 { runs as f64 / secs } else { 0.0 };
    let of = match until {
        Until::Runs(total) => format!("{runs}/{total} runs"),
        Until::Deadline(at) => {
            let total = secs + at.saturating_duration_since(Instant::now()).as_secs_f64();
            format!("{runs} runs, {secs:.0}/{total:.0} s")
        }
    };
    eprint!("\r\x1b[2K[bench] {of}  {failed} failed  {rate:.1} runs/s  {secs:.1} s");
}
