//! The `sqlite:PATH` store: runs in one SQLite file.
//!
//! - Opening ([`open`]) checks the file before SQLite writes a byte of it,
//!   and holds an exclusive lock on it for the store's life: one server per
//!   file. [`SqliteStore::open_reader`] reads a store beside its server.
//! - [`schema`] holds the tables and their versioned migrations.
//! - One thread writes ([`writer`]): every write is a message, and what is
//!   queued commits in one transaction (group commit). Another copies the
//!   WAL back into the file ([`checkpoint`]). Reads use a small pool of
//!   read-only connections off the runtime ([`read`]).
//! - Steps' key-value state is its `kv` table, on a connection of its own
//!   ([`kv`]).
//!
//! # Durability
//! The file is in WAL mode. A transaction holding an `accept` commits with
//! `synchronous=FULL`: the WAL is synced before the run is acknowledged,
//! so an acknowledged run survives a power loss. Every other transaction
//! (step results, starts, finishes) commits with `synchronous=NORMAL`: the
//! WAL is written but not synced. The operating system holds those writes,
//! so they survive a crash or a `kill -9` of the process. A power loss can
//! lose the last of them, never a run: the WAL is appended in order and the
//! next FULL commit (or checkpoint) syncs everything before it, so what is
//! lost is a suffix of step results, and those steps only run again at the
//! resume, as a step in flight at a crash does (at least once). This keeps
//! one fsync per group of accepted runs and none per step.
//!
//! # What is stored
//! Inputs and outputs are TEXT as they arrived, never re-serialised. A
//! finished run's record is stored without its output, the output beside
//! it; [`Store::run`] puts them back together. A run's journal stays until
//! the run is pruned: a rerun from a step reuses it. A journal entry whose
//! input is the run's input or an earlier step's output names it
//! ([`StepEntry::input_from`]) instead of copying it, and reads fill it
//! back in.

mod checkpoint;
mod kv;
mod open;
mod ops;
mod read;
mod schema;
mod writer;

use futures::future::BoxFuture;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use self::kv::SqliteKv;
use self::open::Mode;
use self::ops::{FinishRow, PruneBound, RunRow, StepRow};
use self::read::Readers;
use self::schema::Found;
pub use self::writer::WriteCounters;
use self::writer::{Done, Shared, Work, Writer};
use super::{
    Accepted, ListQuery, NewRun, Retention, RunPage, StepEntry, Store, StoreError, StoredRun,
    Unfinished, unix_ms,
};
use crate::executor::RunRecord;

/// Finished runs removed per transaction when pruning: the writer is never
/// held long.
const PRUNE_CHUNK: usize = 500;

/// Runs in one SQLite file. See the module docs.
#[derive(Debug)]
pub struct SqliteStore {
    name: String,
    /// Closed first: the last connection to close checkpoints the WAL.
    readers: Arc<Readers>,
    /// `None` when opened for reading.
    writer: Option<Writer>,
    shared: Arc<Shared>,
    /// Steps' key-value state; it holds the file too, for its connection.
    kv: Arc<SqliteKv>,
    /// Holds the lock; declared last so that it is closed after every
    /// connection (closing it drops this process's SQLite locks on the file).
    _file: Arc<File>,
}

impl SqliteStore {
    /// Opens the store at `path` for a server: creates it (and its folder)
    /// when missing, locks it, migrates an older schema. Refuses, leaving
    /// the file untouched: a file that is not a store or is damaged, a
    /// newer store, one another server holds, a read-only file or folder.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let path = path.to_path_buf();
        blocking(move || open_store(path, Mode::Write)).await
    }

    /// Opens the store at `path` to read it while a server may hold it: no
    /// lock, never created, never migrated. Its writes fail with
    /// [`StoreError::ReadOnly`].
    pub async fn open_reader(path: &Path) -> Result<SqliteStore, StoreError> {
        let path = path.to_path_buf();
        blocking(move || open_store(path, Mode::Read)).await
    }

    /// What the writer has committed so far: figures for tests and benches.
    pub fn write_counters(&self) -> WriteCounters {
        self.shared.counters()
    }

    async fn write(&self, work: Work) -> Result<Done, StoreError> {
        match &self.writer {
            Some(writer) => writer.write(work).await,
            None => Err(StoreError::ReadOnly {
                path: self.name.clone(),
                why: "opened for reading only".into(),
            }),
        }
    }

    /// Queues `work` now; the answer comes when it is committed.
    fn enqueue(
        &self,
        work: Work,
    ) -> Result<tokio::sync::oneshot::Receiver<Result<Done, StoreError>>, StoreError> {
        match &self.writer {
            Some(writer) => writer.enqueue(work),
            None => Err(StoreError::ReadOnly {
                path: self.name.clone(),
                why: "opened for reading only".into(),
            }),
        }
    }

    async fn write_unit(&self, work: Work) -> Result<(), StoreError> {
        self.write(work).await.map(drop)
    }

    async fn write_count(&self, work: Work) -> Result<usize, StoreError> {
        match self.write(work).await? {
            Done::Count(n) => Ok(n),
            other => Err(unexpected(&other)),
        }
    }
}

fn unexpected(done: &Done) -> StoreError {
    StoreError::Backend(format!("the store's writer answered {done:?}"))
}

/// Runs blocking work off the runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Backend(format!("the store's open failed: {e}")))?
}

fn open_store(path: PathBuf, mode: Mode) -> Result<SqliteStore, StoreError> {
    let name = open::shown(&path);
    let probed = open::probe(&path, mode)?;
    // A file without bytes is a new store; any other is inspected first.
    let inspected = if probed.empty {
        None
    } else {
        Some(open::read_connection(&path)?)
    };
    let found = match &inspected {
        Some(conn) => schema::inspect(conn, &name)?,
        None => Found::Empty,
    };
    let shared = Arc::new(Shared::default());
    let file = Arc::new(probed.file);
    let (writer, readers, kv) = match (mode, inspected) {
        (Mode::Read, Some(conn)) => {
            readable(found, &name)?;
            let finished = read::count_finished(&conn).map_err(|e| open::sqlite_error(&name, e))?;
            shared.finished.store(finished, Ordering::Relaxed);
            let kv = SqliteKv::read_only(&path);
            (None, Readers::new(path.clone(), Some(conn)), kv)
        }
        // `probe` refuses an empty file to a reader.
        (Mode::Read, None) => {
            return Err(StoreError::NotAStore {
                path: name,
                why: "the file is empty".into(),
            });
        }
        (Mode::Write, inspected) => {
            drop(inspected);
            let writer = start_writer(&path, found, &shared)?;
            let kv = SqliteKv::open(&path, file.clone())?;
            (Some(writer), Readers::new(path.clone(), None), kv)
        }
    };
    shared.measure(&path);
    Ok(SqliteStore {
        name,
        readers: Arc::new(readers),
        writer,
        shared,
        kv: Arc::new(kv),
        _file: file,
    })
}

/// Refuses to read what only a server can make a store of this version.
fn readable(found: Found, name: &str) -> Result<(), StoreError> {
    match found {
        Found::Store(schema::VERSION) => Ok(()),
        Found::Empty => Err(StoreError::NotAStore {
            path: name.to_string(),
            why: "an empty SQLite database, not yet a store".into(),
        }),
        Found::Store(old) => Err(StoreError::Backend(format!(
            "{name}: a store of schema version {old}, older than this flowhost's {}: \
             start `flowhost serve` on it once to upgrade it",
            schema::VERSION
        ))),
    }
}

/// Opens the write connection of a checked file, makes it a WAL-mode store
/// of the current schema, and starts the writer on it.
fn start_writer(path: &Path, found: Found, shared: &Arc<Shared>) -> Result<Writer, StoreError> {
    let name = open::shown(path);
    let sql = |e| open::sqlite_error(&name, e);
    let mut conn = open::write_connection(path)?;
    if found == Found::Empty {
        schema::prepare_empty(&conn, &name)?;
    }
    let journal: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(sql)?;
    if !journal.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Backend(format!(
            "{name}: SQLite cannot use WAL mode on this file system (it kept `{journal}`)"
        )));
    }
    schema::migrate(&mut conn, &name)?;
    conn.execute_batch("PRAGMA temp_store = MEMORY; PRAGMA journal_size_limit = 67108864;")
        .map_err(sql)?;
    let finished = read::count_finished(&conn).map_err(sql)?;
    shared.finished.store(finished, Ordering::Relaxed);
    Writer::spawn(conn, path.to_path_buf(), shared.clone())
}

fn now_ms() -> i64 {
    unix_ms::from(SystemTime::now())
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    fn describe(&self) -> String {
        format!("sqlite:{}", self.name)
    }

    fn durable(&self) -> bool {
        true
    }

    fn accept(&self, runs: Vec<NewRun>) -> BoxFuture<'static, Result<Vec<Accepted>, StoreError>> {
        if runs.is_empty() {
            return Box::pin(std::future::ready(Ok(Vec::new())));
        }
        let rows = RunRow::all(runs);
        let queued = rows.and_then(|rows| self.enqueue(Work::Accept(rows)));
        Box::pin(async move {
            match queued?.await.map_err(|_| StoreError::Closed)?? {
                Done::Accepted(answers) => Ok(answers),
                other => Err(unexpected(&other)),
            }
        })
    }

    async fn started(&self, run_id: &str, at: SystemTime) -> Result<(), StoreError> {
        self.write_unit(Work::Started {
            run_id: run_id.to_string(),
            at_ms: unix_ms::from(at),
        })
        .await
    }

    fn journal(
        &self,
        run_id: &str,
        entry: StepEntry,
    ) -> BoxFuture<'static, Result<(), StoreError>> {
        let queued = StepRow::new(run_id, entry).and_then(|row| self.enqueue(Work::Journal(row)));
        Box::pin(async move { queued?.await.map_err(|_| StoreError::Closed)?.map(drop) })
    }

    async fn finish(&self, record: Arc<RunRecord>) -> Result<(), StoreError> {
        self.write_unit(Work::Finish(FinishRow::new(&record)?))
            .await
    }

    async fn unfinished(&self) -> Result<Vec<Unfinished>, StoreError> {
        self.readers.read(|r| r.unfinished()).await
    }

    async fn run(&self, run_id: &str) -> Result<Option<StoredRun>, StoreError> {
        let run_id = run_id.to_string();
        self.readers.read(move |r| r.run(&run_id)).await
    }

    async fn replay_source(
        &self,
        run_id: &str,
    ) -> Result<Option<(NewRun, Vec<StepEntry>)>, StoreError> {
        let run_id = run_id.to_string();
        self.readers.read(move |r| r.replay_source(&run_id)).await
    }

    async fn list(&self, query: ListQuery) -> Result<RunPage, StoreError> {
        self.readers.read(move |r| r.list(&query)).await
    }

    /// Removes finished runs that finished more than `max_age` ago or are
    /// beyond the `max_runs` most recently finished, [`PRUNE_CHUNK`] per
    /// transaction, then the blobs no unfinished run refers to.
    async fn prune(&self, retention: Retention) -> Result<usize, StoreError> {
        let now = now_ms();
        let max_age = i64::try_from(retention.max_age.as_millis()).unwrap_or(i64::MAX);
        let cutoff = now.saturating_sub(max_age);
        // Everything that finished before `cutoff`.
        let by_age = PruneBound {
            finished_ms: cutoff.saturating_sub(1),
            rowid: i64::MAX,
        };
        let keep = retention.max_runs;
        let by_count = self.readers.read(move |r| r.prune_bound(keep)).await?;
        let bound = by_count.map_or(by_age, |b| b.max(by_age));
        let mut removed = 0;
        loop {
            let work = Work::PruneRuns {
                bound,
                limit: PRUNE_CHUNK,
            };
            let n = self.write_count(work).await?;
            removed += n;
            if n < PRUNE_CHUNK {
                break;
            }
        }
        self.write_count(Work::PruneBlobs { before_ms: cutoff })
            .await?;
        // Expired key-value entries are invisible already: a failed sweep
        // only leaves them for the next one.
        if let Err(e) = self.kv.sweep(crate::kv::SWEEP_LIMIT).await {
            tracing::warn!(target: "flowhost::kv", "expired key-value entries not swept: {e}");
        }
        Ok(removed)
    }

    async fn put_blob(&self, hash: &str, bytes: Arc<[u8]>) -> Result<(), StoreError> {
        self.write_unit(Work::PutBlob {
            hash: hash.to_string(),
            bytes,
            at_ms: now_ms(),
        })
        .await
    }

    async fn blob(&self, hash: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let hash = hash.to_string();
        self.readers.read(move |r| r.blob(&hash)).await
    }

    fn kv(&self) -> Arc<dyn crate::kv::KvStore> {
        self.kv.clone()
    }

    fn usage(&self) -> (usize, u64) {
        let finished = self.shared.finished.load(Ordering::Relaxed);
        let bytes = self.shared.file_bytes.load(Ordering::Relaxed);
        (usize::try_from(finished).unwrap_or(usize::MAX), bytes)
    }
}
