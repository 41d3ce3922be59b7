//! The web UI at `/ui/`: pages rendered on the server (maud) from the
//! server's state and store, with one small ES module for live updates, the
//! timeline's interactions, the JSON views and the actions (which call the
//! JSON API). Assets are embedded; nothing is fetched from another host.
//! Every value that comes from a run, a flow or a guest is rendered as
//! escaped text (maud escapes; the script writes `textContent` only).

mod assets;
mod flows;
mod layout;
mod live;
mod overview;
mod plugins;
mod run;
mod runs;
mod timeline;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::Redirect;
use axum::routing::get;

use crate::live::ReloadEvent;
use crate::server::State;

/// How many reload events the plugins page keeps.
const RELOAD_HISTORY: usize = 100;

/// What the pages read: the server's state and what the UI keeps itself.
#[derive(Clone)]
pub(crate) struct Ui {
    pub(crate) state: Arc<State>,
    /// The latest reload events (plugins and flows), newest last, with when.
    reloads: Arc<Mutex<VecDeque<(String, ReloadEvent)>>>,
    /// Samples of the run counters, one a minute, for the overview.
    samples: Arc<Mutex<overview::Samples>>,
}

impl Ui {
    fn reloads(&self) -> Vec<(String, ReloadEvent)> {
        let kept = self.reloads.lock().unwrap_or_else(|e| e.into_inner());
        kept.iter().rev().cloned().collect()
    }
}

/// The UI's routes (all under `/ui`), to merge into the API's router.
pub(crate) fn router<S>(state: Arc<State>) -> Router<S> {
    let ui = Ui {
        state,
        reloads: Arc::default(),
        samples: Arc::default(),
    };
    keep_reloads(&ui);
    overview::start_sampling(&ui);
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(overview::page))
        .route("/ui/runs", get(runs::page))
        .route("/ui/runs/{id}", get(run::page))
        .route("/ui/runs/{id}/document", get(run::document_download))
        .route("/ui/flows", get(flows::list))
        .route("/ui/flows/{name}", get(flows::page))
        .route("/ui/plugins", get(plugins::page))
        .route("/ui/live/runs", get(live::runs))
        .route("/ui/live/runs/{id}", get(live::run))
        .route("/ui/assets/{file}", get(assets::serve))
        .layer(axum::middleware::map_response(protect))
        .with_state(ui)
}

/// The pages run only this server's script and load nothing from elsewhere,
/// so that even a value that escaped escaping could not run script.
async fn protect(mut response: axum::response::Response) -> axum::response::Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// Keeps the latest reload events of the plugins and flows folders.
fn keep_reloads(ui: &Ui) {
    for mut events in [ui.state.plugins.subscribe(), ui.state.flows.subscribe()] {
        let kept = Arc::downgrade(&ui.reloads);
        tokio::spawn(async move {
            loop {
                let event = match events.recv().await {
                    Ok(e) => e,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => break,
                };
                let Some(kept) = kept.upgrade() else { break };
                let at = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
                let mut kept = kept.lock().unwrap_or_else(|e| e.into_inner());
                if kept.len() == RELOAD_HISTORY {
                    kept.pop_front();
                }
                kept.push_back((at.to_string(), event));
            }
        });
    }
}
