//! The plugins: every name with its serving version, hash, size, compile
//! time, load error, and the reload history since the server started.

use axum::extract::State;
use maud::{Markup, html};

use super::Ui;
use super::layout::{self, Nav};
use crate::live::{ReloadOutcome, Watched};

pub(super) async fn page(State(ui): State<Ui>) -> Markup {
    let statuses = ui.state.plugins.statuses().await;
    let reloads = ui.reloads();
    let body = html! {
        h1 { "Plugins" }
        p.meta { "from " code { (ui.state.plugins.dir().display().to_string()) } }
        table.list data-testid="plugins" {
            thead { tr {
                th scope="col" { "Plugin" } th scope="col" { "Version" } th scope="col" { "Hash" }
                th scope="col" { "Size" } th scope="col" { "Compile" } th scope="col" { "Loaded" } th scope="col" { "Error" }
            } }
            tbody {
                @for s in &statuses {
                    tr data-plugin=(s.name) {
                        td { strong { (s.name) } }
                        td { @if let Some(v) = s.version { (v) } @else { "-" } }
                        td { @if let Some(h) = &s.hash { (layout::hash(h)) } }
                        td { @if let Some(n) = s.size { (layout::bytes(n)) } }
                        td {
                            @if let Some(ms) = s.load_ms { (layout::ms(ms)) }
                            @if s.cached { " (cache)" }
                        }
                        td { @if let Some(at) = &s.loaded_at { time { (at) } } }
                        td { @if let Some(e) = &s.error { span.error { (layout::badge("failed")) " " (e) } } }
                    }
                }
            }
        }
        @if statuses.is_empty() { p.empty { "No plugins in the folder." } }
        h2 { "Reload history" }
        @if reloads.is_empty() { p.empty { "No reload since the server started." } }
        ol.history {
            @for (at, e) in &reloads {
                li {
                    time { (at) } " "
                    (match e.what { Watched::Plugin => "plugin", _ => "flow" }) " "
                    strong { (e.name) } " "
                    @match &e.outcome {
                        ReloadOutcome::Loaded { version, hash, load_time, cached } => {
                            (layout::badge("succeeded")) " version " (version) " " (layout::hash(hash))
                            " in " (layout::ms(load_time.as_secs_f64() * 1e3)) @if *cached { " (cache)" }
                        }
                        ReloadOutcome::Failed { error } => { (layout::badge("failed")) " " (error) }
                        _ => { (layout::badge("cancelled")) " removed" }
                    }
                }
            }
        }
    };
    layout::page("Plugins", Nav::Plugins, body)
}
