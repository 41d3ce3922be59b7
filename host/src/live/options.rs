//! How a live registry is set up, and why it may fail to start.

use std::path::PathBuf;
use std::time::Duration;

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
#[non_exhaustive]
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
