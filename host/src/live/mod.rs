//! Live registries: a plugins folder ([`LivePlugins`]) or flow files
//! ([`LiveFlows`]) that hot-reload while the host serves.
//!
//! # How a change flows in
//!
//! A `notify` watcher, debounced (default 100 ms), wakes one worker task per
//! registry (events only about hidden entries or `target/` do not). The
//! worker *reconciles*: it scans the folder (recursively; hidden files and
//! folders and `target/` build folders are skipped), compares each
//! file's signature (path, size, mtime, inode) with the one it last settled,
//! and for each changed file:
//!
//! 1. **settles** it: the signature must be the same after `settle` (default
//!    50 ms) and again after the file is read, else it is still being written
//!    and is retried after the debounce;
//! 2. skips it when its content hash is the one already serving;
//! 3. loads it: for a plugin, type-checked against the `step` world and
//!    compiled off the async runtime ([`Host::load_bytes`]); for a flow,
//!    parsed and validated ([`parse_flow`]). Loading holds no lock that
//!    statuses or snapshots need: a compile of seconds stalls no request;
//! 4. for a plugin replacing a serving version, passes the server's gate
//!    when it has one (`SwapGate`: the replay gate calls the new version with
//!    recorded inputs); a refusal is a failure, reported as in 6;
//! 5. on success, swaps a new snapshot in atomically (`ArcSwap`): calls and
//!    runs already holding the old snapshot finish on it, new ones get the
//!    new version;
//! 6. on failure, keeps the last good version serving. A file modified less
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
//! [`LivePlugins`] (`plugins.rs`) and [`LiveFlows`] (`flows.rs`) are two
//! kinds (`kind.rs`) of one registry core (`core.rs`: start, the worker, the
//! reconcile). A reconcile lists the files (`scan.rs`), plans against the
//! per-name table (`plan.rs`, pure), settles and loads each changed file
//! without the lock (`settle.rs`), then applies the outcomes to the table
//! (`table.rs`) and swaps the snapshot. `watch.rs` wakes it on file events,
//! retries and the poll.

mod core;
mod events;
mod flows;
mod kind;
mod options;
mod plan;
mod plugins;
mod scan;
mod settle;
mod table;
mod watch;

pub use events::{EntryStatus, ReloadEvent, ReloadOutcome, Watched};
pub use flows::LiveFlows;
pub use options::{WatchError, WatchOptions};
pub use plugins::LivePlugins;
pub(crate) use plugins::SwapGate;
