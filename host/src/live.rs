//! Live registries: a plugins folder ([`LivePlugins`]) or flow files
//! ([`LiveFlows`]) that hot-reload while the host serves.
//!
//! # How a change flows in
//!
//! A `notify` watcher, debounced (default 100 ms), wakes one worker task per
//! registry. The worker *reconciles*: it scans the folder (recursively; hidden
//! files and folders and `target/` build folders are skipped), compares each
//! file's signature (path, size, mtime, inode) with the one it last settled,
//! and for each changed file:
//!
//! 1. **settles** it: the signature must be the same after `settle` (default
//!    50 ms) and again after the file is read, else it is still being written
//!    and is retried after the debounce;
//! 2. skips it when its content hash is the one already serving;
//! 3. loads it: for a plugin, type-checked against the `step` world and
//!    compiled off the async runtime ([`Host::load_bytes`]); for a flow,
//!    parsed and validated ([`parse_flow`]);
//! 4. on success, swaps a new snapshot in atomically (`ArcSwap`): calls and
//!    runs already holding the old snapshot finish on it, new ones get the
//!    new version;
//! 5. on failure, keeps the last good version serving. A file modified less
//!    than `quiet` ago (default 1 s) may still be mid-copy, so it is retried
//!    silently; a file that is quiet and still broken is reported (log, event,
//!    [`LivePlugins::statuses`]) until it is fixed.
//!
//! A file that disappears is removed from the next snapshot (its name is
//! remembered, so lookups say "(removed)"). A slow poll (default every 2 s)
//! reconciles too, catching changes to symlink targets outside the folder and
//! lost events.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use futures::future::BoxFuture;
use notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, broadcast, mpsc};

use crate::cache::hex;
use crate::flow::{Flow, FlowError, parse_flow};
use crate::host::Host;
use crate::plugin::{Plugin, plugin_name};
use crate::registry::PluginSet;

/// Timing of a live registry.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Quiet time after a file event before reacting to it. Default: 100 ms.
    pub debounce: Duration,
    /// A changed file must keep its size and mtime for this long before it
    /// is read. Default: 50 ms.
    pub settle: Duration,
    /// A file that fails to load and was modified less than this long ago is
    /// retried rather than reported (it may be half-copied). Default: 1 s.
    pub quiet: Duration,
    /// Reconcile this often even without events (symlink targets outside
    /// the folder, lost events); `None` for never. Default: 2 s.
    pub poll: Option<Duration>,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            debounce: Duration::from_millis(100),
            settle: Duration::from_millis(50),
            quiet: Duration::from_secs(1),
            poll: Some(Duration::from_secs(2)),
        }
    }
}

/// A live registry could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The folder (or file) could not be read.
    #[error("{}: cannot read it: {message}", .path.display())]
    Read {
        /// The folder or file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The file watcher could not be started.
    #[error("{}: cannot watch it: {message}", .path.display())]
    Watch {
        /// The folder.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

/// What a live registry holds under one name: the version serving, if any,
/// and the current error, if any.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EntryStatus {
    /// The name (the file stem).
    pub name: String,
    /// The file.
    pub path: PathBuf,
    /// The version counter of the version serving (1, 2, 3... per name).
    pub version: Option<u64>,
    /// SHA-256 of the serving version's file, in hex.
    pub hash: Option<String>,
    /// Size of the serving version's file in bytes.
    pub size: Option<u64>,
    /// How long loading the serving version took (compiling, for a plugin).
    pub load_ms: Option<f64>,
    /// Whether the serving version came from the compile cache.
    pub cached: bool,
    /// When the serving version was loaded (RFC 3339).
    pub loaded_at: Option<String>,
    /// Why the file on disk is not serving, naming the file; `None` when it is.
    pub error: Option<String>,
}

/// What kind of file a [`ReloadEvent`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Watched {
    /// A plugin (`.wasm`).
    Plugin,
    /// A flow file.
    Flow,
}

/// One change a live registry made or refused.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReloadEvent {
    /// Plugin or flow.
    pub what: Watched,
    /// The name.
    pub name: String,
    /// The file.
    pub path: PathBuf,
    /// What happened.
    pub outcome: ReloadOutcome,
}

/// What happened to a watched file.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum ReloadOutcome {
    /// A new version is serving.
    Loaded {
        /// Its version counter.
        version: u64,
        /// SHA-256 of the file, in hex.
        hash: String,
        /// How long loading took.
        #[serde(with = "humantime_serde")]
        load_time: Duration,
        /// Whether the compile cache served it.
        cached: bool,
    },
    /// The file is broken; the last good version (if any) keeps serving.
    Failed {
        /// Why, naming the file.
        error: String,
    },
    /// The file was removed; so was its name from new snapshots.
    Removed,
}

impl std::fmt::Display for ReloadEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.what {
            Watched::Plugin => "plugin",
            Watched::Flow => "flow",
        };
        match &self.outcome {
            ReloadOutcome::Loaded {
                version,
                hash,
                load_time,
                cached,
            } => write!(
                f,
                "{what} `{}` v{version} ({}) loaded in {:.1} ms{}",
                self.name,
                &hash[..12.min(hash.len())],
                load_time.as_secs_f64() * 1e3,
                if *cached {
                    " from the compile cache"
                } else {
                    ""
                }
            ),
            ReloadOutcome::Failed { error } => write!(
                f,
                "{what} `{}` rejected, the last good version keeps serving: {error}",
                self.name
            ),
            ReloadOutcome::Removed => {
                write!(
                    f,
                    "{what} `{}` removed ({})",
                    self.name,
                    self.path.display()
                )
            }
        }
    }
}

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

impl LivePlugins {
    /// Loads every plugin under `dir`, then watches it.
    pub async fn open(
        host: &Host,
        dir: impl AsRef<Path>,
        options: WatchOptions,
    ) -> Result<Self, WatchError> {
        let kind = PluginKind { host: host.clone() };
        let core = Core::start(kind, Root::Dir(dir.as_ref().to_path_buf()), options, true).await?;
        Ok(LivePlugins { core })
    }

    /// Loads every plugin under `dir` once, without watching (for listings).
    pub async fn load(host: &Host, dir: impl AsRef<Path>) -> Result<Self, WatchError> {
        let kind = PluginKind { host: host.clone() };
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

    /// Every name seen, with its serving version and current error, by name.
    pub async fn statuses(&self) -> Vec<EntryStatus> {
        self.core.statuses().await
    }

    /// Reload events from now on (loaded, rejected, removed). A receiver that
    /// falls behind loses the oldest events.
    pub fn subscribe(&self) -> broadcast::Receiver<ReloadEvent> {
        self.core.events.subscribe()
    }

    /// Reconciles now, without waiting for an event.
    pub async fn rescan(&self) {
        self.core.reconcile(false).await;
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        self.core.root.path()
    }
}

/// Flow files as a live registry: a folder of `.yaml`, `.yml` and `.json`
/// flows (by file stem), or one flow file. Each is validated before it
/// replaces the previous definition; a run holds the `Arc<Flow>` it started
/// with.
#[derive(Clone)]
pub struct LiveFlows {
    core: Arc<Core<FlowKind>>,
}

impl LiveFlows {
    /// Loads the flows in `path` (a folder, or one flow file), then watches it.
    pub async fn open(path: impl AsRef<Path>, options: WatchOptions) -> Result<Self, WatchError> {
        let path = path.as_ref();
        let root = match tokio::fs::metadata(path).await {
            Ok(m) if m.is_dir() => Root::Dir(path.to_path_buf()),
            Ok(_) => Root::File(path.to_path_buf()),
            Err(e) => {
                return Err(WatchError::Read {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                });
            }
        };
        let core = Core::start(FlowKind, root, options, true).await?;
        Ok(LiveFlows { core })
    }

    /// The flow from the file with stem `name`, as it is now.
    pub fn get(&self, name: &str) -> Option<Arc<Flow>> {
        self.core.snap.load().flows.get(name).cloned()
    }

    /// Every flow, by file stem.
    pub fn all(&self) -> BTreeMap<String, Arc<Flow>> {
        self.core.snap.load().flows.clone()
    }

    /// Every name seen, with its serving version and current error.
    pub async fn statuses(&self) -> Vec<EntryStatus> {
        self.core.statuses().await
    }

    /// Reload events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<ReloadEvent> {
        self.core.events.subscribe()
    }

    /// Reconciles now, without waiting for an event.
    pub async fn rescan(&self) {
        self.core.reconcile(false).await;
    }
}

// ---------------------------------------------------------------------------
// What differs between plugins and flows.

trait Kind: Send + Sync + 'static {
    type Item: Clone + Send + Sync + 'static;
    type Snap: Default + Send + Sync + 'static;
    const WHAT: Watched;
    fn matches(&self, path: &Path) -> bool;
    fn load(&self, path: PathBuf, bytes: Vec<u8>)
    -> BoxFuture<'static, Result<Self::Item, String>>;
    fn cached(_item: &Self::Item) -> bool {
        false
    }
    fn with_version(item: Self::Item, _version: u64) -> Self::Item {
        item
    }
    fn publish<'a>(
        items: impl Iterator<Item = (&'a String, &'a Self::Item)>,
        removed: &BTreeSet<String>,
    ) -> Self::Snap;
}

struct PluginKind {
    host: Host,
}

impl Kind for PluginKind {
    type Item = Plugin;
    type Snap = PluginSet;
    const WHAT: Watched = Watched::Plugin;

    fn matches(&self, path: &Path) -> bool {
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

struct FlowKind;

#[derive(Default)]
struct FlowSnap {
    flows: BTreeMap<String, Arc<Flow>>,
}

impl Kind for FlowKind {
    type Item = Arc<Flow>;
    type Snap = FlowSnap;
    const WHAT: Watched = Watched::Flow;

    fn matches(&self, path: &Path) -> bool {
        path.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "yaml" | "yml" | "json"))
    }

    fn load(&self, path: PathBuf, bytes: Vec<u8>) -> BoxFuture<'static, Result<Arc<Flow>, String>> {
        Box::pin(async move {
            let parsed = tokio::task::spawn_blocking(move || {
                let text = String::from_utf8(bytes)
                    .map_err(|_| format!("{}: not UTF-8 text", path.display()))?;
                parse_flow(&path, &text, None).map_err(|errors| {
                    let lines: Vec<_> = errors.iter().map(FlowError::to_string).collect();
                    lines.join("\n")
                })
            })
            .await
            .map_err(|e| format!("flow parser task failed: {e}"))?;
            parsed.map(Arc::new)
        })
    }

    fn publish<'a>(
        items: impl Iterator<Item = (&'a String, &'a Arc<Flow>)>,
        _removed: &BTreeSet<String>,
    ) -> FlowSnap {
        FlowSnap {
            flows: items.map(|(n, f)| (n.clone(), f.clone())).collect(),
        }
    }
}

// ---------------------------------------------------------------------------
// The shared machinery.

/// What is watched: a folder (recursively) or one file.
enum Root {
    Dir(PathBuf),
    File(PathBuf),
}

impl Root {
    fn path(&self) -> &Path {
        match self {
            Root::Dir(p) | Root::File(p) => p,
        }
    }
}

/// A file's identity and state, as far as `stat` tells.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sig {
    path: PathBuf,
    len: u64,
    mtime: Option<SystemTime>,
    ino: u64,
}

async fn stat(path: &Path) -> std::io::Result<Sig> {
    // `metadata` follows symlinks: a symlinked plugin is its target's content.
    let meta = tokio::fs::metadata(path).await?;
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let ino = 0;
    Ok(Sig {
        path: path.to_path_buf(),
        len: meta.len(),
        mtime: meta.modified().ok(),
        ino,
    })
}

struct Serving<T> {
    item: T,
    version: u64,
    hash: String,
    size: u64,
    load_time: Duration,
    cached: bool,
    loaded_at: SystemTime,
}

struct Slot<T> {
    path: PathBuf,
    /// The signature last settled (loaded, or reported broken); `None` while
    /// a retry is due.
    sig: Option<Sig>,
    serving: Option<Serving<T>>,
    error: Option<String>,
    /// Silent retries of a failing, recently modified file.
    tries: u32,
}

struct State<T> {
    slots: BTreeMap<String, Slot<T>>,
    removed: BTreeSet<String>,
    counters: HashMap<String, u64>,
    retry_at: Option<Instant>,
}

struct Core<K: Kind> {
    kind: K,
    root: Root,
    options: WatchOptions,
    snap: ArcSwap<K::Snap>,
    state: Mutex<State<K::Item>>,
    events: broadcast::Sender<ReloadEvent>,
    watcher: std::sync::Mutex<Option<Debouncer<notify::RecommendedWatcher, RecommendedCache>>>,
}

/// What examining one changed file found.
enum Outcome<T> {
    /// Same content as serving: nothing to swap.
    Same(Sig),
    Loaded {
        item: T,
        hash: String,
        size: u64,
        load_time: Duration,
        sig: Sig,
    },
    Failed(String, Sig),
    /// Not settled (or failing while fresh): look again at this instant.
    Retry(Instant),
}

/// Silent retries of a failing file before it is reported however fresh it is.
const MAX_TRIES: u32 = 20;

impl<K: Kind> Core<K> {
    async fn start(
        kind: K,
        root: Root,
        options: WatchOptions,
        watch: bool,
    ) -> Result<Arc<Self>, WatchError> {
        if let Err(e) = tokio::fs::metadata(root.path()).await {
            return Err(WatchError::Read {
                path: root.path().to_path_buf(),
                message: e.to_string(),
            });
        }
        let core = Arc::new(Core {
            kind,
            root,
            options,
            snap: ArcSwap::from_pointee(K::Snap::default()),
            state: Mutex::new(State {
                slots: BTreeMap::new(),
                removed: BTreeSet::new(),
                counters: HashMap::new(),
                retry_at: None,
            }),
            events: broadcast::channel(1024).0,
            watcher: std::sync::Mutex::new(None),
        });
        // Watch before the first scan, so nothing written in between is missed.
        let wake = if watch { Some(core.watch()?) } else { None };
        core.reconcile(true).await;
        if !watch {
            // Files still settling: wait for them a little, then take what is there.
            let give_up = Instant::now() + Duration::from_secs(3);
            while Instant::now() < give_up {
                let Some(at) = core.state.lock().await.retry_at else {
                    break;
                };
                tokio::time::sleep_until(at.into()).await;
                core.reconcile(true).await;
            }
        }
        if let Some(wake) = wake {
            tokio::spawn(worker(Arc::downgrade(&core), wake));
        }
        Ok(core)
    }

    /// Starts the debounced watcher; it sends one message per relevant batch.
    fn watch(&self) -> Result<mpsc::UnboundedReceiver<()>, WatchError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let fail = |e: notify::Error| WatchError::Watch {
            path: self.root.path().to_path_buf(),
            message: e.to_string(),
        };
        let handler = move |result: DebounceEventResult| {
            let relevant = match &result {
                Ok(events) => events.iter().any(|e| !e.kind.is_access()),
                Err(errors) => {
                    for e in errors {
                        tracing::warn!("file watcher: {e}");
                    }
                    true
                }
            };
            if relevant {
                let _ = tx.send(());
            }
        };
        let mut debouncer = new_debouncer(self.options.debounce, None, handler).map_err(fail)?;
        match &self.root {
            Root::Dir(dir) => debouncer.watch(dir, RecursiveMode::Recursive),
            Root::File(file) => {
                let parent = file
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                debouncer.watch(parent, RecursiveMode::NonRecursive)
            }
        }
        .map_err(fail)?;
        *self.watcher.lock().unwrap_or_else(|e| e.into_inner()) = Some(debouncer);
        Ok(rx)
    }

    /// The files to serve, by name; names with two files get an error instead.
    async fn scan(&self) -> std::io::Result<(BTreeMap<String, PathBuf>, BTreeMap<String, String>)> {
        let root = match &self.root {
            Root::File(f) => {
                let mut files = BTreeMap::new();
                if tokio::fs::try_exists(f).await.unwrap_or(false) {
                    files.insert(plugin_name(f), f.clone());
                }
                return Ok((files, BTreeMap::new()));
            }
            Root::Dir(d) => d.clone(),
        };
        let matches = |p: &Path| self.kind.matches(p);
        let mut files: BTreeMap<String, PathBuf> = BTreeMap::new();
        let mut dups: BTreeMap<String, String> = BTreeMap::new();
        let mut pending = vec![root.clone()];
        while let Some(dir) = pending.pop() {
            let mut entries = match tokio::fs::read_dir(&dir).await {
                Ok(e) => e,
                Err(e) if dir == root => return Err(e),
                Err(_) => continue, // a subfolder removed while scanning
            };
            while let Ok(Some(entry)) = entries.next_entry().await {
                let path = entry.path();
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.starts_with('.') {
                    continue;
                }
                // `metadata` follows symlinks; only real folders are descended
                // into (no symlink loops).
                let Ok(ft) = entry.file_type().await else {
                    continue;
                };
                if ft.is_dir() {
                    if name != "target" {
                        pending.push(path);
                    }
                } else if matches(&path) {
                    let stem = plugin_name(&path);
                    if let Some(other) = files.get(&stem) {
                        let (a, b) = if other < &path {
                            (other.clone(), path.clone())
                        } else {
                            (path.clone(), other.clone())
                        };
                        dups.insert(
                            stem.clone(),
                            format!(
                                "two files are named `{stem}`: {} and {}",
                                a.display(),
                                b.display()
                            ),
                        );
                    } else {
                        files.insert(stem, path);
                    }
                }
            }
        }
        for name in dups.keys() {
            files.remove(name);
        }
        Ok((files, dups))
    }

    /// Brings the snapshot in line with the folder. `initial`: report broken
    /// files at once rather than waiting for them to go quiet.
    async fn reconcile(&self, initial: bool) {
        let mut state = self.state.lock().await;
        state.retry_at = None;
        let (files, dups) = match self.scan().await {
            Ok(found) => found,
            Err(e) => {
                // The folder itself is unreadable (moved away, a transient
                // error): keep serving what we have, and look again later.
                tracing::warn!(dir = %self.root.path().display(), "cannot scan: {e}");
                state.retry_at = Some(Instant::now() + self.options.debounce * 4);
                return;
            }
        };
        let mut changed = false;
        let mut events = Vec::new();

        // Names with two files: an error; the last good version keeps serving.
        for (name, message) in &dups {
            let slot = state.slots.entry(name.clone()).or_insert_with(|| Slot {
                path: self.root.path().to_path_buf(),
                sig: None,
                serving: None,
                error: None,
                tries: 0,
            });
            if slot.error.as_ref() != Some(message) {
                slot.error = Some(message.clone());
                slot.sig = None;
                events.push(self.event(
                    name,
                    &slot.path,
                    ReloadOutcome::Failed {
                        error: message.clone(),
                    },
                ));
            }
        }

        // Which files changed since they last settled.
        let mut candidates = Vec::new();
        for (name, path) in &files {
            let sig = match stat(path).await {
                Ok(sig) => sig,
                Err(e) => {
                    // A dangling symlink, or gone since the scan.
                    let error = format!("{}: cannot read the file: {e}", path.display());
                    self.fail_unsettled(&mut state, name, path, error, &mut events);
                    continue;
                }
            };
            let settled = state.slots.get(name).and_then(|s| s.sig.as_ref());
            if settled != Some(&sig) {
                candidates.push((name.clone(), sig));
            }
        }

        // Gone: removed, unless it reappears within the settle time
        // (delete-then-create).
        let gone: Vec<String> = state
            .slots
            .keys()
            .filter(|n| !files.contains_key(*n) && !dups.contains_key(*n))
            .cloned()
            .collect();

        // The first load does not wait: the stat after reading still catches
        // a file written to while it was read.
        if !initial && (!candidates.is_empty() || !gone.is_empty()) {
            tokio::time::sleep(self.options.settle).await;
        }

        for name in gone {
            let path = state.slots[&name].path.clone();
            if tokio::fs::try_exists(&path).await.unwrap_or(false) {
                self.retry(&mut state, Instant::now());
                continue;
            }
            if let Some(slot) = state.slots.remove(&name)
                && slot.serving.is_some()
            {
                state.removed.insert(name.clone());
                changed = true;
            }
            tracing::info!(file = %path.display(), "{} `{name}` removed", what::<K>());
            events.push(self.event(&name, &path, ReloadOutcome::Removed));
        }

        let examined = futures::future::join_all(candidates.into_iter().map(|(name, sig)| {
            let serving = state
                .slots
                .get(&name)
                .and_then(|s| s.serving.as_ref())
                .map(|s| s.hash.clone());
            let tries = state.slots.get(&name).map_or(0, |s| s.tries);
            async move {
                let outcome = self.examine(sig, serving, initial, tries).await;
                (name, outcome)
            }
        }))
        .await;

        for (name, outcome) in examined {
            match outcome {
                Outcome::Same(sig) => {
                    let slot = self.slot(&mut state, &name, &sig.path);
                    slot.sig = Some(sig);
                    slot.error = None;
                    slot.tries = 0;
                }
                Outcome::Loaded {
                    item,
                    hash,
                    size,
                    load_time,
                    sig,
                } => {
                    let counter = state.counters.entry(name.clone()).or_insert(0);
                    *counter += 1;
                    let version = *counter;
                    let cached = K::cached(&item);
                    let path = sig.path.clone();
                    let slot = self.slot(&mut state, &name, &path);
                    slot.serving = Some(Serving {
                        item: K::with_version(item, version),
                        version,
                        hash: hash.clone(),
                        size,
                        load_time,
                        cached,
                        loaded_at: SystemTime::now(),
                    });
                    slot.sig = Some(sig);
                    slot.error = None;
                    slot.tries = 0;
                    state.removed.remove(&name);
                    changed = true;
                    let outcome = ReloadOutcome::Loaded {
                        version,
                        hash,
                        load_time,
                        cached,
                    };
                    let event = self.event(&name, &path, outcome);
                    tracing::info!("{event}");
                    events.push(event);
                }
                Outcome::Failed(error, sig) => {
                    let path = sig.path.clone();
                    let slot = self.slot(&mut state, &name, &path);
                    slot.sig = Some(sig);
                    slot.tries = 0;
                    let new = slot.error.as_ref() != Some(&error);
                    slot.error = Some(error.clone());
                    if new {
                        let event = self.event(&name, &path, ReloadOutcome::Failed { error });
                        tracing::error!("{event}");
                        events.push(event);
                    }
                }
                Outcome::Retry(at) => {
                    // A file seen for the first time has no slot yet: nothing
                    // to count, just look again.
                    if let Some(slot) = state.slots.get_mut(&name) {
                        slot.tries += 1;
                    }
                    self.retry(&mut state, at);
                }
            }
        }

        if changed {
            let items = state
                .slots
                .iter()
                .filter_map(|(n, s)| s.serving.as_ref().map(|v| (n, &v.item)));
            let snap = K::publish(items, &state.removed);
            self.snap.store(Arc::new(snap));
        }
        // Sent under the lock: whoever sees a status or snapshot change can
        // already receive its event.
        for event in events {
            let _ = self.events.send(event);
        }
        drop(state);
    }

    /// Settles, reads and loads one changed file.
    async fn examine(
        &self,
        sig: Sig,
        serving: Option<String>,
        initial: bool,
        tries: u32,
    ) -> Outcome<K::Item> {
        let later = Instant::now() + self.options.debounce;
        // Still changing after the settle interval: look again later.
        match stat(&sig.path).await {
            Ok(now) if now == sig => {}
            _ => return Outcome::Retry(later),
        }
        let bytes = match tokio::fs::read(&sig.path).await {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Outcome::Retry(later),
            Err(e) => {
                let error = format!("{}: cannot read the file: {e}", sig.path.display());
                return Outcome::Failed(error, sig);
            }
        };
        // Written to while we read it: what we have may be torn.
        match stat(&sig.path).await {
            Ok(now) if now == sig && bytes.len() as u64 == sig.len => {}
            _ => return Outcome::Retry(later),
        }
        let hash = hex(&Sha256::digest(&bytes));
        if serving.as_ref() == Some(&hash) {
            return Outcome::Same(sig);
        }
        let size = bytes.len() as u64;
        let started = Instant::now();
        match self.kind.load(sig.path.clone(), bytes).await {
            Ok(item) => Outcome::Loaded {
                item,
                hash,
                size,
                load_time: started.elapsed(),
                sig,
            },
            Err(error) => {
                let age = sig
                    .mtime
                    .and_then(|m| SystemTime::now().duration_since(m).ok())
                    .unwrap_or(Duration::ZERO);
                if !initial && age < self.options.quiet && tries < MAX_TRIES {
                    tracing::debug!(file = %sig.path.display(), "not loadable yet, retrying: {error}");
                    let wait = (self.options.quiet - age).max(self.options.debounce);
                    Outcome::Retry(Instant::now() + wait)
                } else {
                    Outcome::Failed(error, sig)
                }
            }
        }
    }

    fn slot<'s>(
        &self,
        state: &'s mut State<K::Item>,
        name: &str,
        path: &Path,
    ) -> &'s mut Slot<K::Item> {
        let slot = state.slots.entry(name.to_string()).or_insert_with(|| Slot {
            path: path.to_path_buf(),
            sig: None,
            serving: None,
            error: None,
            tries: 0,
        });
        slot.path = path.to_path_buf();
        slot
    }

    /// A file that cannot even be stat'ed: report it (once), keep serving.
    fn fail_unsettled(
        &self,
        state: &mut State<K::Item>,
        name: &str,
        path: &Path,
        error: String,
        events: &mut Vec<ReloadEvent>,
    ) {
        let slot = self.slot(state, name, path);
        slot.sig = None;
        if slot.error.as_ref() != Some(&error) {
            slot.error = Some(error.clone());
            let event = self.event(name, path, ReloadOutcome::Failed { error });
            tracing::error!("{event}");
            events.push(event);
        }
    }

    fn retry(&self, state: &mut State<K::Item>, at: Instant) {
        state.retry_at = Some(state.retry_at.map_or(at, |r| r.min(at)));
    }

    fn event(&self, name: &str, path: &Path, outcome: ReloadOutcome) -> ReloadEvent {
        ReloadEvent {
            what: K::WHAT,
            name: name.to_string(),
            path: path.to_path_buf(),
            outcome,
        }
    }

    async fn statuses(&self) -> Vec<EntryStatus> {
        let state = self.state.lock().await;
        state
            .slots
            .iter()
            .map(|(name, slot)| {
                let s = slot.serving.as_ref();
                EntryStatus {
                    name: name.clone(),
                    path: slot.path.clone(),
                    version: s.map(|s| s.version),
                    hash: s.map(|s| s.hash.clone()),
                    size: s.map(|s| s.size),
                    load_ms: s.map(|s| s.load_time.as_secs_f64() * 1e3),
                    cached: s.is_some_and(|s| s.cached),
                    loaded_at: s.map(|s| humantime::format_rfc3339_millis(s.loaded_at).to_string()),
                    error: slot.error.clone(),
                }
            })
            .collect()
    }
}

fn what<K: Kind>() -> &'static str {
    match K::WHAT {
        Watched::Plugin => "plugin",
        Watched::Flow => "flow",
    }
}

/// Reconciles on every watcher batch, at retry times and at the poll
/// interval, until the registry is dropped.
async fn worker<K: Kind>(core: Weak<Core<K>>, mut wake: mpsc::UnboundedReceiver<()>) {
    let poll = match core.upgrade() {
        Some(c) => c.options.poll,
        None => return,
    };
    let mut next_poll = poll.map(|p| Instant::now() + p);
    loop {
        let retry_at = match core.upgrade() {
            Some(c) => c.state.lock().await.retry_at,
            None => return,
        };
        let deadline = [retry_at, next_poll].into_iter().flatten().min();
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            msg = wake.recv() => {
                if msg.is_none() {
                    return;
                }
                while wake.try_recv().is_ok() {}
            }
            () = sleep => {}
        }
        if next_poll.is_some_and(|p| Instant::now() >= p) {
            next_poll = poll.map(|p| Instant::now() + p);
        }
        let Some(core) = core.upgrade() else { return };
        core.reconcile(false).await;
    }
}
