//! The registry core shared by plugins and flows: per-name state, versions
//! and the snapshot swapped in for new calls and runs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use futures::future::BoxFuture;
use notify_debouncer_full::{Debouncer, RecommendedCache};
use tokio::sync::{Mutex, broadcast};

use super::settle::Sig;
use super::watch::worker;
use super::{EntryStatus, ReloadEvent, ReloadOutcome, WatchError, WatchOptions, Watched};

/// What differs between plugins and flows.
pub(super) trait Kind: Send + Sync + 'static {
    type Item: Clone + Send + Sync + 'static;
    type Snap: Default + Send + Sync + 'static;
    const WHAT: Watched;
    /// The largest file read; a larger one fails without being read whole.
    const MAX_LEN: u64 = u64::MAX;
    fn matches(path: &Path) -> bool;
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

/// What is watched: a folder (recursively) or one file.
pub(super) enum Root {
    Dir(PathBuf),
    File(PathBuf),
}

impl Root {
    pub(super) fn path(&self) -> &Path {
        match self {
            Root::Dir(p) | Root::File(p) => p,
        }
    }
}

/// The version serving under one name.
pub(super) struct Serving<T> {
    pub(super) item: T,
    pub(super) version: u64,
    pub(super) hash: String,
    pub(super) size: u64,
    pub(super) load_time: Duration,
    pub(super) cached: bool,
    pub(super) loaded_at: SystemTime,
}

/// Everything known about one name.
pub(super) struct Slot<T> {
    pub(super) path: PathBuf,
    /// The signature last settled (loaded, or reported broken); `None` while
    /// a retry is due.
    pub(super) sig: Option<Sig>,
    pub(super) serving: Option<Serving<T>>,
    pub(super) error: Option<String>,
    /// Silent retries of a failing, recently modified file.
    pub(super) tries: u32,
}

/// The registry's state, under its lock.
pub(super) struct State<T> {
    pub(super) slots: BTreeMap<String, Slot<T>>,
    pub(super) removed: BTreeSet<String>,
    pub(super) counters: HashMap<String, u64>,
    pub(super) retry_at: Option<Instant>,
}

/// One live registry: what it watches, its state and its snapshot.
pub(super) struct Core<K: Kind> {
    pub(super) kind: K,
    pub(super) root: Root,
    pub(super) options: WatchOptions,
    pub(super) snap: ArcSwap<K::Snap>,
    pub(super) state: Mutex<State<K::Item>>,
    pub(super) events: broadcast::Sender<ReloadEvent>,
    pub(super) watcher:
        std::sync::Mutex<Option<Debouncer<notify::RecommendedWatcher, RecommendedCache>>>,
}

impl<K: Kind> Core<K> {
    pub(super) async fn start(
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

    /// Reload events from now on.
    pub(super) fn subscribe(&self) -> broadcast::Receiver<ReloadEvent> {
        self.events.subscribe()
    }

    /// Reconciles now, without waiting for an event.
    pub(super) async fn rescan(&self) {
        self.reconcile(false).await;
    }

    pub(super) fn slot<'s>(
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
    pub(super) fn fail_unsettled(
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

    pub(super) fn retry(&self, state: &mut State<K::Item>, at: Instant) {
        state.retry_at = Some(state.retry_at.map_or(at, |r| r.min(at)));
    }

    pub(super) fn event(&self, name: &str, path: &Path, outcome: ReloadOutcome) -> ReloadEvent {
        ReloadEvent {
            what: K::WHAT,
            name: name.to_string(),
            path: path.to_path_buf(),
            outcome,
        }
    }

    pub(super) async fn statuses(&self) -> Vec<EntryStatus> {
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

pub(super) fn what<K: Kind>() -> &'static str {
    match K::WHAT {
        Watched::Plugin => "plugin",
        Watched::Flow => "flow",
    }
}
