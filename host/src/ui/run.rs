//! A run's page: its status, the timeline, each step's detail (input,
//! output, logs, error, fuel, memory, duration, plugin and version) and the
//! actions: cancel, rerun, rerun from a step with an edited input.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::Ui;
use super::layout::{self, Nav};
use super::timeline::{self, Line};
use crate::executor::{RunError, RunStatus, StepRecord, StepType};
use crate::server::Lookup;
use crate::store::{DerivedFrom, StepEntry};

/// Documents larger than this (bytes of JSON text) are shown truncated,
/// with a link to the whole.
const SHOWN: usize = 16 * 1024;

/// Everything the page shows of a run.
struct View {
    id: String,
    flow: String,
    status: RunStatus,
    started_at: Option<String>,
    duration_ms: Option<f64>,
    error: Option<RunError>,
    steps: Vec<StepRecord>,
    entries: HashMap<String, StepEntry>,
    input: Option<String>,
    derived_from: Option<DerivedFrom>,
    durable: bool,
    /// The plugin steps being called now (a run live on this server).
    running: Vec<String>,
}

async fn view(ui: &Ui, id: &str) -> Result<Option<View>, String> {
    let state = &ui.state;
    let found = state.lookup(id).await.map_err(|e| e.to_string())?;
    let (flow, status, record) = match found {
        None => return Ok(None),
        Some(Lookup::Live(flow, status)) => (flow, status, None),
        Some(Lookup::Stored(run)) => (run.flow, run.status, run.record),
    };
    let source = state
        .store
        .replay_source(id)
        .await
        .map_err(|e| e.to_string())?;
    let (new, entries) = match source {
        Some((new, entries)) => (Some(new), entries),
        None => (None, Vec::new()),
    };
    let mut running = Vec::new();
    let steps = match &record {
        Some(r) => r.steps.clone(),
        // Running: what its journal holds so far, and the calls in flight.
        None => {
            let mut steps: Vec<StepRecord> = entries.iter().map(|e| e.record.clone()).collect();
            for (path, start_ms, for_) in state.calls_in_flight(id) {
                if steps.iter().any(|s| s.path == path) {
                    continue;
                }
                let mut step = StepRecord::empty();
                step.path = path.clone();
                step.start_ms = start_ms;
                step.duration_ms = for_.as_secs_f64() * 1e3;
                steps.push(step);
                running.push(path);
            }
            steps
        }
    };
    Ok(Some(View {
        id: id.to_string(),
        flow,
        status: record.as_ref().map_or(status, |r| r.status),
        started_at: record.as_ref().map(|r| r.started_at.clone()),
        duration_ms: record.as_ref().map(|r| r.duration_ms),
        error: record.as_ref().and_then(|r| r.error.clone()),
        steps,
        entries: entries.into_iter().map(|e| (e.path.clone(), e)).collect(),
        input: new.as_ref().map(|n| n.input.get().to_string()),
        derived_from: new.and_then(|n| n.derived_from),
        durable: state.store.durable(),
        running,
    }))
}

pub(super) async fn page(State(ui): State<Ui>, Path(id): Path<String>) -> Response {
    let v = match view(&ui, &id).await {
        Ok(Some(v)) => v,
        Ok(None) => {
            let body = html! { h1 { "Run not found" } (layout::notice(&format!("no run `{id}` (runs are kept within the store's retention)"))) };
            return (
                StatusCode::NOT_FOUND,
                layout::page("Run not found", Nav::Runs, body),
            )
                .into_response();
        }
        Err(e) => {
            let body = html! { h1 { "Run " code { (id) } } (layout::notice(&format!("the store failed: {e}"))) };
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                layout::page("Run", Nav::Runs, body),
            )
                .into_response();
        }
    };
    layout::page(&format!("Run {}", v.id), Nav::Runs, render(&v)).into_response()
}

fn finished(status: RunStatus) -> bool {
    !matches!(status, RunStatus::Queued | RunStatus::Running)
}

fn render(v: &View) -> Markup {
    let live: HashMap<String, &'static str> = v
        .running
        .iter()
        .map(|p| (p.clone(), "running"))
        .chain(
            v.entries
                .values()
                .filter(|e| e.retry_at.is_some())
                .map(|e| (e.path.clone(), "waiting")),
        )
        .collect();
    let lines = timeline::lines(&v.steps, &live);
    let total = v.duration_ms.unwrap_or_else(|| {
        v.steps
            .iter()
            .map(|s| s.start_ms + s.duration_ms)
            .fold(0.0, f64::max)
    });
    // The failing step first, else the first plugin step.
    let failing = v.error.as_ref().map(|e| e.step.clone());
    let drawn: Vec<&StepRecord> = lines
        .iter()
        .filter_map(|l| match l {
            Line::Step(r) => Some(r.step),
            Line::Items(..) => None,
        })
        .collect();
    let selected = drawn
        .iter()
        .find(|s| Some(&s.path) == failing.as_ref())
        .or_else(|| drawn.iter().find(|s| s.kind == StepType::Plugin))
        .map(|s| s.path.clone());
    let done = finished(v.status);
    html! {
        div.run-head data-run-id=(v.id) data-live=[(!done).then(|| format!("/ui/live/runs/{}", v.id))] {
            h1 { "Run " code { (v.id) } }
            p.meta {
                span data-testid="run-status" data-status=(v.status.as_str()) { (layout::run_badge(v.status)) }
                " flow " a href={ "/ui/flows/" (super::runs::encode(&v.flow)) } { (v.flow) }
                @if let Some(at) = &v.started_at { " · started " time { (at) } }
                @if let Some(d) = v.duration_ms { " · " (layout::ms(d)) }
                @if let Some(from) = &v.derived_from {
                    " · rerun of " a href={ "/ui/runs/" (from.run_id) } { code { (from.run_id) } }
                    @if let Some(step) = &from.step { " from step " code { (step) } }
                }
            }
            div.actions {
                @if !done { button type="button" data-action="cancel" data-run=(v.id) { "Cancel run" } }
                @if done { button type="button" data-action="rerun" data-run=(v.id) { "Rerun" } }
                output data-testid="action-result" role="status" {}
            }
            @if let Some(e) = &v.error { (run_error(e)) }
        }
        section aria-labelledby="tl-h" {
            h2 #tl-h { "Timeline" }
            @if v.steps.is_empty() { p.empty { @if done { "No step ran." } @else { "No step has finished yet." } } }
            (timeline::render(&lines, total, selected.as_deref()))
            p.legend { "◆ critical path · hatched: backoff wait before a retry · ◎ circuit breaker refused the call · ↺ fallback ran" }
        }
        section aria-labelledby="steps-h" {
            h2 #steps-h { "Step" }
            @for s in drawn.iter().filter(|s| s.kind == StepType::Plugin) {
                (detail(v, s, selected.as_deref() == Some(s.path.as_str())))
            }
        }
        @if done && v.durable { (editor(v)) }
        @if let Some(input) = &v.input {
            section aria-labelledby="in-h" {
                h2 #in-h { "Run input" }
                (document(v, input, "run", "input"))
            }
        }
    }
}

fn run_error(e: &RunError) -> Markup {
    html! {
        div.error role="alert" data-testid="run-error" {
            p { strong { (e.kind.to_string()) } ": " (e.message) }
            @if !e.step.is_empty() { p { "step " code { (e.step) } } }
            @if !e.causes.is_empty() {
                ol.causes aria-label="Causes, outermost first" { @for c in &e.causes { li { (c) } } }
            }
        }
    }
}

/// One plugin step's detail, hidden unless it is the one selected.
fn detail(v: &View, s: &StepRecord, shown: bool) -> Markup {
    let entry = v.entries.get(&s.path);
    let fuel: Option<u64> = s.attempts.iter().map(|a| a.fuel).sum();
    let memory = s.attempts.iter().filter_map(|a| a.peak_memory).max();
    let word = layout::step_word(s.status);
    html! {
        article.detail data-testid="step-detail" data-path=(s.path) hidden[!shown] {
            h3 { "Step " code { (s.path) } " " (layout::badge(word)) }
            dl.facts {
                dt { "Plugin" } dd { (s.plugin.as_deref().unwrap_or("-")) }
                dt { "Version" } dd { @if let Some(h) = &s.version { (layout::hash(h)) } @else { "-" } }
                dt { "Duration" } dd { (layout::ms(s.duration_ms)) }
                dt { "Attempts" } dd { (s.attempts.len()) }
                dt { "Fuel" } dd { @if let Some(f) = fuel { (crate::human::thousands(f)) } @else { "unknown" } }
                dt { "Peak memory" } dd { @if let Some(m) = memory { (layout::bytes(m)) } @else { "unknown" } }
                @if let Some(f) = &s.fallback { dt { "Fallback" } dd { (f.plugin) } }
                @if s.breaker_open { dt { "Breaker" } dd { "open: the call was refused" } }
            }
            div data-testid="step-error" {
                @if let Some(e) = &s.error {
                    h4 { "Error" }
                    p.error { strong { (e.kind.to_string()) } ": " (e.message) }
                    @for a in s.attempts.iter().filter(|a| a.error.is_some()) {
                        @if let Some(ae) = &a.error { p.attempt-error { "attempt " (a.attempt) ": " (ae.kind.to_string()) ": " (ae.message) } }
                    }
                }
            }
            h4 { "Input" }
            div data-testid="step-input" {
                @match entry.and_then(|e| e.input.as_ref()) {
                    Some(i) => (document(v, i.get(), &s.path, "input")),
                    None => p.empty { "Not recorded (the store did not journal this step's input)." },
                }
            }
            h4 { "Output" }
            div data-testid="step-output" {
                @match entry.and_then(|e| e.output.as_ref()) {
                    Some(o) => (document(v, o.get(), &s.path, "output")),
                    None if v.durable => p.empty { "No output." },
                    None => p.empty { "Not kept (the memory store keeps no step outputs)." },
                }
            }
            h4 { "Logs" }
            div data-testid="step-logs" {
                @let lines: usize = s.attempts.iter().map(|a| a.logs.len()).sum();
                @if lines == 0 { p.empty { "No log lines." } }
                @else {
                    ol.logs {
                        @for a in &s.attempts {
                            @for l in &a.logs {
                                li { span class={ "lvl l-" (l.level) } { (l.level) } " " span.stream { "#" (a.attempt) " " (l.stream) } " " span.msg { (l.message) } }
                            }
                        }
                    }
                }
                @let dropped: u64 = s.attempts.iter().map(|a| a.logs_dropped).sum();
                @if dropped > 0 { p.empty { (dropped) " more lines not kept" } }
            }
            @if finished(v.status) && v.durable {
                button type="button" data-action="rerun-from" data-path=(s.path) { "Rerun from this step…" }
            }
        }
    }
}

/// A JSON document: pretty and collapsible when small, else its start and
/// a link to the whole.
fn document(v: &View, text: &str, path: &str, which: &str) -> Markup {
    let href = format!(
        "/ui/runs/{}/document?path={}&which={which}",
        v.id,
        super::runs::encode(path)
    );
    if text.len() > SHOWN {
        let cut = (0..=SHOWN)
            .rev()
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(0);
        return html! {
            pre.json.truncated { (&text[..cut]) "…" }
            p { "Truncated: " (layout::bytes(text.len() as u64)) " in all. " a href=(href) download { "Download the whole document" } }
        };
    }
    let pretty = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| text.to_string());
    html! { pre.json data-json { (pretty) } }
}

/// The editor of a rerun from a step, filled in by the script.
fn editor(v: &View) -> Markup {
    html! {
        section.editor data-testid="rerun-editor" data-run=(v.id) hidden {
            h2 { "Rerun from step " code data-testid="rerun-path" {} }
            label for="rerun-input" { "The step's input (JSON)" }
            textarea #rerun-input data-testid="rerun-input" rows="10" spellcheck="false" {}
            p.error data-testid="rerun-error" role="alert" {}
            button type="button" data-action="rerun-submit" { "Start the rerun" }
            " "
            button type="button" data-action="rerun-close" { "Close" }
        }
    }
}

#[derive(Deserialize)]
pub(super) struct Which {
    path: String,
    which: String,
}

/// `GET /ui/runs/{id}/document?path=&which=input|output`: a step's whole
/// document (or the run's input: `path=run`), as a download.
pub(super) async fn document_download(
    State(ui): State<Ui>,
    Path(id): Path<String>,
    Query(w): Query<Which>,
) -> Response {
    let source = match ui.state.store.replay_source(&id).await {
        Ok(Some(s)) => s,
        Ok(None) => return (StatusCode::NOT_FOUND, format!("no run `{id}`")).into_response(),
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    };
    let (new, entries) = source;
    let text = if w.path == "run" && w.which == "input" {
        Some(new.input.get().to_string())
    } else {
        entries
            .iter()
            .find(|e| e.path == w.path)
            .and_then(|e| match w.which.as_str() {
                "input" => e.input.as_ref().map(|i| i.get().to_string()),
                "output" => e.output.as_ref().map(|o| o.get().to_string()),
                _ => None,
            })
    };
    let Some(text) = text else {
        return (
            StatusCode::NOT_FOUND,
            format!("run `{id}` has no {} kept for step `{}`", w.which, w.path),
        )
            .into_response();
    };
    let name = format!("attachment; filename=\"{}-{}.json\"", id, w.which);
    (
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (header::CONTENT_DISPOSITION, name),
        ],
        text,
    )
        .into_response()
}
