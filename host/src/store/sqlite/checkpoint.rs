//! Checkpoints (copying the WAL back into the database file, and syncing
//! it) on their own thread and connection, so the writer seldom stops for
//! them: large outputs fill the WAL fast, and each checkpoint writes and
//! syncs as much as they did.
//!
//! The writer's WAL hook signals the thread each time the WAL has grown by
//! [`BACKGROUND_PAGES`]. Beside a busy writer a checkpoint never quite
//! catches up, and the WAL restarts from its beginning only once one has:
//! past [`FOREGROUND_PAGES`] the writer checkpoints itself, between two
//! transactions. That one catches up, and is short: the thread has copied
//! all but the last pages.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;

use rusqlite::Connection;

use super::writer::Shared;
use crate::store::StoreError;

/// WAL pages that start a background checkpoint (about 4 MB).
const BACKGROUND_PAGES: i32 = 1000;
/// WAL pages past which the writer checkpoints itself (about 16 MB).
const FOREGROUND_PAGES: i32 = 4 * BACKGROUND_PAGES;

/// The checkpoint thread; dropping it waits for the thread, which ends
/// once the writer's connection (holding the signal) is closed.
#[derive(Debug)]
pub(super) struct Checkpointer {
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread on its own connection to `path`, and hooks the
    /// writer's connection `writer` to it.
    pub(super) fn spawn(
        path: &Path,
        writer: &mut Connection,
        shared: Arc<Shared>,
    ) -> Result<Checkpointer, StoreError> {
        let name = super::open::shown(path);
        let conn = super::open::write_connection(path)?;
        let (signal, rx) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("flowhost-store-checkpoint".into())
            .spawn(move || run(conn, rx, name, shared))
            .map_err(|e| {
                StoreError::Backend(format!("cannot start the store's checkpoints: {e}"))
            })?;
        hook(writer, signal)
            .map_err(|e| super::open::sqlite_error(&super::open::shown(path), e))?;
        Ok(Checkpointer {
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Replaces SQLite's automatic checkpoint of the writer's connection.
/// Errors are left to the next try: one returned here would fail the
/// commit that called the hook, though it was committed.
fn hook(writer: &mut Connection, signal: SyncSender<()>) -> rusqlite::Result<()> {
    // The WAL's pages when the thread was last signalled.
    let mut signalled = 0;
    writer.wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, pages: i32| {
        if pages < signalled {
            // The WAL restarted.
            signalled = 0;
        }
        if pages >= FOREGROUND_PAGES {
            let _ = wal.checkpoint();
        } else if pages - signalled >= BACKGROUND_PAGES {
            signalled = pages;
            // Full: a checkpoint is already due.
            let _ = signal.try_send(());
        }
        Ok(())
    }))
}

fn run(conn: Connection, rx: Receiver<()>, name: String, shared: Arc<Shared>) {
    while rx.recv().is_ok() {
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            Ok(()) => {
                shared.checkpoints.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => tracing::warn!(store = %name, "a checkpoint failed: {e}"),
        }
    }
}
