//! Waking a registry: the debounced file watcher, retries and the poll.

use std::path::Path;
use std::time::{Duration, Instant};

use notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, DebouncedEvent, Debouncer, RecommendedCache};
use tokio::sync::mpsc;

use super::options::WatchError;
use super::scan::Root;
use crate::walk;

/// The file watcher; watching stops when it is dropped.
pub(super) type Watcher = Debouncer<RecommendedWatcher, RecommendedCache>;

/// Starts a debounced watcher on `root`; it sends one message per batch of
/// events that may change what is served.
pub(super) fn watch(
    root: &Root,
    debounce: Duration,
) -> Result<(Watcher, mpsc::UnboundedReceiver<()>), WatchError> {
    let (tx, rx) = mpsc::unbounded_channel();
    let fail = |e: notify::Error| WatchError::Watch {
        path: root.path().to_path_buf(),
        message: e.to_string(),
    };
    let (base, mode) = match root {
        Root::Dir(dir) => (dir.clone(), RecursiveMode::Recursive),
        Root::File(file) => {
            let parent = file.parent().filter(|p| !p.as_os_str().is_empty());
            let parent = parent.unwrap_or(Path::new(".")).to_path_buf();
            (parent, RecursiveMode::NonRecursive)
        }
    };
    let watched = base.clone();
    let handler = move |result: DebounceEventResult| {
        let relevant = match &result {
            Ok(events) => events.iter().any(|e| relevant(&watched, e)),
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
    let mut debouncer =
        notify_debouncer_full::new_debouncer(debounce, None, handler).map_err(fail)?;
    debouncer.watch(&base, mode).map_err(fail)?;
    Ok((debouncer, rx))
}

/// Whether `event` may change what is served: not a mere access, and not
/// only about entries a folder walk skips (editor temp files, a build
/// writing to `target/`).
fn relevant(base: &Path, event: &DebouncedEvent) -> bool {
    let walked = |p: &std::path::PathBuf| {
        p.strip_prefix(base)
            .map_or(true, |rel| !walk::is_skipped(rel))
    };
    !event.kind.is_access() && (event.paths.is_empty() || event.paths.iter().any(walked))
}

/// When the registry next reconciles: on a watcher batch, at a retry time,
/// or at the poll interval.
pub(super) struct Wakeups {
    batches: mpsc::UnboundedReceiver<()>,
    poll: Option<Duration>,
    next_poll: Option<Instant>,
}

impl Wakeups {
    pub(super) fn new(batches: mpsc::UnboundedReceiver<()>, poll: Option<Duration>) -> Self {
        Wakeups {
            batches,
            poll,
            next_poll: poll.map(|p| Instant::now() + p),
        }
    }

    /// Waits for the next reason to reconcile, `retry_at` being one; `false`
    /// once the watcher is gone.
    pub(super) async fn next(&mut self, retry_at: Option<Instant>) -> bool {
        let deadline = [retry_at, self.next_poll].into_iter().flatten().min();
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            msg = self.batches.recv() => {
                if msg.is_none() {
                    return false;
                }
                // One reconcile covers every batch so far.
                while self.batches.try_recv().is_ok() {}
            }
            () = sleep => {}
        }
        if self.next_poll.is_some_and(|p| Instant::now() >= p) {
            self.next_poll = self.poll.map(|p| Instant::now() + p);
        }
        true
    }
}
