//! What only the shared PostgreSQL store does: several servers (here, store
//! instances on one database) acting as the workers of one fleet.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::store::postgres::PostgresStore;
use crate::store::{Accepted, Fleet, Notice, OpenOptions, StoreError};

fn options(lease_ms: u64, capacity: usize) -> OpenOptions {
    OpenOptions {
        queue_capacity: capacity,
        lease: Duration::from_millis(lease_ms),
        ..OpenOptions::default()
    }
}

/// Two workers on one fresh database, and the server holding it.
async fn two_workers(
    lease_ms: u64,
    capacity: usize,
) -> (Arc<ThrowawayPg>, String, PostgresStore, PostgresStore) {
    let (pg, url) = fresh_pg_db();
    let a = pg_store(&url, &options(lease_ms, capacity)).await;
    let b = pg_store(&url, &options(lease_ms, capacity)).await;
    (pg, url, a, b)
}

fn fleet(store: &PostgresStore) -> Arc<dyn Fleet> {
    store.fleet().expect("a shared store has a fleet")
}

fn ids(runs: &[crate::store::Unfinished]) -> Vec<String> {
    runs.iter().map(|u| u.run.run_id.clone()).collect()
}

async fn accept_all(store: &PostgresStore, runs: Vec<NewRun>) {
    let n = runs.len();
    let answers = store.accept(runs).await.unwrap();
    assert_eq!(answers, vec![Accepted::New; n]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claimers_never_share_a_run_and_claim_oldest_first() {
    let (_pg, _url, a, b) = two_workers(30_000, 1000).await;
    let runs = (0..120)
        .map(|i| new_run(&format!("r{i:03}"), "f", 1000 + i))
        .collect();
    accept_all(&a, runs).await;
    let first = fleet(&b).claim(3, &HashMap::new()).await.unwrap();
    assert_eq!(ids(&first), ["r000", "r001", "r002"], "oldest first");
    let claimers: Vec<_> = (0..6)
        .map(|i| {
            let fleet = if i % 2 == 0 { fleet(&a) } else { fleet(&b) };
            tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    let claimed = fleet.claim(4, &HashMap::new()).await.unwrap();
                    if claimed.is_empty() {
                        return got;
                    }
                    got.extend(ids(&claimed));
                }
            })
        })
        .collect();
    let mut all: Vec<String> = ids(&first);
    for claimer in claimers {
        all.extend(claimer.await.unwrap());
    }
    let distinct: BTreeSet<_> = all.iter().cloned().collect();
    assert_eq!(all.len(), 120, "every run claimed once: {all:?}");
    assert_eq!(distinct.len(), 120);
    assert!(
        fleet(&a)
            .claim(10, &HashMap::new())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_with_its_journal_and_the_stale_worker_is_fenced() {
    let (_pg, _url, a, b) = two_workers(400, 1000).await;
    accept_all(&a, vec![new_run("r1", "f", 1)]).await;
    let (fa, fb) = (fleet(&a), fleet(&b));
    assert_ne!(fa.worker_id(), fb.worker_id());
    assert_eq!(ids(&fa.claim(5, &HashMap::new()).await.unwrap()), ["r1"]);
    a.started("r1", at(10)).await.unwrap();
    a.journal("r1", entry("one", Some("1"))).await.unwrap();
    // While A's lease runs, and while A renews it, B gets nothing.
    assert!(fb.claim(5, &HashMap::new()).await.unwrap().is_empty());
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(fa.renew().await.unwrap().is_empty(), "A still holds it");
    }
    assert!(fb.claim(5, &HashMap::new()).await.unwrap().is_empty());
    // A stalls past its lease: B takes the run over, with its journal.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let taken = fb.claim(5, &HashMap::new()).await.unwrap();
    assert_eq!(ids(&taken), ["r1"]);
    assert_eq!(json(&taken[0].steps), json(&vec![entry("one", Some("1"))]));
    assert_eq!(taken[0].started_at, Some(at(10)));
    // A comes back: each of its writes is refused, none lands.
    let fenced = |r: Result<(), StoreError>| matches!(r, Err(StoreError::Fenced { run_id }) if run_id == "r1");
    assert!(fenced(a.started("r1", at(99)).await));
    assert!(fenced(
        a.journal("r1", entry("two", Some("\"stale\""))).await
    ));
    assert!(fenced(
        a.finish(Arc::new(record("r1", "f", "\"stale\""))).await
    ));
    assert_eq!(
        fa.renew().await.unwrap(),
        ["r1"],
        "renew reports the lost run"
    );
    assert!(fa.renew().await.unwrap().is_empty(), "once");
    assert!(
        fenced(a.journal("r1", entry("two", Some("\"stale\""))).await),
        "still fenced"
    );
    // B's writes land.
    b.journal("r1", entry("two", Some("2"))).await.unwrap();
    b.finish(Arc::new(record("r1", "f", "\"b\"")))
        .await
        .unwrap();
    let stored = a.run("r1").await.unwrap().unwrap();
    assert_eq!(
        stored.record.unwrap().output.as_ref().unwrap().get(),
        "\"b\""
    );
    let (_, steps) = a.replay_source("r1").await.unwrap().unwrap();
    assert_eq!(
        json(&steps),
        json(&vec![entry("one", Some("1")), entry("two", Some("2"))])
    );
    assert!(
        fb.renew().await.unwrap().is_empty(),
        "a finished run is not lost"
    );
}

#[tokio::test]
async fn a_released_run_is_claimed_at_once_by_another() {
    let (_pg, _url, a, b) = two_workers(30_000, 1000).await;
    accept_all(&a, vec![new_run("r1", "f", 1), new_run("r2", "f", 2)]).await;
    let (fa, fb) = (fleet(&a), fleet(&b));
    assert_eq!(
        ids(&fa.claim(5, &HashMap::new()).await.unwrap()),
        ["r1", "r2"]
    );
    a.journal("r1", entry("one", Some("1"))).await.unwrap();
    fa.release(&["r1".to_string()]).await.unwrap();
    let taken = fb.claim(5, &HashMap::new()).await.unwrap();
    assert_eq!(ids(&taken), ["r1"]);
    assert_eq!(taken[0].steps.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flow_limits_hold_across_workers_under_concurrent_claims() {
    let (_pg, _url, a, b) = two_workers(30_000, 1000).await;
    let mut runs: Vec<_> = (0..10)
        .map(|i| new_run(&format!("l{i}"), "limited", i))
        .collect();
    runs.extend((0..4).map(|i| new_run(&format!("u{i}"), "free", 100 + i)));
    accept_all(&a, runs).await;
    let limits = HashMap::from([("limited".to_string(), 2u32)]);
    let claimers: Vec<_> = (0..8)
        .map(|i| {
            let fleet = if i % 2 == 0 { fleet(&a) } else { fleet(&b) };
            let limits = limits.clone();
            tokio::spawn(async move { (i % 2, ids(&fleet.claim(3, &limits).await.unwrap())) })
        })
        .collect();
    let mut claimed = Vec::new();
    for claimer in claimers {
        let (worker, got) = claimer.await.unwrap();
        claimed.extend(got.into_iter().map(|id| (worker, id)));
    }
    let limited: Vec<_> = claimed
        .iter()
        .filter(|(_, id)| id.starts_with('l'))
        .collect();
    let free: BTreeSet<_> = claimed
        .iter()
        .filter(|(_, id)| id.starts_with('u'))
        .collect();
    assert_eq!(
        limited.len(),
        2,
        "two of the limited flow fleet-wide: {claimed:?}"
    );
    assert_eq!(
        free.len(),
        4,
        "the other flow is not held back: {claimed:?}"
    );
    // One finishes: one more may start, the oldest waiting.
    let (worker, done) = limited[0];
    let holder = if *worker == 0 { &a } else { &b };
    holder
        .finish(Arc::new(record(done, "limited", "1")))
        .await
        .unwrap();
    let next = fleet(&b).claim(5, &limits).await.unwrap();
    assert_eq!(ids(&next), ["l2"]);
    assert!(fleet(&a).claim(5, &limits).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_queue_capacity_is_exact_across_concurrent_acceptors() {
    let (_pg, _url, a, b) = two_workers(30_000, 10).await;
    let (a, b) = (Arc::new(a), Arc::new(b));
    let tasks: Vec<_> = (0..30)
        .map(|i| {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { store.accept(vec![new_run(&format!("r{i}"), "f", i)]).await })
        })
        .collect();
    let (mut new, mut full) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(answers) => {
                assert_eq!(answers, [Accepted::New]);
                new += 1;
            }
            Err(StoreError::Full { capacity: 10 }) => full += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!((new, full), (10, 20));
    // A batch is accepted whole or not at all.
    let two = vec![new_run("x1", "f", 1), new_run("x2", "f", 2)];
    assert!(matches!(a.accept(two).await, Err(StoreError::Full { .. })));
    assert!(a.run("x1").await.unwrap().is_none());
    // A finished run makes room.
    let first = a.unfinished().await.unwrap()[0].run.run_id.clone();
    a.finish(Arc::new(record(&first, "f", "1"))).await.unwrap();
    assert_eq!(
        b.accept(vec![new_run("y", "f", 1)]).await.unwrap(),
        [Accepted::New]
    );
    assert_eq!(a.unfinished().await.unwrap().len(), 10);
}

/// The next notice within a few seconds.
async fn next(rx: &mut tokio::sync::broadcast::Receiver<Notice>) -> Notice {
    tokio::time::timeout(Duration::from_secs(15), rx.recv())
        .await
        .expect("a notice within 15s")
        .unwrap()
}

#[tokio::test]
async fn notices_reach_every_worker_and_a_lost_listener_resyncs() {
    let (pg, url, a, b) = two_workers(30_000, 1000).await;
    let mut heard = fleet(&b).subscribe();
    let started = Instant::now();
    accept_all(&a, vec![new_run("r1", "f", 1), new_run("r2", "f", 2)]).await;
    assert_eq!(next(&mut heard).await, Notice::Queued);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        ids(&fleet(&a).claim(1, &HashMap::new()).await.unwrap()),
        ["r1"]
    );
    a.finish(Arc::new(record("r1", "f", "1"))).await.unwrap();
    assert_eq!(next(&mut heard).await, Notice::Finished("r1".into()));
    fleet(&b).request_cancel("r2").await.unwrap();
    assert_eq!(next(&mut heard).await, Notice::Cancel("r2".into()));
    // Every connection to the database is cut: the listener comes back and
    // says notices may have been missed; the writer reconnects too.
    let db = url.rsplit('/').next().unwrap();
    pg.psql(&format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
         WHERE datname = '{db}' AND pid <> pg_backend_pid()"
    ));
    assert_eq!(next(&mut heard).await, Notice::Resync);
    accept_all(&a, vec![new_run("r3", "f", 3)]).await;
    assert_eq!(next(&mut heard).await, Notice::Queued);
}

#[tokio::test]
async fn a_run_cancelled_while_queued_finishes_unclaimed_or_is_claimed_to_be_cancelled() {
    let (_pg, _url, a, b) = two_workers(30_000, 1000).await;
    accept_all(&a, vec![new_run("q", "f", 1), new_run("held", "f", 2)]).await;
    let (fa, fb) = (fleet(&a), fleet(&b));
    assert_eq!(ids(&fb.claim(1, &HashMap::new()).await.unwrap()), ["q"]);
    // Given back with a cancel asked for: whoever claims it cancels it.
    fa.request_cancel("q").await.unwrap();
    fb.release(&["q".to_string()]).await.unwrap();
    let again = fa.claim(1, &HashMap::new()).await.unwrap();
    assert_eq!(ids(&again), ["q"]);
    assert!(
        again[0].cancel_requested,
        "the claimer is told to cancel it"
    );
    fa.release(&["q".to_string()]).await.unwrap();
    let mut cancelled = record("q", "f", "null");
    cancelled.status = RunStatus::Cancelled;
    assert!(
        fa.finish_unclaimed(Arc::new(cancelled.clone()))
            .await
            .unwrap()
    );
    assert!(
        !fa.finish_unclaimed(Arc::new(cancelled)).await.unwrap(),
        "finished already"
    );
    assert_eq!(
        a.run("q").await.unwrap().unwrap().status,
        RunStatus::Cancelled
    );
    // A run a worker holds is its to cancel.
    assert_eq!(ids(&fb.claim(5, &HashMap::new()).await.unwrap()), ["held"]);
    fa.request_cancel("held").await.unwrap();
    let mut other = record("held", "f", "null");
    other.status = RunStatus::Cancelled;
    assert!(!fa.finish_unclaimed(Arc::new(other)).await.unwrap());
    let unfinished = a.unfinished().await.unwrap();
    assert_eq!(ids(&unfinished), ["held"]);
    assert!(unfinished[0].cancel_requested);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn servers_opening_together_migrate_once() {
    let (pg, url) = fresh_pg_db();
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { pg_store(&url, &OpenOptions::default()).await })
        })
        .collect();
    for open in opens {
        open.await.unwrap();
    }
    let db = url.rsplit('/').next().unwrap();
    assert_eq!(
        pg.psql_in(db, "SELECT count(*), max(version) FROM flowhost_schema"),
        "1|2"
    );
}

#[tokio::test]
async fn a_newer_schema_is_refused_and_left_untouched() {
    let (pg, url) = fresh_pg_db();
    let store = pg_store(&url, &OpenOptions::default()).await;
    accept_all(&store, vec![new_run("r1", "f", 1)]).await;
    drop(store);
    let db = url.rsplit('/').next().unwrap();
    pg.psql_in(db, "UPDATE flowhost_schema SET version = 99");
    let state = "SELECT (SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class
                         WHERE relnamespace = 'public'::regnamespace),
                        (SELECT string_agg(run_id || status, ',') FROM runs)";
    let before = pg.psql_in(db, state);
    let e = PostgresStore::open(&url.parse().unwrap(), &OpenOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::TooNew {
                found: 99,
                known: 2,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains(&url), "{e}");
    assert_eq!(pg.psql_in(db, state), before);
}

#[tokio::test]
async fn an_unreachable_database_is_named_without_its_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://app:s3cret@127.0.0.1:{port}/runs");
    let started = Instant::now();
    let e = PostgresStore::open(&url.parse().unwrap(), &OpenOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Unreachable { .. }), "{e}");
    let text = e.to_string();
    assert!(
        text.contains(&format!("postgres://app@127.0.0.1:{port}/runs")),
        "{text}"
    );
    assert!(!text.contains("s3cret"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn describe_hides_the_password() {
    let (_pg, url) = fresh_pg_db();
    let with_password = url.replace("postgres@", "postgres:hunter2@");
    let store = pg_store(&with_password, &OpenOptions::default()).await;
    assert_eq!(store.describe(), url);
    assert!(store.durable());
}

#[tokio::test]
async fn a_database_gone_away_fails_ready_fast_and_writes_within_the_retry_window() {
    let pg = ThrowawayPg::start();
    let url = pg.create_db("gone");
    let store = PostgresStore::open_with(
        &url.parse().unwrap(),
        &OpenOptions::default(),
        Duration::from_secs(1),
    )
    .await
    .unwrap();
    store.ready().await.unwrap();
    accept_all(&store, vec![new_run("r1", "f", 1)]).await;
    drop(pg);
    let started = Instant::now();
    let e = store.ready().await.unwrap_err();
    assert!(matches!(e, StoreError::Unreachable { .. }), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let started = Instant::now();
    let e = store.accept(vec![new_run("r2", "f", 2)]).await.unwrap_err();
    assert!(matches!(e, StoreError::Unreachable { .. }), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn step_results_take_at_most_one_round_trip_each_under_load() {
    let (_pg, url) = fresh_pg_db();
    let store = Arc::new(pg_store(&url, &OpenOptions::default()).await);
    let runs: Vec<_> = (0..64).map(|i| new_run(&format!("r{i}"), "f", i)).collect();
    accept_all(&store, runs).await;
    let before = store.write_counters();
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let id = format!("r{i}");
                store.started(&id, at(1)).await.unwrap();
                for step in ["a", "b", "c"] {
                    store.journal(&id, entry(step, Some("1"))).await.unwrap();
                }
                store.finish(Arc::new(record(&id, "f", "1"))).await.unwrap();
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let after = store.write_counters();
    let writes = after.operations - before.operations;
    let trips = after.round_trips - before.round_trips;
    assert_eq!(writes, 64 * 5);
    assert!(trips <= writes, "{trips} round trips for {writes} writes");
    eprintln!("{writes} writes of 64 runs in {trips} round trips");
}

#[tokio::test]
async fn claiming_and_listing_use_their_indexes_beside_many_finished_runs() {
    let (pg, url) = fresh_pg_db();
    let store = pg_store(&url, &OpenOptions::default()).await;
    let db = url.rsplit('/').next().unwrap();
    // 300,000 finished runs (the planner's choices are those of a million:
    // no scan of the table grows with them), then a few queued ones.
    pg.psql_in(
        db,
        "INSERT INTO runs (run_id, flow, flow_version, plugins, input, accepted_ms, status,
                           finished_at, record)
         SELECT 'old' || i, 'f' || (i % 10), 'v', '{}', '{}', i, 'succeeded', now(), '{}'
         FROM generate_series(1, 300000) i;
         ANALYZE runs",
    );
    let runs = (0..20)
        .map(|i| new_run(&format!("new{i:02}"), "f1", 400_000 + i))
        .collect();
    accept_all(&store, runs).await;
    let plan = |sql: &str| pg.psql_in(db, &format!("EXPLAIN {sql}"));
    let claim = plan(
        "SELECT run_id, flow FROM runs
         WHERE finished_at IS NULL AND (owner IS NULL OR lease_until < now())
           AND flow <> ALL('{}'::text[]) AND (NULL::text IS NULL OR run_id = NULL)
         ORDER BY accepted_ms, run_id LIMIT 8 FOR UPDATE SKIP LOCKED",
    );
    assert!(claim.contains("runs_unfinished"), "{claim}");
    for (sql, index) in [
        (
            "SELECT run_id FROM runs ORDER BY accepted_ms DESC, run_id DESC LIMIT 51",
            "runs_newest",
        ),
        (
            "SELECT run_id FROM runs WHERE flow = 'f3' AND (accepted_ms, run_id) < (5000, 'x')
             ORDER BY accepted_ms DESC, run_id DESC LIMIT 51",
            "runs_flow_newest",
        ),
        (
            "SELECT run_id FROM runs WHERE status = 'queued'
             ORDER BY accepted_ms DESC, run_id DESC LIMIT 51",
            "runs_status_newest",
        ),
    ] {
        let listing = plan(sql);
        assert!(
            listing.contains(index) && !listing.contains("Seq Scan"),
            "{sql}:\n{listing}"
        );
    }
    let started = Instant::now();
    let claimed = fleet(&store).claim(8, &HashMap::new()).await.unwrap();
    assert_eq!(claimed.len(), 8);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_batch_larger_than_the_queue_fits_whole_when_nothing_waits() {
    let (_pg, _url, a, b) = two_workers(30_000, 3).await;
    let event: Vec<_> = (0..5).map(|i| new_run(&format!("e{i}"), "f", i)).collect();
    assert_eq!(
        a.accept(event).await.unwrap().len(),
        5,
        "an empty queue takes it whole"
    );
    assert!(matches!(
        b.accept(vec![new_run("late", "f", 9)]).await,
        Err(StoreError::Full { capacity: 3 })
    ));
    // Claimed runs no longer wait: their places are free again.
    assert_eq!(fleet(&b).claim(5, &HashMap::new()).await.unwrap().len(), 5);
    assert_eq!(
        b.accept(vec![new_run("late", "f", 9)]).await.unwrap(),
        [Accepted::New]
    );
}

#[tokio::test]
async fn runs_claimed_as_they_are_accepted_are_held_by_the_acceptor_alone() {
    let (_pg, _url, a, b) = two_workers(30_000, 10).await;
    let (fa, fb) = (fleet(&a), fleet(&b));
    let runs = vec![new_run("mine", "f", 1), new_run("queued", "f", 2)];
    let answers = fa.accept_claiming(runs, vec![true, false]).await.unwrap();
    assert_eq!(
        answers,
        [(Accepted::New, true), (Accepted::New, false)],
        "only the flagged run is held"
    );
    assert_eq!(fa.waiting(), 1, "a claimed run does not wait");
    assert_eq!(
        ids(&fb.claim(5, &HashMap::new()).await.unwrap()),
        ["queued"]
    );
    // Its writes are the acceptor's; the other worker's are not applied.
    a.started("mine", at(5)).await.unwrap();
    a.finish(Arc::new(record("mine", "f", "1"))).await.unwrap();
    assert_eq!(
        b.run("mine").await.unwrap().unwrap().status,
        RunStatus::Succeeded
    );
    // An idempotency key already used answers the run, claimed by nobody new.
    let again = vec![keyed("k2", "f", "key"), keyed("k3", "f", "key")];
    let answers = fb.accept_claiming(again, vec![true, true]).await.unwrap();
    assert_eq!(answers[0], (Accepted::New, true));
    assert_eq!(
        answers[1],
        (
            Accepted::Existing {
                run_id: "k2".into()
            },
            false
        )
    );
}
