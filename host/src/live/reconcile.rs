//! Reconciling: bringing the snapshot in line with the files on disk.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::ReloadOutcome;
use super::core::{Core, Kind, Serving, Slot, what};
use super::settle::{Outcome, stat};

impl<K: Kind> Core<K> {
    /// Brings the snapshot in line with the folder. `initial`: report broken
    /// files at once rather than waiting for them to go quiet.
    pub(super) async fn reconcile(&self, initial: bool) {
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
}
