//! `flowhost runs ... --store URL`: the same commands on a store file
//! directly. Reading works while a server holds the store; writing needs
//! the store to itself (no server on it).

use std::sync::Arc;
use std::time::SystemTime;

use flowhost::RunStatus;
use flowhost::executor::RunRecord;
use flowhost::store::sqlite::SqliteStore;
use flowhost::store::{Cursor, ListQuery, NewRun, Store, StoreError, StoreUrl};
use serde_json::json;

use super::{Cancelled, Page, Row, Shown};
use crate::cli::Failure;

/// The message of a run cancelled without a server.
const CANCELLED_OFFLINE: &str = "cancelled from the command line while no server ran";

/// An open store and the URL it was opened from.
pub(crate) struct Opened {
    store: Arc<dyn Store>,
    url: StoreUrl,
}

/// How a command needs the store.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// To read it, while a server may run on it.
    Read,
    /// To write it: no server may run on it.
    Write,
}

/// Opens the store at `url` for `access`. The file must exist: these
/// commands never create a store. `memory` is refused: it would be empty.
pub(crate) async fn open(url: &StoreUrl, access: Access, doing: &str) -> Result<Opened, Failure> {
    let path = match url {
        StoreUrl::Sqlite(path) => path,
        // Shared by design: read and written while servers run on it.
        StoreUrl::Postgres(_) => {
            let store = flowhost::store::open(url, &Default::default())
                .await
                .map_err(|e| Failure::usage(format!("--store {url}: {e}")))?;
            return Ok(Opened {
                store,
                url: url.clone(),
            });
        }
        _ => {
            return Err(Failure::usage(format!(
                "--store {url}: a memory store lives only inside the server that made it; use --server URL to reach it, or --store sqlite:PATH"
            )));
        }
    };
    if !path.exists() {
        return Err(Failure::usage(format!(
            "{url}: no such store (choose one with --store sqlite:PATH, or --server URL)"
        )));
    }
    let opened = match access {
        Access::Read => open_reader(path).await,
        Access::Write => flowhost::store::open(url, &Default::default()).await,
    };
    let store = opened.map_err(|e| match e {
        StoreError::Locked { path } => Failure::usage(format!(
            "{path}: a server runs on this store; {doing} through it with --server URL"
        )),
        e => Failure::usage(format!("--store {url}: {e}")),
    })?;
    Ok(Opened {
        store,
        url: url.clone(),
    })
}

/// Opens the store at `path` to read it without taking its lock, so that it
/// can be read while a server runs on it.
async fn open_reader(path: &std::path::Path) -> Result<Arc<dyn Store>, StoreError> {
    Ok(Arc::new(SqliteStore::open_reader(path).await?))
}

impl Opened {
    fn failed(&self, e: StoreError) -> Failure {
        Failure::failed(format!("{}: {e}", self.url))
    }

    /// A page of runs, newest first.
    pub(super) async fn list(&self, args: &super::ListArgs) -> Result<Page, Failure> {
        let cursor = match &args.cursor {
            Some(text) => Some(text.parse::<Cursor>().ok().ok_or_else(|| {
                Failure::usage(format!(
                    "--cursor {text}: not a cursor `flowhost runs list` gave"
                ))
            })?),
            None => None,
        };
        let mut query = ListQuery::default();
        query.flow = args.flow.clone();
        query.status = args.status;
        query.limit = args.limit.into();
        query.cursor = cursor;
        let page = self.store.list(query).await.map_err(|e| self.failed(e))?;
        Ok(Page {
            runs: page
                .runs
                .into_iter()
                .map(|r| Row {
                    run_id: r.run_id,
                    flow: r.flow,
                    status: r.status,
                    accepted_at: Some(rfc3339(r.accepted_at)),
                })
                .collect(),
            next: page.next.map(|c| c.to_string()),
        })
    }

    /// The run `run_id` as the store has it; no such run is a usage error.
    async fn stored(&self, run_id: &str) -> Result<flowhost::store::StoredRun, Failure> {
        self.store
            .run(run_id)
            .await
            .map_err(|e| self.failed(e))?
            .ok_or_else(|| self.no_run(run_id))
    }

    /// One run: its record once finished.
    pub(super) async fn show(&self, run_id: &str) -> Result<Shown, Failure> {
        let run = self.stored(run_id).await?;
        Ok(match run.record {
            Some(record) => Shown::Finished(Box::new(RunRecord::clone(&record))),
            None => Shown::Unfinished(Row {
                run_id: run.run_id,
                flow: run.flow,
                status: run.status,
                accepted_at: Some(rfc3339(run.accepted_at)),
            }),
        })
    }

    /// Gives an unfinished run its final record, `cancelled`, with the
    /// steps it journaled; a finished run is left as it is (exit 1).
    pub(super) async fn cancel(&self, run_id: &str) -> Result<Cancelled, Failure> {
        let run = self.stored(run_id).await?;
        if run.record.is_some() {
            return Err(Failure::failed(format!(
                "run `{run_id}` already finished ({})",
                run.status
            )));
        }
        if let Some(fleet) = self.store.fleet() {
            return self.cancel_shared(fleet.as_ref(), run).await;
        }
        let record = self.cancelled_record(run_id).await?;
        self.store
            .finish(Arc::new(record))
            .await
            .map_err(|e| self.failed(e))?;
        Ok(Cancelled::Recorded { was: run.status })
    }

    /// The final record of a run cancelled here: `cancelled`, with the
    /// steps it journaled.
    async fn cancelled_record(&self, run_id: &str) -> Result<RunRecord, Failure> {
        let (new, entries) = self
            .store
            .replay_source(run_id)
            .await
            .map_err(|e| self.failed(e))?
            .ok_or_else(|| self.no_run(run_id))?;
        let steps: Vec<_> = entries.into_iter().map(|e| e.record).collect();
        let duration_ms = steps
            .iter()
            .map(|s| s.start_ms + s.duration_ms)
            .fold(0.0, f64::max);
        // The record's types are built from their JSON form, as stored.
        serde_json::from_value(json!({
            "run_id": run_id,
            "flow": new.flow,
            "status": RunStatus::Cancelled,
            "started_at": rfc3339(new.accepted_at),
            "duration_ms": duration_ms,
            "error": {
                "step": "",
                "kind": flowhost::ErrorKind::Cancelled,
                "message": CANCELLED_OFFLINE,
                "causes": [format!("{}: {CANCELLED_OFFLINE}", flowhost::ErrorKind::Cancelled)],
            },
            "steps": steps,
        }))
        .map_err(|e| Failure::failed(format!("run `{run_id}`: cannot build its record: {e}")))
    }

    /// Cancels a run of a store servers share: recorded at once when no
    /// server holds it, else the server running it is asked to.
    async fn cancel_shared(
        &self,
        fleet: &dyn flowhost::store::Fleet,
        run: flowhost::store::StoredRun,
    ) -> Result<Cancelled, Failure> {
        let record = self.cancelled_record(&run.run_id).await?;
        if fleet
            .finish_unclaimed(Arc::new(record))
            .await
            .map_err(|e| self.failed(e))?
        {
            return Ok(Cancelled::Recorded { was: run.status });
        }
        fleet
            .request_cancel(&run.run_id)
            .await
            .map_err(|e| self.failed(e))?;
        Ok(Cancelled::Cancelling { was: run.status })
    }

    /// Accepts a new run of the same flow with the same input, derived from
    /// `run_id`; a server starting on the store runs it. Returns its id.
    pub(super) async fn rerun(&self, run_id: &str) -> Result<String, Failure> {
        let (source, _) = self
            .store
            .replay_source(run_id)
            .await
            .map_err(|e| self.failed(e))?
            .ok_or_else(|| self.no_run(run_id))?;
        let new_id = flowhost::executor::new_run_id();
        let new = derived(source, &new_id, run_id)?;
        self.store
            .accept(vec![new])
            .await
            .map_err(|e| self.failed(e))?;
        Ok(new_id)
    }

    fn no_run(&self, run_id: &str) -> Failure {
        Failure::usage(format!(
            "{}: no run `{run_id}` (runs are kept within the store's retention)",
            self.url
        ))
    }
}

/// A run accepted as `run_id`, a rerun of `source` (whose id is `from`):
/// its flow and input, accepted now, without an idempotency key. Its flow
/// and plugin versions are left unset: it runs on the ones the server has
/// loaded when it starts, as a rerun through the API does.
fn derived(source: NewRun, run_id: &str, from: &str) -> Result<NewRun, Failure> {
    let mut value = serde_json::to_value(&source)
        .map_err(|e| Failure::failed(format!("run `{from}`: cannot read its input: {e}")))?;
    value["run_id"] = json!(run_id);
    value["flow_version"] = json!("");
    value["plugins"] = json!({});
    value["accepted_at"] = json!(unix_ms(SystemTime::now()));
    value["idempotency_key"] = json!(null);
    value["derived_from"] = json!({"run_id": from, "step": null});
    serde_json::from_value(value)
        .map_err(|e| Failure::failed(format!("run `{from}`: cannot build its rerun: {e}")))
}

/// Milliseconds since the Unix epoch, as the store keeps times.
pub(crate) fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_cursors_it_writes() {
        let c: Cursor = "1712000000123.3f2a-b".parse().unwrap();
        assert_eq!(
            (c.accepted_ms, c.run_id.as_str()),
            (1712000000123, "3f2a-b")
        );
        assert_eq!(c.to_string(), "1712000000123.3f2a-b");
        assert!("x.y".parse::<Cursor>().is_err());
        assert!("12.".parse::<Cursor>().is_err());
        assert!("12".parse::<Cursor>().is_err());
    }
}
