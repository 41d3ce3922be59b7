//! Live updates by server-sent events. The streams look at the store a few
//! times a second and send only what changed, so they work the same for a
//! run this server runs and one another server of a fleet runs.
//!
//! - `/ui/live/runs?flow=&status=`: `runs` events, the first page of the
//!   list as JSON rows, whenever it changes.
//! - `/ui/live/runs/{id}`: a `changed` event whenever the run moved on (its
//!   status or its journal), and `done` once it finished, then the end.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;

use super::Ui;
use super::runs::{Filters, Row};
use crate::executor::RunStatus;
use crate::server::Lookup;

/// How often a stream looks again.
const POLL: Duration = Duration::from_millis(250);

type Events = axum::response::Response;

fn sse(stream: impl Stream<Item = Result<Event, Infallible>> + Send + 'static) -> Events {
    use axum::response::IntoResponse;
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

pub(super) async fn runs(State(ui): State<Ui>, Query(f): Query<Filters>) -> Events {
    let stream = futures::stream::unfold((ui, f, None::<Vec<Row>>), |(ui, f, last)| async move {
        loop {
            if last.is_some() {
                tokio::time::sleep(POLL).await;
            }
            let Ok(query) = f.query() else {
                return None;
            };
            let Ok(page) = ui.state.store.list(query).await else {
                continue;
            };
            let rows: Vec<Row> = page.runs.iter().map(Row::of).collect();
            // The first look only sets where changes count from.
            let Some(previous) = &last else {
                return Some((
                    Ok(Event::default().comment("watching")),
                    (ui, f, Some(rows)),
                ));
            };
            if *previous != rows {
                let data = serde_json::to_string(&rows).unwrap_or_default();
                let event = Event::default().event("runs").data(data);
                return Some((Ok(event), (ui, f, Some(rows))));
            }
        }
    });
    sse(stream)
}

/// What shows that a run moved on: its status, and each journal entry's
/// path, status and attempts.
#[derive(PartialEq)]
struct Progress {
    status: RunStatus,
    steps: Vec<(String, String, usize)>,
}

async fn progress(ui: &Ui, id: &str) -> Option<Progress> {
    let status = match ui.state.lookup(id).await.ok()?? {
        Lookup::Live(_, status) => status,
        Lookup::Stored(run) => run.status,
    };
    let steps = match ui.state.store.replay_source(id).await {
        Ok(Some((_, entries))) => entries
            .iter()
            .map(|e| {
                let retry = if e.retry_at.is_some() { "waiting" } else { "" };
                (
                    e.path.clone(),
                    format!("{:?}{retry}", e.record.status),
                    e.record.attempts.len(),
                )
            })
            .collect(),
        _ => Vec::new(),
    };
    Some(Progress { status, steps })
}

fn finished(status: RunStatus) -> bool {
    !matches!(status, RunStatus::Queued | RunStatus::Running)
}

pub(super) async fn run(State(ui): State<Ui>, Path(id): Path<String>) -> Events {
    let stream = futures::stream::unfold(
        (ui, id, None::<Progress>, false),
        |(ui, id, last, ended)| async move {
            if ended {
                return None;
            }
            loop {
                if last.is_some() {
                    tokio::time::sleep(POLL).await;
                }
                let now = progress(&ui, &id).await?;
                let Some(previous) = &last else {
                    let done = finished(now.status);
                    let event = match done {
                        true => Event::default().event("done").data(now.status.as_str()),
                        false => Event::default().comment("watching"),
                    };
                    return Some((Ok(event), (ui, id, Some(now), done)));
                };
                if *previous != now {
                    let done = finished(now.status);
                    let word = if done { "done" } else { "changed" };
                    let event = Event::default().event(word).data(now.status.as_str());
                    return Some((Ok(event), (ui, id, Some(now), done)));
                }
            }
        },
    );
    sse(stream)
}
