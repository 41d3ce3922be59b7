//! Where runs are kept: the storage boundary between the server (and the
//! executor's journal) and a backend.
//!
//! A [`Store`] keeps each run from the moment it is accepted to the end of
//! its retention: the run and its input (committed before the client is
//! answered), a journal of its plugin steps' results as they complete (one
//! entry per step path, replaced while the step retries), and its final
//! record. After a crash, [`Store::unfinished`] gives back every accepted run
//! that has no final record, with its journal, and the server resumes them.
//!
//! Backends:
//! - `memory` ([`memory::MemoryStore`]): nothing survives the process; the
//!   finished runs kept are bounded in count and bytes. For tests, benches
//!   and `flowhost run`.
//! - `sqlite:PATH` ([`sqlite`]): one file, written by one thread that commits
//!   everything queued in one transaction (group commit).
//! - `postgres://USER@HOST:PORT/DB` ([`postgres`]): one database that several
//!   servers share as a fleet ([`Fleet`]): runs are claimed under leases,
//!   writes are fenced by the claim, notices go by LISTEN/NOTIFY. One task
//!   commits everything queued as one pipelined transaction (group commit).
//!
//! Every backend also keeps steps' key-value state ([`Store::kv`]).
//!
//! The executor knows nothing of SQL: it sees a [`RunJournal`](crate::executor::RunJournal)
//! built on a `Store`.

mod fleet;
pub(crate) mod history;
pub mod memory;
pub mod postgres;
pub(crate) mod rows;
pub mod sqlite;
mod url;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::SystemTime;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::executor::{RunRecord, RunStatus, StepRecord};

pub use fleet::{Fleet, Notice};
pub use url::{StoreUrl, StoreUrlError, default_data_dir};

/// Why the store could not do what was asked. Opening errors name the file
/// and leave it untouched.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The file is not a SQLite database, or it is corrupt.
    #[error("{path}: not a flowhost store ({why}); it was left untouched")]
    NotAStore {
        /// The store's file.
        path: String,
        /// What was found.
        why: String,
    },
    /// Written by a newer flowhost: its schema is unknown to this one.
    #[error(
        "{path}: written by a newer flowhost (schema version {found}; this one knows up to {known}); it was left untouched"
    )]
    TooNew {
        /// The store's file.
        path: String,
        /// The schema version found.
        found: i64,
        /// The newest schema version this build knows.
        known: i64,
    },
    /// Another server holds the store.
    #[error("{path}: in use by another flowhost server (stop it, or choose another --store)")]
    Locked {
        /// The store's file.
        path: String,
    },
    /// The file or its folder cannot be written.
    #[error("{path}: cannot be written ({why})")]
    ReadOnly {
        /// The store's file.
        path: String,
        /// The operating system's reason.
        why: String,
    },
    /// The database cannot be reached (a shared store): nothing was
    /// written; the same call may succeed once it is back.
    #[error("{what}: the database cannot be reached ({why})")]
    Unreachable {
        /// The store, its password left out.
        what: String,
        /// What the connection reported.
        why: String,
    },
    /// The fleet-wide queue is full (a shared store): nothing was accepted.
    #[error("the queue is full: {capacity} runs are waiting or running across the servers")]
    Full {
        /// The queue's capacity.
        capacity: usize,
    },
    /// Another worker claimed the run after this one's lease expired: the
    /// write was refused, and this worker must stop the run without a
    /// record (see [`Fleet`]).
    #[error("run {run_id} is now held by another worker; this worker's write was refused")]
    Fenced {
        /// The run.
        run_id: String,
    },
    /// Anything else the backend reported.
    #[error("the store failed: {0}")]
    Backend(String),
    /// The store was closed (the server is stopping).
    #[error("the store is closed")]
    Closed,
}

/// A run being accepted: everything needed to run it, or to run it again
/// after a crash.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NewRun {
    /// The run's id.
    pub run_id: String,
    /// The flow's name.
    pub flow: String,
    /// The content hash of the flow file the run started with (its text is
    /// a blob of the store).
    pub flow_version: String,
    /// The version (content hash) of every plugin the flow names, as the
    /// run found them when accepted; each one's bytes are a blob of the store.
    pub plugins: std::collections::BTreeMap<String, String>,
    /// The input, as the JSON text it arrived as.
    pub input: Box<RawValue>,
    /// When it was accepted.
    #[serde(with = "unix_ms")]
    pub accepted_at: SystemTime,
    /// The client's `Idempotency-Key`, unique per flow.
    pub idempotency_key: Option<String>,
    /// Set on a rerun: the run and step it was derived from.
    pub derived_from: Option<DerivedFrom>,
    /// How many event hops led to it (0: not started by a run's event): a
    /// resumed or claimed run keeps the loop guard's count.
    #[serde(default)]
    pub hop: u32,
}

/// Where a rerun came from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[non_exhaustive]
pub struct DerivedFrom {
    /// The run rerun.
    pub run_id: String,
    /// The step it ran from; `None`: from the start.
    pub step: Option<String>,
}

/// What accepting a run gave.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Accepted {
    /// A new run, now committed.
    New,
    /// The idempotency key was already used (for the same flow): this is
    /// the run it started.
    Existing {
        /// That run's id.
        run_id: String,
    },
}

/// One journal entry: a plugin step's result, or its state between
/// attempts while it waits out a retry backoff.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StepEntry {
    /// The step's path (`lines[3].price`).
    pub path: String,
    /// Its record so far: attempts, plugin version, fallback, error.
    pub record: StepRecord,
    /// Its output when it succeeded (or recovered).
    pub output: Option<Box<RawValue>>,
    /// The input it was called with, when journaled: absent for an entry
    /// written before inputs were kept, or an input over
    /// [`MAX_JOURNALED_INPUT`] bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Box<RawValue>>,
    /// Where its input is, when the entry names it instead of copying it:
    /// [`RUN_INPUT`] (the run's input) or the path of the entry whose output
    /// it was. The stores resolve it into `input` when they read entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_from: Option<String>,
    /// Set while the step waits for a retry: when the next attempt starts.
    #[serde(with = "unix_ms::option", default)]
    pub retry_at: Option<SystemTime>,
    /// The events the step emitted, handed on once this entry is journaled
    /// (its outbox).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub emitted: Vec<Emitted>,
}

/// [`StepEntry::input_from`] naming the run's input.
pub const RUN_INPUT: &str = "$input";

/// Fills in the inputs `entries` name instead of copying them, from the
/// run's `input` and the entries' outputs; a name that points nowhere (an
/// entry changed by hand) leaves the input unknown.
pub(crate) fn resolve_inputs(input: &RawValue, entries: &mut [StepEntry]) {
    let named: Vec<(usize, String)> = entries
        .iter_mut()
        .enumerate()
        .filter_map(|(i, e)| Some((i, e.input_from.take()?)))
        .collect();
    if named.is_empty() {
        return;
    }
    let at: std::collections::HashMap<&str, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.path.as_str(), i))
        .collect();
    let found: Vec<(usize, Option<Box<RawValue>>)> = named
        .into_iter()
        .map(|(i, from)| {
            let text = match from.as_str() {
                RUN_INPUT => Some(input.to_owned()),
                path => at.get(path).and_then(|&j| entries[j].output.clone()),
            };
            (i, text)
        })
        .collect();
    for (i, text) in found {
        entries[i].input = text;
    }
}

/// The largest step input a journal entry keeps (JSON text bytes): enough
/// to show and edit a step's input, without doubling what a run with large
/// documents writes.
pub const MAX_JOURNALED_INPUT: usize = 64 * 1024;

/// An event as journaled with its step's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Emitted {
    /// Its topic.
    pub topic: String,
    /// Its payload.
    pub payload: Box<RawValue>,
}

/// An accepted run without a final record, as a resuming server finds it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Unfinished {
    /// The run as accepted.
    pub run: NewRun,
    /// When it first started, if it did: its flow deadline counts from there.
    pub started_at: Option<SystemTime>,
    /// Its journal, in the order it was written.
    pub steps: Vec<StepEntry>,
    /// A cancel was asked for while no worker held it (a shared store): the
    /// worker that claims it cancels it.
    pub cancel_requested: bool,
}

/// A run as the store knows it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StoredRun {
    /// Its id.
    pub run_id: String,
    /// Its flow.
    pub flow: String,
    /// Its status.
    pub status: RunStatus,
    /// When it was accepted.
    pub accepted_at: SystemTime,
    /// Its final record, once finished.
    pub record: Option<Arc<RunRecord>>,
}

/// Which runs to list, newest first.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ListQuery {
    /// Only this flow's runs.
    pub flow: Option<String>,
    /// Only runs with this status.
    pub status: Option<RunStatus>,
    /// At most this many (the store caps it at [`MAX_PAGE`]).
    pub limit: usize,
    /// Only runs older than this cursor, from an earlier page.
    pub cursor: Option<Cursor>,
}

/// The most runs one page lists.
pub const MAX_PAGE: usize = 1000;

/// A position in the newest-first order of runs: (accepted at, run id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// Milliseconds since the Unix epoch.
    pub accepted_ms: i64,
    /// Breaks ties between runs accepted in the same millisecond.
    pub run_id: String,
}

/// A cursor as `GET /runs` and `flowhost runs list` write it: `MILLIS.RUN_ID`.
impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.accepted_ms, self.run_id)
    }
}

impl std::str::FromStr for Cursor {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || "not a cursor this server or command gave".to_string();
        let (ms, run_id) = text.split_once('.').ok_or_else(bad)?;
        if run_id.is_empty() || run_id.len() > 64 {
            return Err(bad());
        }
        Ok(Cursor {
            accepted_ms: ms.parse().map_err(|_| bad())?,
            run_id: run_id.to_string(),
        })
    }
}

/// A page of runs (without their step records) and where the next starts.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RunPage {
    /// The runs, newest first.
    pub runs: Vec<StoredRun>,
    /// The cursor of the next page, if there may be one.
    pub next: Option<Cursor>,
}

/// How long finished runs are kept.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Retention {
    /// Runs that finished longer ago than this are removed.
    pub max_age: std::time::Duration,
    /// At most this many finished runs are kept, the most recently finished.
    pub max_runs: usize,
}

/// The storage boundary. Every method is async and never blocks the
/// runtime: a backend does its I/O on its own thread or off the runtime.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// What it is, for the server's start line (`sqlite:/var/lib/...`).
    fn describe(&self) -> String;

    /// Whether what it keeps survives the process: a shutdown then leaves
    /// unfinished runs to resume instead of cancelling them.
    fn durable(&self) -> bool;

    /// Commits runs, all or none, durably: when the future resolves `Ok`, a
    /// crash loses none of them. A run whose idempotency key its flow
    /// already used is not added: its answer is [`Accepted::Existing`]. The
    /// runs are queued when this is called: writes about them queued later
    /// (their journal, their record) are committed after them.
    fn accept(&self, runs: Vec<NewRun>) -> BoxFuture<'static, Result<Vec<Accepted>, StoreError>>;

    /// Marks a run started (its flow deadline counts from `at`).
    async fn started(&self, run_id: &str, at: SystemTime) -> Result<(), StoreError>;

    /// Journals a step's result (or its retry state), replacing an earlier
    /// entry at the same path. The entry is queued when this is called, so
    /// that one caller's entries are committed in the order it wrote them;
    /// when the future resolves, the entry survives a crash of the process.
    fn journal(&self, run_id: &str, entry: StepEntry)
    -> BoxFuture<'static, Result<(), StoreError>>;

    /// Stores a finished run's record; the run is no longer unfinished.
    async fn finish(&self, record: Arc<RunRecord>) -> Result<(), StoreError>;

    /// Every accepted run without a final record, oldest first.
    async fn unfinished(&self) -> Result<Vec<Unfinished>, StoreError>;

    /// One run, if the store has it.
    async fn run(&self, run_id: &str) -> Result<Option<StoredRun>, StoreError>;

    /// The input a run was accepted with, and its journal: for a rerun.
    async fn replay_source(
        &self,
        run_id: &str,
    ) -> Result<Option<(NewRun, Vec<StepEntry>)>, StoreError>;

    /// Lists runs, newest first.
    async fn list(&self, query: ListQuery) -> Result<RunPage, StoreError>;

    /// Removes finished runs past `retention`, and the blobs no unfinished
    /// run refers to that were not put in the last `retention.max_age`;
    /// returns how many runs it removed.
    async fn prune(&self, retention: Retention) -> Result<usize, StoreError>;

    /// Keeps a content-addressed copy of a flow file's or a plugin's bytes
    /// under `hash` (SHA-256 hex), once: putting a hash already kept is free.
    async fn put_blob(&self, hash: &str, bytes: Arc<[u8]>) -> Result<(), StoreError>;

    /// The bytes kept under `hash`.
    async fn blob(&self, hash: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Where steps' key-value state is kept: in the store itself, so it
    /// lives as long as the store's runs do and every server sharing the
    /// store sees the same state.
    fn kv(&self) -> Arc<dyn crate::kv::KvStore>;

    /// The shared side of the store, when several servers share it.
    fn fleet(&self) -> Option<Arc<dyn Fleet>> {
        None
    }

    /// Whether the store can be written now (`/readyz`): a shared store
    /// answers `Unreachable` while its database is away.
    async fn ready(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Figures for the metrics, without waiting: (finished runs kept, bytes
    /// the store takes: in memory, estimated; in a file, the file's size).
    fn usage(&self) -> (usize, u64);
}

/// How to open a store; each backend reads what concerns it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OpenOptions {
    /// What a `memory` store keeps of finished runs.
    pub bounds: memory::Bounds,
    /// A shared store's fleet-wide queue capacity: runs accepted and
    /// waiting for a server to claim them, across every server.
    pub queue_capacity: usize,
    /// A shared store's lease: how long a worker holds a run without
    /// renewing its claim.
    pub lease: std::time::Duration,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            bounds: memory::Bounds::default(),
            queue_capacity: 1024,
            lease: std::time::Duration::from_secs(5),
        }
    }
}

/// Opens the store at `url`: creates it when missing, migrates an older
/// schema, refuses a newer one, a corrupt file or one another server holds.
pub async fn open(url: &StoreUrl, options: &OpenOptions) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match url {
        StoreUrl::Memory => Arc::new(memory::MemoryStore::new(options.bounds)),
        StoreUrl::Sqlite(path) => Arc::new(sqlite::SqliteStore::open(path).await?),
        StoreUrl::Postgres(url) => Arc::new(postgres::PostgresStore::open(url, options).await?),
    })
}

/// `SystemTime` as milliseconds since the Unix epoch, in stored JSON.
pub(crate) mod unix_ms {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use serde::{Deserialize, Deserializer, Serializer};

    /// Milliseconds since the epoch (negative before it, saturating).
    pub(crate) fn from(t: SystemTime) -> i64 {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
        }
    }

    /// The time `ms` milliseconds after the epoch.
    pub(crate) fn to(ms: i64) -> SystemTime {
        if ms >= 0 {
            UNIX_EPOCH + Duration::from_millis(ms as u64)
        } else {
            UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
        }
    }

    pub(crate) fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(from(*t))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        Ok(to(i64::deserialize(d)?))
    }

    pub(crate) mod option {
        use std::time::SystemTime;

        use serde::{Deserialize, Deserializer, Serializer};

        pub(crate) fn serialize<S: Serializer>(
            t: &Option<SystemTime>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_some(&super::from(*t)),
                None => s.serialize_none(),
            }
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<SystemTime>, D::Error> {
            Ok(Option::<i64>::deserialize(d)?.map(super::to))
        }
    }
}
