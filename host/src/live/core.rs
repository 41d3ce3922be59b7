//! The registry core shared by plugins and flows: its lifetime (start, the
//! worker that reconciles on every wake-up) and the reconcile itself.
//!
//! A reconcile plans under the table's lock, loads without it (a compile
//! takes seconds for a large component) and applies under it again, so
//! statuses and snapshots never wait for a compile. Reconciles run one at a
//! time, so a plan still holds when it is applied; a file changed while its
//! old content compiles is picked up by the next reconcile, and the newest
//! content is what ends up serving.

use std::sync::{Arc, MutexGuard, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::sync::broadcast;

use super::events::{EntryStatus, ReloadEvent};
use super::kind::Kind;
use super::options::{WatchError, WatchOptions};
use super::plan::plan;
use super::scan::{Root, scan};
use super::settle::examine;
use super::table::{Changes, Table};
use super::watch::{Wakeups, Watcher, watch};

/// One live registry: what it watches, its table and its snapshot.
pub(super) struct Core<K: Kind> {
    kind: K,
    pub(super) root: Root,
    options: WatchOptions,
    /// What new calls and runs see.
    pub(super) snap: ArcSwap<K::Snap>,
    /// Held only for reads and quick writes, never across an await.
    table: std::sync::Mutex<Table<K>>,
    /// Held for a whole reconcile.
    reconciling: tokio::sync::Mutex<()>,
    events: broadcast::Sender<ReloadEvent>,
    _watcher: Option<Watcher>,
}

impl<K: Kind> Core<K> {
    /// Loads what `root` holds and, with `watch`, keeps it in step.
    pub(super) async fn start(
        kind: K,
        root: Root,
        options: WatchOptions,
        watch_it: bool,
    ) -> Result<Arc<Self>, WatchError> {
        if let Err(e) = tokio::fs::metadata(root.path()).await {
            return Err(WatchError::Read {
                path: root.path().to_path_buf(),
                message: e.to_string(),
            });
        }
        // Watch before the first scan, so nothing written in between is missed.
        let (watcher, wakeups) = if watch_it {
            let (watcher, batches) = watch(&root, options.debounce)?;
            (Some(watcher), Some(Wakeups::new(batches, options.poll)))
        } else {
            (None, None)
        };
        let core = Arc::new(Core {
            kind,
            root,
            options,
            snap: ArcSwap::from_pointee(K::Snap::default()),
            table: std::sync::Mutex::new(Table::default()),
            reconciling: tokio::sync::Mutex::new(()),
            events: broadcast::channel(1024).0,
            _watcher: watcher,
        });
        core.reconcile(true).await;
        match wakeups {
            Some(wakeups) => {
                tokio::spawn(worker(Arc::downgrade(&core), wakeups));
            }
            None => {
                // Files still settling: wait for them a little, then take what is there.
                let give_up = Instant::now() + Duration::from_secs(3);
                while Instant::now() < give_up {
                    let Some(at) = core.next_retry().await else {
                        break;
                    };
                    tokio::time::sleep_until(at.into()).await;
                    core.reconcile(true).await;
                }
            }
        }
        Ok(core)
    }

    fn table(&self) -> MutexGuard<'_, Table<K>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every name seen, with its serving version and current error.
    pub(super) fn statuses(&self) -> Vec<EntryStatus> {
        self.table().statuses()
    }

    /// Reload events from now on.
    pub(super) fn subscribe(&self) -> broadcast::Receiver<ReloadEvent> {
        self.events.subscribe()
    }

    /// When a retry is due, as the reconcile running now (if any) leaves it.
    async fn next_retry(&self) -> Option<Instant> {
        let _settled = self.reconciling.lock().await;
        self.table().retry_at()
    }

    /// Brings the snapshot in line with the files. `initial`: report broken
    /// files at once rather than waiting for them to go quiet.
    pub(super) async fn reconcile(&self, initial: bool) {
        let _one_at_a_time = self.reconciling.lock().await;
        self.table().clear_retry();
        let listing = match scan(&self.root, K::matches).await {
            Ok(listing) => listing,
            Err(e) => {
                // The folder itself is unreadable (moved away, a transient
                // error): keep serving what we have, and look again later.
                tracing::warn!(dir = %self.root.path().display(), "cannot scan: {e}");
                self.table()
                    .retry(Instant::now() + self.options.debounce * 4);
                return;
            }
        };
        let plan = plan(&self.table(), &listing, self.root.path());

        // The first load does not wait: the stat after reading still catches
        // a file written to while it was read.
        if !initial && plan.touches_files() {
            tokio::time::sleep(self.options.settle).await;
        }
        // Gone, unless it reappears within the settle time (delete-then-create).
        let mut gone = Vec::new();
        let mut back = false;
        for (name, path) in plan.gone {
            if tokio::fs::try_exists(&path).await.unwrap_or(false) {
                back = true;
            } else {
                gone.push((name, path));
            }
        }
        let examined = plan.changed.iter().map(|candidate| async move {
            let outcome = examine(&self.kind, &self.options, candidate, initial).await;
            (&candidate.name, outcome)
        });
        let examined = futures::future::join_all(examined).await;

        let mut table = self.table();
        let mut changes = Changes::default();
        for (name, path, error) in plan.broken {
            table.fail(&name, &path, error, &mut changes);
        }
        if back {
            table.retry(Instant::now());
        }
        for (name, path) in gone {
            table.remove(&name, &path, &mut changes);
        }
        for (name, outcome) in examined {
            table.settle(name, outcome, &mut changes);
        }
        if changes.swapped {
            self.snap.store(Arc::new(table.snapshot()));
        }
        // Sent under the lock: whoever sees a status or snapshot change can
        // already receive its event.
        for event in changes.events {
            let _ = self.events.send(event);
        }
    }
}

/// Reconciles on every wake-up until the registry is dropped.
async fn worker<K: Kind>(core: Weak<Core<K>>, mut wakeups: Wakeups) {
    loop {
        let retry_at = match core.upgrade() {
            Some(core) => core.next_retry().await,
            None => return,
        };
        if !wakeups.next(retry_at).await {
            return;
        }
        let Some(core) = core.upgrade() else { return };
        core.reconcile(false).await;
    }
}

/// The methods both live registries have, written once: each wraps a
/// `core: Arc<Core<_>>`.
macro_rules! shared_methods {
    () => {
        /// Every name seen, with its serving version and current error, by
        /// name. Never waits for a reload in progress.
        pub async fn statuses(&self) -> Vec<$crate::EntryStatus> {
            self.core.statuses()
        }

        /// Reload events from now on (loaded, rejected, removed). A receiver
        /// that falls behind loses the oldest events.
        pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<$crate::ReloadEvent> {
            self.core.subscribe()
        }

        /// Reconciles now, without waiting for an event.
        pub async fn rescan(&self) {
            self.core.reconcile(false).await;
        }
    };
}
pub(super) use shared_methods;
