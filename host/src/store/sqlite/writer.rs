//! The writer: one thread owns the write connection and commits in groups.
//!
//! Every write is a message with a reply. The thread blocks for the first
//! message, takes everything queued behind it (up to [`MAX_OPS`] writes or
//! [`MAX_BYTES`]), runs them in one transaction, each in its own savepoint
//! (a failed write is undone alone), commits once and answers them all.
//! Under load, one commit (one fsync at most) serves many writes; alone, a
//! write waits for nothing.

use std::fs;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use super::checkpoint::Checkpointer;
use super::ops::{self, Effects, FinishRow, PruneBound, RunRow, StepRow};
use crate::store::{Accepted, StoreError};

/// The most writes one transaction takes.
const MAX_OPS: usize = 512;
/// About the most bytes one transaction takes (a larger single write still
/// goes, alone).
const MAX_BYTES: usize = 8 << 20;

/// One write.
#[derive(Debug)]
pub(super) enum Work {
    Accept(Vec<RunRow>),
    Started {
        run_id: String,
        at_ms: i64,
    },
    Journal(StepRow),
    Finish(FinishRow),
    PruneRuns {
        bound: PruneBound,
        limit: usize,
    },
    PruneBlobs {
        before_ms: i64,
    },
    PutBlob {
        hash: String,
        bytes: Arc<[u8]>,
        at_ms: i64,
    },
}

/// What a write gave.
#[derive(Debug)]
pub(super) enum Done {
    Unit,
    Accepted(Vec<Accepted>),
    Count(usize),
}

impl Work {
    /// About how many bytes it writes.
    fn bytes(&self) -> usize {
        const ROW: usize = 64;
        match self {
            Work::Accept(runs) => runs
                .iter()
                .map(|r| ROW + r.run_id.len() + r.flow.len() + r.plugins.len() + r.input.len())
                .sum(),
            Work::Journal(s) => {
                ROW + s.path.len() + s.entry.len() + s.output.as_ref().map_or(0, |o| o.len())
            }
            Work::Finish(f) => ROW + f.record.len() + f.output.as_ref().map_or(0, |o| o.len()),
            Work::PutBlob { hash, bytes, .. } => ROW + hash.len() + bytes.len(),
            Work::Started { .. } | Work::PruneRuns { .. } | Work::PruneBlobs { .. } => ROW,
        }
    }

    /// An accepted run must survive a power loss once answered.
    fn needs_full_sync(&self) -> bool {
        matches!(self, Work::Accept(_))
    }

    fn apply(&self, conn: &Connection, effects: &mut Effects) -> rusqlite::Result<Done> {
        Ok(match self {
            Work::Accept(runs) => Done::Accepted(ops::accept(conn, runs)?),
            Work::Started { run_id, at_ms } => {
                ops::started(conn, run_id, *at_ms)?;
                Done::Unit
            }
            Work::Journal(step) => {
                ops::journal(conn, step)?;
                Done::Unit
            }
            Work::Finish(row) => {
                ops::finish(conn, row, effects)?;
                Done::Unit
            }
            Work::PruneRuns { bound, limit } => {
                Done::Count(ops::prune_runs(conn, *bound, *limit, effects)?)
            }
            Work::PruneBlobs { before_ms } => Done::Count(ops::prune_blobs(conn, *before_ms)?),
            Work::PutBlob { hash, bytes, at_ms } => {
                ops::put_blob(conn, hash, bytes, *at_ms)?;
                Done::Unit
            }
        })
    }
}

type Reply = oneshot::Sender<Result<Done, StoreError>>;

/// What a SQLite store's writer has done: figures for tests and benches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriteCounters {
    /// Transactions committed.
    pub transactions: u64,
    /// Writes committed.
    pub operations: u64,
    /// About how many bytes they wrote (rows' texts and blobs).
    pub bytes: u64,
    /// Checkpoints run beside the writer.
    pub checkpoints: u64,
}

/// What the writer keeps up to date for readers of the store's figures.
#[derive(Debug, Default)]
pub(super) struct Shared {
    transactions: AtomicU64,
    operations: AtomicU64,
    bytes: AtomicU64,
    pub(super) checkpoints: AtomicU64,
    /// Finished runs kept.
    pub(super) finished: AtomicU64,
    /// The database and WAL files' sizes.
    pub(super) file_bytes: AtomicU64,
}

impl Shared {
    pub(super) fn counters(&self) -> WriteCounters {
        WriteCounters {
            transactions: self.transactions.load(Ordering::Relaxed),
            operations: self.operations.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            checkpoints: self.checkpoints.load(Ordering::Relaxed),
        }
    }

    /// Reads the sizes of the database file and its WAL.
    pub(super) fn measure(&self, path: &std::path::Path) {
        let size = |p: &std::path::Path| fs::metadata(p).map_or(0, |m| m.len());
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let bytes = size(path) + size(std::path::Path::new(&wal));
        self.file_bytes.store(bytes, Ordering::Relaxed);
    }
}

/// The handle of the writer thread; dropping it lets the thread finish what
/// is queued, close the connection and end, and waits for that.
#[derive(Debug)]
pub(super) struct Writer {
    queue: Option<mpsc::UnboundedSender<(Work, Reply)>>,
    thread: Option<JoinHandle<()>>,
    /// Ends after the writer's connection closes; its own closes last,
    /// checkpointing the WAL and removing it.
    _checkpoints: Checkpointer,
}

impl Writer {
    /// Starts the thread on `conn`, a migrated store at `path`.
    pub(super) fn spawn(
        mut conn: Connection,
        path: PathBuf,
        shared: Arc<Shared>,
    ) -> Result<Writer, StoreError> {
        let checkpoints = Checkpointer::spawn(&path, &mut conn, shared.clone())?;
        let (queue, rx) = mpsc::unbounded_channel();
        let thread = std::thread::Builder::new()
            .name("flowhost-store".into())
            .spawn(move || {
                Thread {
                    conn,
                    path,
                    shared,
                    full_sync: None,
                }
                .run(rx)
            })
            .map_err(|e| StoreError::Backend(format!("cannot start the store's writer: {e}")))?;
        Ok(Writer {
            queue: Some(queue),
            thread: Some(thread),
            _checkpoints: checkpoints,
        })
    }

    /// Queues `work` and waits for it to be committed.
    pub(super) async fn write(&self, work: Work) -> Result<Done, StoreError> {
        self.enqueue(work)?.await.map_err(|_| StoreError::Closed)?
    }

    /// Queues `work` now (writes are committed in the order queued); the
    /// answer comes when it is committed.
    pub(super) fn enqueue(
        &self,
        work: Work,
    ) -> Result<oneshot::Receiver<Result<Done, StoreError>>, StoreError> {
        let queue = self.queue.as_ref().ok_or(StoreError::Closed)?;
        let (reply, answer) = oneshot::channel();
        queue.send((work, reply)).map_err(|_| StoreError::Closed)?;
        Ok(answer)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            // The thread ends once the queue is drained.
            let _ = thread.join();
        }
    }
}

/// The writer thread's state.
struct Thread {
    conn: Connection,
    path: PathBuf,
    shared: Arc<Shared>,
    /// The `synchronous` setting in force: `Some(true)` for FULL.
    full_sync: Option<bool>,
}

impl Thread {
    fn run(mut self, mut rx: mpsc::UnboundedReceiver<(Work, Reply)>) {
        let mut batch = Vec::new();
        while let Some(first) = rx.blocking_recv() {
            let mut bytes = first.0.bytes();
            batch.push(first);
            while batch.len() < MAX_OPS && bytes < MAX_BYTES {
                match rx.try_recv() {
                    Ok(next) => {
                        bytes += next.0.bytes();
                        batch.push(next);
                    }
                    Err(_) => break,
                }
            }
            self.commit(&mut batch, bytes);
        }
    }

    /// Runs `batch` in one transaction and answers every write in it.
    /// Every write succeeds, almost always: the batch runs as it is. When one
    /// fails, the transaction is rolled back and run again with each write
    /// in its own savepoint, so that only the failed one is undone.
    fn commit(&mut self, batch: &mut Vec<(Work, Reply)>, bytes: usize) {
        let full = batch.iter().any(|(w, _)| w.needs_full_sync());
        let mut effects = Effects::default();
        let mut done = Vec::with_capacity(batch.len());
        let outcome = self.set_sync(full).and_then(|()| {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            for (work, _) in batch.iter() {
                done.push(work.apply(&tx, &mut effects));
            }
            if done.iter().all(Result::is_ok) {
                return tx.commit();
            }
            drop(tx);
            (effects, done) = (Effects::default(), Vec::with_capacity(batch.len()));
            let mut tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            for (work, _) in batch.iter() {
                let result = tx.savepoint().and_then(|sp| {
                    let d = work.apply(&sp, &mut effects)?;
                    sp.commit()?;
                    Ok(d)
                });
                done.push(result);
            }
            tx.commit()
        });
        match outcome {
            Ok(()) => {
                let shared = &self.shared;
                let ok = done.iter().filter(|d| d.is_ok()).count();
                shared.transactions.fetch_add(1, Ordering::Relaxed);
                shared.operations.fetch_add(ok as u64, Ordering::Relaxed);
                shared.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
                let finished = shared.finished.load(Ordering::Relaxed) as i64 + effects.finished;
                shared
                    .finished
                    .store(finished.max(0) as u64, Ordering::Relaxed);
                shared.measure(&self.path);
                for ((_, reply), result) in batch.drain(..).zip(done) {
                    let _ = reply.send(result.map_err(|e| self.error(e)));
                }
            }
            Err(e) => {
                let why = self.error(e).to_string();
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(StoreError::Backend(why.clone())));
                }
            }
        }
    }

    /// FULL syncs the WAL at every commit; NORMAL leaves that to checkpoints.
    fn set_sync(&mut self, full: bool) -> rusqlite::Result<()> {
        if self.full_sync != Some(full) {
            let level = if full { "FULL" } else { "NORMAL" };
            self.conn.pragma_update(None, "synchronous", level)?;
            self.full_sync = Some(full);
        }
        Ok(())
    }

    fn error(&self, e: rusqlite::Error) -> StoreError {
        super::open::sqlite_error(&super::open::shown(&self.path), e)
    }
}
