//! Waking the registry: the debounced file watcher, retries and the poll.

use std::path::Path;
use std::sync::Weak;
use std::time::Instant;

use notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, new_debouncer};
use tokio::sync::mpsc;

use super::WatchError;
use super::core::{Core, Kind, Root};

impl<K: Kind> Core<K> {
    /// Starts the debounced watcher; it sends one message per relevant batch.
    pub(super) fn watch(&self) -> Result<mpsc::UnboundedReceiver<()>, WatchError> {
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
}

/// Reconciles on every watcher batch, at retry times and at the poll
/// interval, until the registry is dropped.
pub(super) async fn worker<K: Kind>(core: Weak<Core<K>>, mut wake: mpsc::UnboundedReceiver<()>) {
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
