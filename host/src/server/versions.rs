//! Version-pinned runs: a durable store keeps a content-addressed copy of
//! every flow file and plugin a run starts with, and a resumed run gets
//! exactly those back, even if the files changed or went away meanwhile.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::state::State;
use crate::flow::{Flow, parse_flow};
use crate::plugin::Plugin;
use crate::registry::PluginSet;
use crate::store::{NewRun, StoreError};

/// The hashes this process has put in the store already.
#[derive(Default)]
pub(crate) struct Kept(Mutex<HashSet<String>>);

impl Kept {
    fn has(&self, hash: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(hash)
    }

    fn add(&self, hash: &str) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(hash.to_string());
    }
}

impl State {
    /// Puts `flow`'s text and the bytes of `plugins` (name → hash) in a
    /// durable store, each version once. A plugin file changed since it was
    /// loaded cannot be kept: its runs resume on the version loaded then, if
    /// that is still loaded, with a warning.
    pub(super) async fn keep_versions(
        &self,
        flow: &Flow,
        plugins: &BTreeMap<String, String>,
    ) -> Result<(), StoreError> {
        if !self.store.durable() {
            return Ok(());
        }
        let source = &flow.source;
        if !source.hash.is_empty() && !self.kept.has(&source.hash) {
            let bytes: Arc<[u8]> = Arc::from(source.text.as_bytes());
            self.store.put_blob(&source.hash, bytes).await?;
            self.kept.add(&source.hash);
        }
        let snapshot = self.plugins.snapshot();
        for (name, hash) in plugins {
            if self.kept.has(hash) {
                continue;
            }
            let Some(plugin) = snapshot.get(name) else {
                continue;
            };
            match plugin.unchanged_bytes().await {
                Some(bytes) => {
                    self.store.put_blob(hash, bytes.into()).await?;
                    self.kept.add(hash);
                }
                None => tracing::warn!(
                    plugin = %name,
                    file = %plugin.path().display(),
                    "the plugin file changed since it was loaded: its runs cannot be pinned to this version"
                ),
            }
        }
        Ok(())
    }

    /// The flow and plugins a resumed run started with: the loaded ones when
    /// their versions match, else the copies the store kept, each loaded once
    /// for every run that `pins` serves. `None` for the flow when neither
    /// exists (the run fails, saying so).
    pub(super) async fn pinned(
        &self,
        run: &NewRun,
        pins: &mut Pins,
    ) -> (Option<Arc<Flow>>, PluginSet) {
        let loaded = self.flow(&run.flow);
        let flow = match loaded {
            Some(f) if run.flow_version.is_empty() || f.hash() == run.flow_version => Some(f),
            other => match pins.flow(self, run).await {
                Some(f) => Some(f),
                None => {
                    if other.is_some() {
                        tracing::warn!(run = %run.run_id, flow = %run.flow, "the flow's version the run started with is gone: it resumes on the loaded one");
                    }
                    other
                }
            },
        };
        let snapshot = self.plugins.snapshot();
        let mut plugins: BTreeMap<String, Plugin> = snapshot
            .plugins()
            .map(|p| (p.name().to_string(), p.clone()))
            .collect();
        for (name, hash) in &run.plugins {
            if plugins.get(name).is_some_and(|p| p.hash() == hash) {
                continue;
            }
            match pins.plugin(self, name, hash).await {
                Some(p) => {
                    plugins.insert(name.clone(), p);
                }
                None => {
                    tracing::warn!(run = %run.run_id, plugin = %name, version = %hash, "the plugin version the run started with is gone: it resumes on the loaded one")
                }
            }
        }
        (flow, PluginSet::new(plugins.into_values()))
    }

    async fn stored_flow(&self, run: &NewRun) -> Option<Flow> {
        let bytes = self.store.blob(&run.flow_version).await.ok()??;
        let text = String::from_utf8(bytes).ok()?;
        // Where the file was, if a version of it still is: relative grants
        // resolve against its folder.
        let file = match self.flow(&run.flow) {
            Some(f) => f.file.clone(),
            None => Path::new(&run.flow).with_extension("yaml"),
        };
        parse_flow(&file, &text, None)
            .inspect_err(|e| tracing::warn!(run = %run.run_id, errors = e.len(), "the stored flow version does not load"))
            .ok()
    }

    async fn stored_plugin(&self, name: &str, hash: &str) -> Option<Plugin> {
        let bytes = self.store.blob(hash).await.ok()??;
        let file = Path::new(name).with_extension("wasm");
        self.exec
            .host()
            .load_bytes(&file, bytes)
            .await
            .inspect_err(|e| tracing::warn!(plugin = %name, error = %e, "the stored plugin version does not load"))
            .ok()
    }
}

/// The stored versions loaded while resuming, by hash: 10,000 runs of one
/// changed flow parse its old text once, and compile an old plugin once.
#[derive(Default)]
pub(super) struct Pins {
    flows: HashMap<String, Option<Arc<Flow>>>,
    /// By name and hash: a plugin is named by its file.
    plugins: HashMap<(String, String), Option<Plugin>>,
}

impl Pins {
    async fn flow(&mut self, state: &State, run: &NewRun) -> Option<Arc<Flow>> {
        if let Some(f) = self.flows.get(&run.flow_version) {
            return f.clone();
        }
        let f = state.stored_flow(run).await.map(Arc::new);
        self.flows.insert(run.flow_version.clone(), f.clone());
        f
    }

    async fn plugin(&mut self, state: &State, name: &str, hash: &str) -> Option<Plugin> {
        let key = (name.to_string(), hash.to_string());
        if let Some(p) = self.plugins.get(&key) {
            return p.clone();
        }
        let p = state.stored_plugin(name, hash).await;
        self.plugins.insert(key, p.clone());
        p
    }
}
