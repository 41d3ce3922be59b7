//! The runs list: newest first, filtered by flow and status, a run found by
//! its id, pages by the store's cursor; live through `live::runs`.

use axum::extract::{Query, State};
use maud::{Markup, html};
use serde::Deserialize;

use super::Ui;
use super::layout::{self, Nav};
use crate::executor::RunStatus;
use crate::server::Lookup;
use crate::store::{Cursor, ListQuery, StoredRun};

/// Runs per page.
pub(super) const PAGE: usize = 50;

/// The list's filters, as the form sends them (empty fields are none).
#[derive(Deserialize, Default, Clone)]
pub(super) struct Filters {
    #[serde(default)]
    pub(super) flow: String,
    #[serde(default)]
    pub(super) status: String,
    /// A run id to find.
    #[serde(default)]
    q: String,
    #[serde(default)]
    cursor: String,
}

impl Filters {
    /// The store's query for these filters, or why they are not valid.
    pub(super) fn query(&self) -> Result<ListQuery, String> {
        let status = match self.status.as_str() {
            "" => None,
            s => Some(s.parse::<RunStatus>().map_err(|e| format!("status: {e}"))?),
        };
        let cursor = match self.cursor.as_str() {
            "" => None,
            c => Some(c.parse::<Cursor>().map_err(|e| format!("cursor: {e}"))?),
        };
        Ok(ListQuery {
            flow: (!self.flow.is_empty()).then(|| self.flow.clone()),
            status,
            limit: PAGE,
            cursor,
        })
    }
}

pub(super) async fn page(State(ui): State<Ui>, Query(f): Query<Filters>) -> Markup {
    let state = &ui.state;
    let mut flows: Vec<String> = state
        .flows
        .all()
        .into_values()
        .map(|f| f.name.clone())
        .collect();
    flows.sort();
    flows.dedup();
    let (runs, next, problem) = match find(&ui, &f).await {
        Ok((runs, next)) => (runs, next, None),
        Err(e) => (Vec::new(), None, Some(e)),
    };
    // Live only where new runs would appear: the first page of a listing.
    let live = f.q.is_empty() && f.cursor.is_empty();
    let live_url = live.then(|| {
        format!(
            "/ui/live/runs?flow={}&status={}",
            encode(&f.flow),
            encode(&f.status)
        )
    });
    let body = html! {
        h1 { "Runs" }
        form.filters method="get" action="/ui/runs" role="search" {
            label { "Flow "
                select name="flow" {
                    option value="" { "any" }
                    @for name in &flows {
                        option value=(name) selected[*name == f.flow] { (name) }
                    }
                }
            }
            label { "Status "
                select name="status" {
                    option value="" { "any" }
                    @for s in ["queued", "running", "succeeded", "failed", "cancelled"] {
                        option value=(s) selected[s == f.status] { (s) }
                    }
                }
            }
            label { "Run id "
                input type="search" name="q" value=(f.q) placeholder="find a run by id" size="36";
            }
            button type="submit" { "Show" }
        }
        @if let Some(p) = problem { (layout::notice(&p)) }
        (table(&runs, live_url.as_deref(), PAGE))
        nav.pager aria-label="Pages" {
            @if !f.cursor.is_empty() {
                a href={ "/ui/runs?flow=" (encode(&f.flow)) "&status=" (encode(&f.status)) } { "⟨ Newest" }
            }
            @if let Some(next) = next {
                a rel="next" href={ "/ui/runs?flow=" (encode(&f.flow)) "&status=" (encode(&f.status)) "&cursor=" (encode(&next)) } { "Older ⟩" }
            }
        }
    };
    layout::page("Runs", Nav::Runs, body)
}

/// The runs the filters ask for, and the next page's cursor.
async fn find(ui: &Ui, f: &Filters) -> Result<(Vec<Row>, Option<String>), String> {
    let state = &ui.state;
    let q = f.q.trim();
    if !q.is_empty() {
        return match state.lookup(q).await.map_err(|e| e.to_string())? {
            None => Err(format!("no run `{q}`")),
            Some(Lookup::Live(flow, status)) => Ok((
                vec![Row {
                    run_id: q.to_string(),
                    flow,
                    status,
                    accepted_at: String::new(),
                }],
                None,
            )),
            Some(Lookup::Stored(run)) => Ok((vec![Row::of(&run)], None)),
        };
    }
    let page = state
        .store
        .list(f.query()?)
        .await
        .map_err(|e| e.to_string())?;
    let rows = page.runs.iter().map(Row::of).collect();
    Ok((rows, page.next.map(|c| c.to_string())))
}

/// One run, as a row shows it (and the live stream sends it).
#[derive(serde::Serialize, PartialEq, Eq, Clone)]
pub(super) struct Row {
    pub(super) run_id: String,
    pub(super) flow: String,
    pub(super) status: RunStatus,
    pub(super) accepted_at: String,
}

impl Row {
    pub(super) fn of(run: &StoredRun) -> Row {
        Row {
            run_id: run.run_id.clone(),
            flow: run.flow.clone(),
            status: run.status,
            accepted_at: humantime::format_rfc3339_seconds(run.accepted_at).to_string(),
        }
    }
}

/// The runs table; `live`: the event stream that keeps it current.
pub(super) fn table(runs: &[Row], live: Option<&str>, limit: usize) -> Markup {
    html! {
        table.runs data-testid="runs" data-live=[live] data-limit=(limit) {
            caption.sr { "Runs, newest first" }
            thead { tr { th scope="col" { "Status" } th scope="col" { "Run" } th scope="col" { "Flow" } th scope="col" { "Accepted" } } }
            tbody {
                @for r in runs {
                    tr data-run-id=(r.run_id) data-status=(r.status.as_str()) {
                        td { (layout::run_badge(r.status)) }
                        td { a href={ "/ui/runs/" (r.run_id) } { code { (r.run_id) } } }
                        td { a href={ "/ui/flows/" (encode(&r.flow)) } { (r.flow) } }
                        td { time { (r.accepted_at) } }
                    }
                }
            }
        }
        @if runs.is_empty() { p.empty data-testid="runs-empty" { "No runs match." } }
    }
}

/// `text` percent-encoded for a query string.
pub(super) fn encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
