//! The flows: each one's file, definition and load errors, triggers,
//! concurrency limit, circuit breakers, recent runs, and a form to start a
//! run (its input checked against `input_schema` by the API, whose field
//! errors the form shows).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use super::Ui;
use super::layout::{self, Nav};
use super::runs::{self, Row, encode};
use crate::executor::BreakerState;
use crate::live::EntryStatus;
use crate::store::ListQuery;

/// Recent runs a flow's page lists.
const RECENT: usize = 10;

pub(super) async fn list(State(ui): State<Ui>) -> Markup {
    let statuses = ui.state.flows.statuses().await;
    let flows = ui.state.flows.all();
    let body = html! {
        h1 { "Flows" }
        @if statuses.is_empty() { p.empty { "No flow files in the flows folder." } }
        table.list {
            thead { tr { th scope="col" { "Flow" } th scope="col" { "File" } th scope="col" { "Steps" } th scope="col" { "Triggers" } th scope="col" { "State" } } }
            tbody {
                @for s in &statuses {
                    @let flow = flows.get(&s.name);
                    tr {
                        td { a href={ "/ui/flows/" (encode(&s.name)) } { (s.name) } }
                        td { code { (s.path.display().to_string()) } }
                        td { @if let Some(f) = flow { (f.step_count()) } }
                        td { @if let Some(f) = flow { @for t in &f.triggers { code { (t.event) } " " } } }
                        td { (load_state(s)) }
                    }
                }
            }
        }
    };
    layout::page("Flows", Nav::Flows, body)
}

fn load_state(s: &EntryStatus) -> Markup {
    match (&s.version, &s.error) {
        (_, Some(_)) => layout::badge("failed"),
        (Some(_), None) => {
            html! { span class="badge s-succeeded" { span aria-hidden="true" { "✓" } " loaded" } }
        }
        (None, None) => layout::badge("queued"),
    }
}

pub(super) async fn page(State(ui): State<Ui>, Path(name): Path<String>) -> Response {
    let state = &ui.state;
    let statuses = state.flows.statuses().await;
    let Some(status) = statuses.into_iter().find(|s| s.name == name) else {
        let body = html! { h1 { "Flow not found" } (layout::notice(&format!("no flow `{name}` in the flows folder"))) };
        return (
            StatusCode::NOT_FOUND,
            layout::page("Flow not found", Nav::Flows, body),
        )
            .into_response();
    };
    let flow = state.flows.get(&name);
    let breakers = state.exec.breaker_states();
    let recent = match &flow {
        Some(f) => {
            let query = ListQuery {
                flow: Some(f.name.clone()),
                limit: RECENT,
                ..ListQuery::default()
            };
            state
                .store
                .list(query)
                .await
                .map(|p| p.runs.iter().map(Row::of).collect::<Vec<_>>())
                .map_err(|e| e.to_string())
        }
        None => Ok(Vec::new()),
    };
    let body = html! {
        h1 { "Flow " (name) }
        p.meta {
            "file " code { (status.path.display().to_string()) }
            @if let Some(v) = status.version { " · version " (v) }
            @if let Some(h) = &status.hash { " · " (layout::hash(h)) }
            @if let Some(at) = &status.loaded_at { " · loaded " time { (at) } }
        }
        @if let Some(e) = &status.error {
            div.error role="alert" data-testid="load-error" {
                p { strong { "The file on disk does not load" } @if flow.is_some() { " (the last good version keeps serving)" } ":" }
                pre { (e) }
            }
        }
        @if let Some(f) = &flow {
            dl.facts {
                dt { "Flow name" } dd { (f.name) }
                dt { "Triggers" } dd { @if f.triggers.is_empty() { "none" } @for t in &f.triggers { code { (t.event) } " " } }
                dt { "Concurrency" } dd { @match f.concurrency { Some(n) => { "at most " (n) " runs at once" }, None => "no limit of its own" } }
                dt { "Circuit breakers" } dd {
                    @let names = f.plugin_names();
                    @let mine: Vec<_> = breakers.iter().filter(|(p, _)| names.contains(p.as_str())).collect();
                    @if mine.is_empty() { "none used yet" }
                    @for (plugin, st) in mine { code { (plugin) } " " (breaker(*st)) " " }
                }
            }
            section aria-labelledby="start-h" {
                h2 #start-h { "Start a run" }
                form.start data-flow=(name) {
                    label for="start-input" { "Input (JSON)" }
                    @if let Some(schema) = &f.input_schema {
                        details { summary { "input_schema" } pre.json { (serde_json::to_string_pretty(&schema.schema).unwrap_or_default()) } }
                    }
                    textarea #start-input data-testid="start-input" rows="6" spellcheck="false" { "{}" }
                    ul.error data-testid="input-errors" role="alert" {}
                    button type="submit" data-action="start" { "Start run" }
                }
            }
            section aria-labelledby="recent-h" {
                h2 #recent-h { "Recent runs" }
                @match &recent {
                    Ok(rows) => (runs::table(rows, Some(&format!("/ui/live/runs?flow={}&status=", encode(&f.name))), RECENT)),
                    Err(e) => (layout::notice(&format!("the store failed: {e}"))),
                }
                p { a href={ "/ui/runs?flow=" (encode(&f.name)) } { "All runs of this flow" } }
            }
            section aria-labelledby="def-h" {
                h2 #def-h { "Definition" }
                pre.source { (f.source()) }
            }
        }
    };
    layout::page(&format!("Flow {name}"), Nav::Flows, body).into_response()
}

fn breaker(state: BreakerState) -> Markup {
    match state {
        BreakerState::Open => {
            html! { span class="badge s-failed" { span aria-hidden="true" { "◎" } " open" } }
        }
        BreakerState::HalfOpen => {
            html! { span class="badge s-queued" { span aria-hidden="true" { "◐" } " half-open" } }
        }
        _ => html! { span class="badge s-succeeded" { span aria-hidden="true" { "●" } " closed" } },
    }
}
