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
//!
//! # Layout
//!
//! [`LivePlugins`] (`plugins.rs`) and [`LiveFlows`] (`flows.rs`) share one
//! registry core (`core.rs`): `scan.rs` lists the files, `settle.rs` waits
//! for one to stop changing and loads it, `reconcile.rs` swaps the snapshot,
//! and `watch.rs` wakes it on file events and at the poll interval.

mod core;
mod events;
mod flows;
mod plugins;
mod reconcile;
mod scan;
mod settle;
mod watch;

use std::path::PathBuf;
use std::time::Duration;

pub use events::{EntryStatus, ReloadEvent, ReloadOutcome, Watched};
pub use flows::LiveFlows;
pub use plugins::LivePlugins;

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
