//! `flowhost run FLOW --store URL`: a one-shot run recorded in a store as a
//! server records its runs: accepted before it starts, its steps journaled
//! as they complete, its record stored when it ends. Were the command
//! killed mid-run, a server starting on the store would resume it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use flowhost::executor::{RunJournal, RunRecord};
use flowhost::flow::Flow;
use flowhost::store::{NewRun, Store, StoreError, StoreUrl};
use flowhost::{PluginSet, RunInput};
use serde_json::json;

use super::store::unix_ms;
use crate::cli::Failure;

/// A run being recorded in a store.
pub(crate) struct Recording {
    store: Arc<dyn Store>,
    url: StoreUrl,
    run_id: String,
    journal: Arc<RunJournal>,
}

/// What the run is: its flow, plugins and input.
pub(crate) struct Run<'a> {
    pub(crate) flow: &'a Flow,
    pub(crate) plugins: &'a PluginSet,
    pub(crate) input: &'a RunInput,
}

/// Opens the store at `url` (created when missing), keeps a copy of the
/// flow's and plugins' versions, accepts the run and marks it started.
pub(crate) async fn begin(url: &StoreUrl, run: Run<'_>) -> Result<Recording, Failure> {
    let StoreUrl::Sqlite(_) = url else {
        return Err(Failure::usage(format!(
            "--store {url}: a memory store would be lost when this command exits; use --store sqlite:PATH"
        )));
    };
    let store = flowhost::store::open(url, &Default::default())
        .await
        .map_err(|e| match e {
            StoreError::Locked { path } => Failure::usage(format!(
                "{path}: a server runs on this store; submit the run to it (POST /flows/{}/runs), or choose another --store",
                run.flow.name()
            )),
            e => Failure::usage(format!("--store {url}: {e}")),
        })?;
    let failed = |e: StoreError| Failure::failed(format!("{url}: the run cannot be recorded: {e}"));
    let plugins = versions(&store, &run).await.map_err(failed)?;
    let run_id = flowhost::executor::new_run_id();
    let now = SystemTime::now();
    // The store's types are built from their JSON form, as stored.
    let new: NewRun = serde_json::from_value(json!({
        "run_id": run_id,
        "flow": run.flow.name(),
        "flow_version": run.flow.hash(),
        "plugins": plugins,
        "input": serde_json::from_str::<&serde_json::value::RawValue>(run.input.get())
            .map_err(|e| Failure::usage(format!("--input: {e}")))?,
        "accepted_at": unix_ms(now),
        "idempotency_key": null,
        "derived_from": null,
    }))
    .map_err(|e| Failure::failed(format!("{url}: the run cannot be recorded: {e}")))?;
    store.accept(vec![new]).await.map_err(failed)?;
    store.started(&run_id, now).await.map_err(failed)?;
    Ok(Recording {
        journal: Arc::new(RunJournal::new(store.clone(), &run_id, vec![])),
        store,
        url: url.clone(),
        run_id,
    })
}

impl Recording {
    /// The run's id.
    pub(crate) fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Where the run's steps keep key-value state: the store's.
    pub(crate) fn kv(&self) -> Arc<dyn flowhost::kv::KvStore> {
        self.store.kv()
    }

    /// The journal the run writes its steps' results to.
    pub(crate) fn journal(&self) -> Arc<RunJournal> {
        self.journal.clone()
    }

    /// Stores the run's final record, queued after its journal entries, and
    /// waits for both.
    pub(crate) async fn finish(self, record: RunRecord) -> Result<(), String> {
        let (stored, flushed) =
            tokio::join!(self.store.finish(Arc::new(record)), self.journal.flush());
        stored.map_err(|e| format!("the run's record could not be stored in {}: {e}", self.url))?;
        flushed.map_err(|e| format!("{}: {e}", self.url))
    }
}

/// Keeps the flow's text and every plugin's bytes in the store, under their
/// hashes (a plugin only when its file still holds the version loaded);
/// returns the plugins' versions (name → hash).
async fn versions(
    store: &Arc<dyn Store>,
    run: &Run<'_>,
) -> Result<BTreeMap<String, String>, StoreError> {
    let text: Arc<[u8]> = Arc::from(run.flow.source().as_bytes());
    store.put_blob(run.flow.hash(), text).await?;
    let mut plugins = BTreeMap::new();
    for name in run.flow.plugin_names() {
        let Some(plugin) = run.plugins.get(name) else {
            continue;
        };
        if let Some(bytes) = plugin.unchanged_bytes().await {
            store.put_blob(plugin.hash(), bytes.into()).await?;
        }
        plugins.insert(name.to_string(), plugin.hash().to_string());
    }
    Ok(plugins)
}
