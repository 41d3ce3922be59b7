//! The overview: queue depth and runs in flight now, runs per minute and
//! failures by kind over the last hour. The figures are the `/metrics`
//! counters, sampled once a minute (the counters count since the server
//! started; the differences between samples are the per-minute figures).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use maud::{Markup, html};

use super::Ui;
use super::layout::{self, Nav};

/// One sample a minute, an hour of them (and the one before).
const KEPT: usize = 61;
const EVERY: Duration = Duration::from_secs(60);

/// The run counters at one moment.
#[derive(Clone, Default)]
pub(super) struct Totals {
    finished: u64,
    /// Failed runs by error kind.
    failed: BTreeMap<String, u64>,
}

/// The samples, oldest first.
#[derive(Default)]
pub(super) struct Samples(VecDeque<Totals>);

/// The value of label `name` in a metrics line's label set.
fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    let start = labels.find(&format!("{name}=\""))? + name.len() + 2;
    let rest = &labels[start..];
    Some(&rest[..rest.find('"')?])
}

/// The run counters in the metrics text.
fn totals(metrics: &str) -> Totals {
    let mut t = Totals::default();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix("flowhost_runs_finished_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        let n = value.trim().parse::<f64>().unwrap_or(0.0) as u64;
        t.finished += n;
        if label(labels, "status") == Some("failed") {
            let kind = label(labels, "kind").unwrap_or("unknown").to_string();
            *t.failed.entry(kind).or_default() += n;
        }
    }
    t
}

/// Samples the counters now and then every minute, while the UI lives.
pub(super) fn start_sampling(ui: &Ui) {
    let state = Arc::downgrade(&ui.state);
    let samples = Arc::downgrade(&ui.samples);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        loop {
            tick.tick().await;
            let (Some(state), Some(samples)) = (state.upgrade(), samples.upgrade()) else {
                break;
            };
            let now = totals(&state.metrics_text());
            let mut kept = samples.lock().unwrap_or_else(|e| e.into_inner());
            if kept.0.len() == KEPT {
                kept.0.pop_front();
            }
            kept.0.push_back(now);
        }
    });
}

pub(super) async fn page(State(ui): State<Ui>) -> Markup {
    let state = &ui.state;
    let now = totals(&state.metrics_text());
    let samples: Vec<Totals> = {
        let kept = ui.samples.lock().unwrap_or_else(|e| e.into_inner());
        kept.0.iter().cloned().chain([now.clone()]).collect()
    };
    let per_minute: Vec<u64> = samples
        .windows(2)
        .map(|w| w[1].finished.saturating_sub(w[0].finished))
        .collect();
    let first = &samples[0];
    let failed: BTreeMap<&str, u64> = now
        .failed
        .iter()
        .map(|(k, n)| {
            (
                k.as_str(),
                n.saturating_sub(*first.failed.get(k).unwrap_or(&0)),
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    let peak = per_minute.iter().copied().max().unwrap_or(0).max(1);
    let body = html! {
        h1 { "Overview" }
        div.cards {
            div.card { span.figure data-testid="queue-depth" { (state.queue_depth()) } span { "queued" } }
            div.card { span.figure data-testid="in-flight" { (state.in_flight()) } span { "running" } }
            div.card { span.figure { (per_minute.iter().sum::<u64>()) } span { "finished in the last hour" } }
            div.card { span.figure { (failed.values().sum::<u64>()) } span { "failed in the last hour" } }
        }
        h2 { "Runs finished per minute" }
        @if per_minute.is_empty() { p.empty { "Counting since the server started; the first minute is under way." } }
        @else {
            ol.bars aria-label="Runs finished per minute, oldest first" {
                @for (i, n) in per_minute.iter().enumerate() {
                    li style={ "--h:" (n * 100 / peak) "%" } title={ (per_minute.len() - i) " min ago: " (n) } {
                        span.sr { (per_minute.len() - i) " minutes ago: " (n) " runs" }
                    }
                }
            }
        }
        h2 { "Failures by kind, last hour" }
        @if failed.is_empty() { p.empty { "No run failed." } }
        @else {
            table.list {
                thead { tr { th scope="col" { "Kind" } th scope="col" { "Runs" } } }
                tbody { @for (kind, n) in &failed { tr { td { code { (kind) } } td { (n) } } } }
            }
        }
        p { a href="/ui/runs?status=failed" { "Failed runs" } " · " a href="/metrics" { "All metrics" } }
    };
    layout::page("Overview", Nav::Overview, body)
}
