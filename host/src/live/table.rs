//! Everything a registry knows per name, and the changes a reconcile makes
//! to it. Only reads and quick writes: the table sits under a lock that
//! status requests take, so nothing slow happens here.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use super::events::{EntryStatus, ReloadEvent, ReloadOutcome};
use super::kind::Kind;
use super::scan::Sig;
use super::settle::{Loaded, Outcome};

/// The version serving under one name.
struct Serving<T> {
    item: T,
    version: u64,
    hash: String,
    size: u64,
    load_time: Duration,
    cached: bool,
    loaded_at: SystemTime,
}

/// Everything known about one name.
pub(super) struct Slot<T> {
    pub(super) path: PathBuf,
    /// The signature last settled (loaded, or reported broken); `None` while
    /// a retry is due.
    pub(super) sig: Option<Sig>,
    serving: Option<Serving<T>>,
    error: Option<String>,
    /// Silent retries of a failing, recently modified file.
    pub(super) tries: u32,
}

impl<T> Slot<T> {
    /// The content hash of the version serving.
    pub(super) fn serving_hash(&self) -> Option<&str> {
        self.serving.as_ref().map(|s| s.hash.as_str())
    }
}

/// What one reconcile changed: the events to send, and whether the snapshot
/// must be published again.
#[derive(Default)]
pub(super) struct Changes {
    pub(super) events: Vec<ReloadEvent>,
    pub(super) swapped: bool,
}

/// Every name seen, by name.
pub(super) struct Table<K: Kind> {
    slots: BTreeMap<String, Slot<K::Item>>,
    /// Names removed while serving: lookups say "(removed)".
    removed: BTreeSet<String>,
    /// The last version number given out per name; survives a removal.
    versions: HashMap<String, u64>,
    retry_at: Option<Instant>,
}

impl<K: Kind> Default for Table<K> {
    fn default() -> Self {
        Table {
            slots: BTreeMap::new(),
            removed: BTreeSet::new(),
            versions: HashMap::new(),
            retry_at: None,
        }
    }
}

impl<K: Kind> Table<K> {
    pub(super) fn slots(&self) -> &BTreeMap<String, Slot<K::Item>> {
        &self.slots
    }

    /// When a reconcile is due for a retry.
    pub(super) fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }

    pub(super) fn clear_retry(&mut self) {
        self.retry_at = None;
    }

    /// Asks for a reconcile at `at` (or earlier, if one is due earlier).
    pub(super) fn retry(&mut self, at: Instant) {
        self.retry_at = Some(self.retry_at.map_or(at, |r| r.min(at)));
    }

    fn slot(&mut self, name: &str, path: &Path) -> &mut Slot<K::Item> {
        let slot = self.slots.entry(name.to_string()).or_insert_with(|| Slot {
            path: path.to_path_buf(),
            sig: None,
            serving: None,
            error: None,
            tries: 0,
        });
        slot.path = path.to_path_buf();
        slot
    }

    /// A name that cannot be loaded as it is on disk (two files, a file that
    /// cannot be stat'ed): report it once, keep serving.
    pub(super) fn fail(&mut self, name: &str, path: &Path, error: String, changes: &mut Changes) {
        let slot = self.slot(name, path);
        slot.sig = None;
        if slot.error.as_ref() != Some(&error) {
            slot.error = Some(error.clone());
            changes.push(event::<K>(name, path, ReloadOutcome::Failed { error }));
        }
    }

    /// A file that is gone: its name leaves the snapshot.
    pub(super) fn remove(&mut self, name: &str, path: &Path, changes: &mut Changes) {
        if let Some(slot) = self.slots.remove(name)
            && slot.serving.is_some()
        {
            self.removed.insert(name.to_string());
            changes.swapped = true;
        }
        changes.push(event::<K>(name, path, ReloadOutcome::Removed));
    }

    /// Records what examining the file behind `name` found.
    pub(super) fn settle(&mut self, name: &str, outcome: Outcome<K::Item>, changes: &mut Changes) {
        match outcome {
            Outcome::Same(sig) => {
                let slot = self.slot(name, &sig.path);
                slot.sig = Some(sig);
                slot.error = None;
                slot.tries = 0;
            }
            Outcome::Loaded(loaded) => self.serve(name, loaded, changes),
            Outcome::Failed(error, sig) => {
                let path = sig.path.clone();
                let slot = self.slot(name, &path);
                slot.sig = Some(sig);
                slot.tries = 0;
                if slot.error.as_ref() != Some(&error) {
                    slot.error = Some(error.clone());
                    changes.push(event::<K>(name, &path, ReloadOutcome::Failed { error }));
                }
            }
            Outcome::Retry(at) => {
                // A file seen for the first time has no slot yet: nothing to
                // count, just look again.
                if let Some(slot) = self.slots.get_mut(name) {
                    slot.tries += 1;
                }
                self.retry(at);
            }
        }
    }

    fn serve(&mut self, name: &str, loaded: Loaded<K::Item>, changes: &mut Changes) {
        let counter = self.versions.entry(name.to_string()).or_insert(0);
        *counter += 1;
        let version = *counter;
        let path = loaded.sig.path.clone();
        let slot = self.slot(name, &path);
        slot.serving = Some(Serving {
            item: K::with_version(loaded.item, version),
            version,
            hash: loaded.hash.clone(),
            size: loaded.size,
            load_time: loaded.load_time,
            cached: loaded.cached,
            loaded_at: SystemTime::now(),
        });
        slot.sig = Some(loaded.sig);
        slot.error = None;
        slot.tries = 0;
        self.removed.remove(name);
        changes.swapped = true;
        let outcome = ReloadOutcome::Loaded {
            version,
            hash: loaded.hash,
            load_time: loaded.load_time,
            cached: loaded.cached,
        };
        changes.push(event::<K>(name, &path, outcome));
    }

    /// The snapshot of what serves now.
    pub(super) fn snapshot(&self) -> K::Snap {
        let items = self
            .slots
            .iter()
            .filter_map(|(n, s)| s.serving.as_ref().map(|v| (n, &v.item)));
        K::publish(items, &self.removed)
    }

    pub(super) fn statuses(&self) -> Vec<EntryStatus> {
        self.slots
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

impl Changes {
    /// Logs `event`; it is sent once the change is applied.
    fn push(&mut self, event: ReloadEvent) {
        match event.outcome {
            ReloadOutcome::Failed { .. } => tracing::error!("{event}"),
            _ => tracing::info!("{event}"),
        }
        self.events.push(event);
    }
}

fn event<K: Kind>(name: &str, path: &Path, outcome: ReloadOutcome) -> ReloadEvent {
    ReloadEvent {
        what: K::WHAT,
        name: name.to_string(),
        path: path.to_path_buf(),
        outcome,
    }
}
