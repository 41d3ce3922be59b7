//! A plugins folder as a live registry.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::BoxFuture;

use super::core::{Core, shared_methods};
use super::events::Watched;
use super::kind::Kind;
use super::options::{WatchError, WatchOptions};
use super::scan::Root;
use crate::host::Host;
use crate::plugin::Plugin;
use crate::registry::PluginSet;

/// A plugins folder as a live registry: every `.wasm` under it (recursively;
/// a plugin's name is its file stem) is loaded, and changes are picked up
/// while it serves. Cheap to clone; the watcher stops when the last clone is
/// dropped.
///
/// ```no_run
/// # async fn demo() -> anyhow::Result<()> {
/// let host = flowhost::Host::new(flowhost::Config::default())?;
/// let live = flowhost::LivePlugins::open(&host, "plugins/dist", Default::default()).await?;
/// let plugins = live.snapshot(); // one version of each plugin, for one run or call
/// let echo = plugins.get("echo").ok_or_else(|| anyhow::anyhow!(plugins.not_found_message("echo")))?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct LivePlugins {
    core: Arc<Core<PluginKind>>,
}

impl std::fmt::Debug for LivePlugins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LivePlugins").finish_non_exhaustive()
    }
}

impl LivePlugins {
    /// Loads every plugin under `dir`, then watches it.
    pub async fn open(
        host: &Host,
        dir: impl AsRef<Path>,
        options: WatchOptions,
    ) -> Result<Self, WatchError> {
        let kind = PluginKind {
            host: host.clone(),
            gate: None,
        };
        let core = Core::start(kind, Root::Dir(dir.as_ref().to_path_buf()), options, true).await?;
        Ok(LivePlugins { core })
    }

    /// [`LivePlugins::open`], with every swap of a serving plugin for a
    /// changed file first passing `gate`: a refused one leaves the old
    /// version serving, and the refusal is the plugin's error.
    pub(crate) async fn open_gated(
        host: &Host,
        dir: impl AsRef<Path>,
        options: WatchOptions,
        gate: Arc<dyn SwapGate>,
    ) -> Result<Self, WatchError> {
        let kind = PluginKind {
            host: host.clone(),
            gate: Some(gate),
        };
        let core = Core::start(kind, Root::Dir(dir.as_ref().to_path_buf()), options, true).await?;
        Ok(LivePlugins { core })
    }

    /// Loads every plugin under `dir` once, without watching (for listings).
    pub async fn load(host: &Host, dir: impl AsRef<Path>) -> Result<Self, WatchError> {
        let kind = PluginKind {
            host: host.clone(),
            gate: None,
        };
        let root = Root::Dir(dir.as_ref().to_path_buf());
        let core = Core::start(kind, root, WatchOptions::default(), false).await?;
        Ok(LivePlugins { core })
    }

    /// The current plugins: an immutable snapshot. Use one snapshot for
    /// everything that must see one version of each plugin (a run of a flow).
    pub fn snapshot(&self) -> PluginSet {
        PluginSet::clone(&self.core.snap.load())
    }

    /// The plugin called `name` right now.
    pub fn get(&self, name: &str) -> Option<Plugin> {
        self.core.snap.load().get(name).cloned()
    }

    shared_methods!();

    /// The folder.
    pub fn dir(&self) -> &Path {
        self.core.root.path()
    }
}

/// What a changed plugin must pass before it replaces the version serving,
/// supplied by whoever serves (the server's replay gate): the registry knows
/// nothing of what it checks.
pub(crate) trait SwapGate: Send + Sync + 'static {
    /// `Err(reason)` refuses the swap of `candidate` for the version serving
    /// under its name.
    fn check(&self, candidate: Plugin) -> BoxFuture<'static, Result<(), String>>;
}

/// Plugins: `.wasm` files, type-checked and compiled by the host.
struct PluginKind {
    host: Host,
    gate: Option<Arc<dyn SwapGate>>,
}

impl Kind for PluginKind {
    type Item = Plugin;
    type Snap = PluginSet;
    const WHAT: Watched = Watched::Plugin;
    const MAX_LEN: u64 = crate::plugin::MAX_PLUGIN_FILE_BYTES;

    fn matches(path: &Path) -> bool {
        path.extension().is_some_and(|e| e == "wasm")
    }

    fn load(&self, path: PathBuf, bytes: Vec<u8>) -> BoxFuture<'static, Result<Plugin, String>> {
        let host = self.host.clone();
        Box::pin(async move {
            host.load_bytes(&path, bytes)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn vet(&self, item: &Plugin) -> Option<BoxFuture<'static, Result<(), String>>> {
        let gate = self.gate.as_ref()?;
        Some(gate.check(item.clone()))
    }

    fn cached(item: &Plugin) -> bool {
        item.cached()
    }

    fn with_version(item: Plugin, version: u64) -> Plugin {
        item.with_version(version)
    }

    fn publish<'a>(
        items: impl Iterator<Item = (&'a String, &'a Plugin)>,
        removed: &BTreeSet<String>,
    ) -> PluginSet {
        PluginSet::with_removed(items.map(|(_, p)| p.clone()), removed.iter().cloned())
    }
}
