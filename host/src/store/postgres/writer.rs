//! The writer: one task commits every write in groups (group commit).
//!
//! Every write is a message with a reply. The task waits for the first,
//! takes everything queued behind it (up to [`MAX_OPS`]), and sends the
//! whole transaction as one pipeline: `BEGIN`, a statement per write,
//! `COMMIT`, in one round trip ([`pipelined`]). A group with accepts takes
//! one more first: the fleet-wide queue count under an advisory lock, so
//! that the capacity holds exactly across servers.
//!
//! Every statement can run twice with the effect of once: a run is inserted
//! by id `ON CONFLICT DO NOTHING`, journal entries are upserts, fenced
//! writes name their claim's token. So when the connection breaks (even
//! after `COMMIT` went out), the group is sent again on a new connection,
//! with backoff, for at most the retry window; then every write in it fails
//! with [`StoreError::Unreachable`]. A statement that fails for another
//! reason undoes its group, which is then run again a write at a time, so
//! that only that write fails.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use deadpool_postgres::{Object, Pool};
use futures::future::{BoxFuture, MaybeDone, maybe_done, poll_fn};
use tokio::sync::{mpsc, oneshot};

use super::open::{pg_error, pool_error, transient};
use super::ops::{self, FinishRow, Out, RunRow, Step, StepRow};
use crate::store::{Accepted, StoreError};

/// The most writes one transaction takes.
const MAX_OPS: usize = 256;
/// The transaction-level advisory lock accepts take ("flowaccp").
const ACCEPT_LOCK: i64 = 0x666c_6f77_6163_6370;

/// One write. `token` is the claim the write was made under (`None`: this
/// worker holds no claim on the run).
#[derive(Debug)]
pub(super) enum Work {
    /// Runs to insert; each one with an owner is claimed by it at once.
    Accept {
        runs: Vec<RunRow>,
        owners: Vec<Option<String>>,
        /// The lease of those claims, in seconds.
        lease: f64,
    },
    Started {
        run_id: String,
        at_ms: i64,
        token: Option<i64>,
    },
    Journal {
        row: StepRow,
        token: Option<i64>,
    },
    Finish {
        row: FinishRow,
        token: Option<i64>,
    },
    FinishUnclaimed(FinishRow),
    Cancel(String),
}

/// What a write gave.
#[derive(Debug)]
pub(super) enum Done {
    /// Each run's answer, and the claim token of a run claimed at accept.
    Accepted(Vec<(Accepted, Option<i64>)>),
    /// Whether the write changed its row (a fenced write that did not was
    /// refused).
    Applied(bool),
}

type Reply = oneshot::Sender<Result<Done, StoreError>>;

/// What the writer has done: figures for tests, benches and the usage.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) transactions: AtomicU64,
    pub(super) operations: AtomicU64,
    pub(super) round_trips: AtomicU64,
    /// Finished runs this server recorded since the usage was last counted.
    pub(super) finished: AtomicU64,
    /// Runs waiting for a claim fleet-wide, as this server's last accept or
    /// claim counted them.
    pub(super) waiting: AtomicU64,
}

/// What the writer needs besides its pool.
#[derive(Debug, Clone)]
pub(super) struct Settings {
    /// The database, for messages.
    pub(super) what: String,
    /// The fleet-wide queue capacity.
    pub(super) capacity: usize,
    /// How long a group is retried while the database is away.
    pub(super) retry_for: Duration,
}

/// The handle of the writer task: dropping it lets the task commit what is
/// queued and end.
#[derive(Debug)]
pub(super) struct Writer {
    queue: mpsc::UnboundedSender<(Work, Reply)>,
}

impl Writer {
    pub(super) fn spawn(pool: Pool, settings: Settings, counters: Arc<Counters>) -> Writer {
        let (queue, rx) = mpsc::unbounded_channel();
        let task = Task {
            pool,
            settings,
            counters,
            client: None,
        };
        tokio::spawn(task.run(rx));
        Writer { queue }
    }

    /// Queues `work` now (writes commit in the order queued); the answer
    /// comes once it is committed.
    pub(super) fn enqueue(
        &self,
        work: Work,
    ) -> Result<oneshot::Receiver<Result<Done, StoreError>>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((work, reply))
            .map_err(|_| StoreError::Closed)?;
        Ok(answer)
    }
}

struct Task {
    pool: Pool,
    settings: Settings,
    counters: Arc<Counters>,
    client: Option<Object>,
}

/// Why a group did not commit.
enum Failure {
    /// The database was away for the whole retry window.
    Away(StoreError),
    /// A statement failed: the group was undone.
    Statement(StoreError),
}

impl Task {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<(Work, Reply)>) {
        let mut batch = Vec::new();
        while let Some(first) = rx.recv().await {
            batch.push(first);
            while batch.len() < MAX_OPS {
                match rx.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            self.commit(&mut batch).await;
        }
    }

    async fn commit(&mut self, batch: &mut Vec<(Work, Reply)>) {
        let works: Vec<&Work> = batch.iter().map(|(w, _)| w).collect();
        let answers = match self.retrying(&works).await {
            Ok(answers) => answers,
            Err(Failure::Statement(_)) if works.len() > 1 => {
                let mut answers = Vec::with_capacity(works.len());
                for work in &works {
                    answers.push(match self.retrying(std::slice::from_ref(work)).await {
                        Ok(mut one) => one.pop().unwrap_or(Err(StoreError::Closed)),
                        Err(Failure::Statement(e) | Failure::Away(e)) => Err(e),
                    });
                }
                answers
            }
            Err(Failure::Statement(e) | Failure::Away(e)) => {
                works.iter().map(|_| Err(clone_error(&e))).collect()
            }
        };
        drop(works);
        for ((_, reply), answer) in batch.drain(..).zip(answers) {
            let _ = reply.send(answer);
        }
    }

    /// Commits `works` in one transaction, again on a new connection while
    /// the database is away, for at most the retry window.
    async fn retrying(
        &mut self,
        works: &[&Work],
    ) -> Result<Vec<Result<Done, StoreError>>, Failure> {
        let deadline = Instant::now() + self.settings.retry_for;
        let mut delay = Duration::from_millis(50);
        loop {
            let what = &self.settings.what;
            let outcome = match connection(&mut self.client, &self.pool, what).await {
                Ok(client) => attempt(client, works, &self.settings, &self.counters)
                    .await
                    .map_err(|e| (transient(&e), pg_error(what, e))),
                Err(e) => Err((matches!(e, StoreError::Unreachable { .. }), e)),
            };
            match outcome {
                Ok(answers) => return Ok(answers),
                Err((false, e)) => return Err(Failure::Statement(e)),
                Err((true, e)) => {
                    self.client = None;
                    if Instant::now() + delay > deadline {
                        return Err(Failure::Away(e));
                    }
                    tracing::warn!(error = %e, "the store's database is away; retrying the writes");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
            }
        }
    }
}

/// The writer's connection, taken from the pool when it has none.
async fn connection<'a>(
    client: &'a mut Option<Object>,
    pool: &Pool,
    what: &str,
) -> Result<&'a Object, StoreError> {
    if client.is_none() {
        *client = Some(pool.get().await.map_err(|e| pool_error(what, e))?);
    }
    client.as_ref().ok_or(StoreError::Closed)
}

/// The same error again, for each write of a failed group.
fn clone_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unreachable { what, why } => StoreError::Unreachable {
            what: what.clone(),
            why: why.clone(),
        },
        StoreError::Closed => StoreError::Closed,
        other => StoreError::Backend(other.to_string()),
    }
}

/// Runs `works` in one transaction on `client`: one round trip, two with
/// accepts. `Err`: the transaction did not commit.
async fn attempt(
    client: &Object,
    works: &[&Work],
    settings: &Settings,
    counters: &Counters,
) -> Result<Vec<Result<Done, StoreError>>, tokio_postgres::Error> {
    let stmts = ops::Statements::prepare(client).await?;
    let accepting: Vec<&Vec<RunRow>> = works
        .iter()
        .filter_map(|w| match w {
            Work::Accept { runs, .. } => Some(runs),
            _ => None,
        })
        .collect();
    // Which accepts fit in the queue; `None`: no accepts, BEGIN still to send.
    let mut waiting = None;
    let mut room = None;
    if !accepting.is_empty() {
        let ids: Vec<&str> = accepting
            .iter()
            .flat_map(|runs| runs.iter().map(|r| r.run_id.as_str()))
            .collect();
        let first: Vec<Step<'_>> = vec![
            Box::pin(async { client.batch_execute("BEGIN").await.map(|()| Out::Nothing) }),
            Box::pin(async {
                client
                    .execute(&stmts.accept_lock, &[&ACCEPT_LOCK])
                    .await
                    .map(Out::Count)
            }),
            Box::pin(async {
                client
                    .query(&stmts.count_unfinished, &[&ids])
                    .await
                    .map(Out::Rows)
            }),
        ];
        counters.round_trips.fetch_add(1, Ordering::Relaxed);
        let mut queued = 0usize;
        for out in pipelined(first).await {
            if let Out::Rows(rows) = out? {
                let n: i64 = rows.first().map_or(0, |r| r.get(0));
                queued = usize::try_from(n).unwrap_or(0);
            }
        }
        room = Some(settings.capacity.saturating_sub(queued));
        waiting = Some(queued);
    }
    let mut fits = Vec::with_capacity(works.len());
    let mut steps: Vec<Step<'_>> = Vec::new();
    if room.is_none() {
        steps.push(Box::pin(async {
            client.batch_execute("BEGIN").await.map(|()| Out::Nothing)
        }));
    }
    let mut left = room.unwrap_or(0);
    let mut waiting_runs = 0;
    // Nothing waits: an accept larger than the capacity (an event starting
    // many flows) fits whole, so that a retry always gets past a `Full`.
    let mut empty = left == settings.capacity;
    let mut any_accepted = false;
    for work in works {
        let fit = match work {
            Work::Accept { runs, owners, .. } if runs.len() <= left || empty => {
                left = left.saturating_sub(runs.len());
                let unclaimed = owners.iter().filter(|o| o.is_none()).count();
                waiting_runs += unclaimed;
                empty = false;
                any_accepted |= unclaimed > 0;
                true
            }
            Work::Accept { .. } => false,
            _ => true,
        };
        fits.push(fit);
        if fit {
            steps.extend(ops::statements(client, &stmts, work));
        }
    }
    if any_accepted {
        steps.push(Box::pin(async {
            client
                .batch_execute("NOTIFY flowhost, 'queued'")
                .await
                .map(|()| Out::Nothing)
        }));
    }
    steps.push(Box::pin(async {
        client.batch_execute("COMMIT").await.map(|()| Out::Nothing)
    }));
    counters.round_trips.fetch_add(1, Ordering::Relaxed);
    let outs = pipelined(steps)
        .await
        .into_iter()
        .collect::<Result<Vec<Out>, _>>()?;
    if let Some(before) = waiting {
        counters
            .waiting
            .store((before + waiting_runs) as u64, Ordering::Relaxed);
    }
    // The statements' results, in the order of the works that sent them
    // (BEGIN first when it was sent in this pipeline).
    let mut outs = outs.into_iter().skip(usize::from(room.is_none()));
    let mut answers = Vec::with_capacity(works.len());
    let mut finished = 0;
    for (work, fit) in works.iter().zip(fits) {
        if !fit {
            answers.push(Err(StoreError::Full {
                capacity: settings.capacity,
            }));
            continue;
        }
        let answer = match work {
            Work::Accept { runs, .. } => Ok(Done::Accepted(
                runs.iter().map(|run| accepted(run, outs.next())).collect(),
            )),
            _ => {
                let applied = match outs.next() {
                    Some(Out::Count(n)) => n > 0,
                    Some(Out::Rows(rows)) => !rows.is_empty(),
                    _ => false,
                };
                if applied && matches!(work, Work::Finish { .. } | Work::FinishUnclaimed(_)) {
                    finished += 1;
                }
                Ok(Done::Applied(applied))
            }
        };
        answers.push(answer);
    }
    counters.transactions.fetch_add(1, Ordering::Relaxed);
    counters
        .operations
        .fetch_add(works.len() as u64, Ordering::Relaxed);
    counters.finished.fetch_add(finished, Ordering::Relaxed);
    Ok(answers)
}

/// A run's answer from its insert's row: its own id (inserted now, or by
/// an earlier try of this group), or the run that holds its key; and its
/// claim token when this worker claimed it at accept.
fn accepted(run: &RunRow, out: Option<Out>) -> (Accepted, Option<i64>) {
    let row = match out {
        Some(Out::Rows(rows)) => rows.into_iter().next(),
        _ => None,
    };
    let holder: Option<String> = row.as_ref().map(|r| r.get(0));
    match holder {
        Some(id) if id != run.run_id => (Accepted::Existing { run_id: id }, None),
        _ => (Accepted::New, row.and_then(|r| r.get(1))),
    }
}

/// Runs `steps` on one connection concurrently, first polled in their
/// order. tokio-postgres sends a statement when its future is first polled,
/// so they leave in this order as one pipeline, and the server answers in
/// it: the transaction takes one round trip.
async fn pipelined<'a, T>(steps: Vec<BoxFuture<'a, T>>) -> Vec<T> {
    let mut steps: Vec<MaybeDone<BoxFuture<'a, T>>> = steps.into_iter().map(maybe_done).collect();
    poll_fn(|cx| {
        let mut pending = false;
        for step in steps.iter_mut() {
            pending |= Pin::new(step).poll(cx).is_pending();
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    steps
        .iter_mut()
        .filter_map(|step| Pin::new(step).take_output())
        .collect()
}
