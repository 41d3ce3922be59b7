//! What only the SQLite store does: it survives its process, commits in
//! groups, prunes, and shares its file with readers.

use std::fs;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::*;
use crate::store::{Accepted, ListQuery, Retention, StoreError};

/// Everything a store holds that the trait can read, as JSON.
async fn contents(store: &dyn Store, ids: &[&str], blobs: &[&str]) -> serde_json::Value {
    let unfinished: Vec<_> = store
        .unfinished()
        .await
        .unwrap()
        .into_iter()
        .map(|u| serde_json::json!([json(&u.run), json(&u.started_at), json(&u.steps)]))
        .collect();
    let mut runs = Vec::new();
    for id in ids {
        let run = store.run(id).await.unwrap().unwrap();
        let record = run.record.as_deref().map(json);
        let source = store.replay_source(id).await.unwrap().unwrap();
        runs.push(serde_json::json!([
            run.flow,
            run.status,
            json(&run.accepted_at),
            record,
            json(&source.0),
            json(&source.1)
        ]));
    }
    let page = store
        .list(ListQuery {
            limit: 1000,
            ..ListQuery::default()
        })
        .await
        .unwrap();
    let listed: Vec<_> = page
        .runs
        .iter()
        .map(|r| (r.run_id.clone(), r.status))
        .collect();
    let mut kept = Vec::new();
    for hash in blobs {
        kept.push(store.blob(hash).await.unwrap());
    }
    serde_json::json!({
        "unfinished": unfinished, "runs": runs, "listed": json(&listed), "blobs": kept,
        "finished": store.usage().0,
    })
}

#[tokio::test]
async fn a_reopened_store_holds_everything_it_held() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deep/er/runs.db");
    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(store.describe(), format!("sqlite:{}", path.display()));
    store
        .accept(vec![
            keyed("a", "orders", "k"),
            new_run("b", "orders", 2000),
            derived("c", "a"),
        ])
        .await
        .unwrap();
    store.started("a", at(3000)).await.unwrap();
    store.started("b", at(3001)).await.unwrap();
    store
        .journal("a", entry("fetch", Some("[1,2]")))
        .await
        .unwrap();
    let mut waiting = entry("price", None);
    waiting.retry_at = Some(at(9000));
    store.journal("a", waiting).await.unwrap();
    store.journal("b", entry("fetch", Some("3"))).await.unwrap();
    let big = format!("\"{}\"", "x".repeat(1 << 20));
    store
        .finish(Arc::new(record("b", "orders", &big)))
        .await
        .unwrap();
    store
        .put_blob("h", Arc::from(&b"plugin bytes"[..]))
        .await
        .unwrap();
    let before = contents(&store, &["a", "b", "c"], &["h", "missing"]).await;
    drop(store);

    let store = SqliteStore::open(&path).await.unwrap();
    let after = contents(&store, &["a", "b", "c"], &["h", "missing"]).await;
    assert_eq!(after, before);
    assert_eq!(after["finished"], 1);
    assert_eq!(after["unfinished"].as_array().unwrap().len(), 2);
    let b = store.run("b").await.unwrap().unwrap().record.unwrap();
    assert_eq!(
        b.output.as_ref().unwrap().get(),
        big,
        "the 1 MB output whole"
    );
    // The key is still taken after the restart.
    let again = store.accept(vec![keyed("z", "orders", "k")]).await.unwrap();
    assert_eq!(again, [Accepted::Existing { run_id: "a".into() }]);
    drop(store);
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    assert!(!wal.exists(), "a closed store leaves no WAL behind");
    // A WAL-mode file of schema version 1, marked as a flowhost store.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let pragma = |name: &str| -> String {
        conn.query_row(&format!("PRAGMA {name}"), [], |r| {
            r.get::<_, rusqlite::types::Value>(0)
        })
        .map(|v| format!("{v:?}"))
        .unwrap()
    };
    assert_eq!(pragma("journal_mode"), "Text(\"wal\")");
    assert_eq!(pragma("auto_vacuum"), "Integer(2)", "incremental");
    assert_eq!(pragma("user_version"), "Integer(3)");
    assert_eq!(
        pragma("application_id"),
        format!("Integer({})", 0x666c_6f77)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_share_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    let store = Arc::new(SqliteStore::open(&path).await.unwrap());
    let runs = (0..64).map(|i| new_run(&format!("r{i}"), "f", i)).collect();
    store.accept(runs).await.unwrap();
    let before = store.write_counters();
    assert_eq!((before.transactions, before.operations), (1, 1));
    // Another connection holds the write lock, as a slow commit would: the
    // writes queue up meanwhile.
    let blocker = rusqlite::Connection::open(&path).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let writes = (0..64).map(|i| {
        let store = store.clone();
        async move {
            let output = format!("{{\"i\":{i}}}");
            store
                .journal(&format!("r{i}"), entry("step", Some(&output)))
                .await
        }
    });
    let writes = tokio::spawn(futures::future::join_all(writes));
    tokio::time::sleep(Duration::from_millis(300)).await;
    blocker.execute_batch("ROLLBACK").unwrap();
    drop(blocker);
    for result in writes.await.unwrap() {
        result.unwrap();
    }
    let after = store.write_counters();
    let (txs, ops) = (
        after.transactions - before.transactions,
        after.operations - before.operations,
    );
    assert_eq!(ops, 64);
    assert!(txs <= 4, "64 concurrent writes took {txs} transactions");
    assert!(after.bytes > before.bytes + 64 * 10);
    for i in [0, 63] {
        let (_, steps) = store
            .replay_source(&format!("r{i}"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            steps[0].output.as_ref().unwrap().get(),
            format!("{{\"i\":{i}}}")
        );
    }
}

#[tokio::test]
async fn an_accepted_batch_is_all_or_none() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("runs.db"))
        .await
        .unwrap();
    store.accept(vec![new_run("taken", "f", 1)]).await.unwrap();
    let err = store
        .accept(vec![new_run("fresh", "f", 2), new_run("taken", "f", 3)])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "{err}");
    assert!(
        store.run("fresh").await.unwrap().is_none(),
        "the batch was undone"
    );
    // The writer goes on.
    assert_eq!(
        store.accept(vec![new_run("next", "f", 4)]).await.unwrap(),
        [Accepted::New]
    );
}

#[tokio::test]
async fn pruning_removes_old_finished_runs_and_unused_blobs_in_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let n = 1_203;
    let runs = (0..n)
        .map(|i| new_run(&format!("r{i:04}"), "f", i))
        .collect();
    store.accept(runs).await.unwrap();
    // Finished in order: r0000 first.
    for i in 0..n - 3 {
        let id = format!("r{i:04}");
        store.journal(&id, entry("s", Some("1"))).await.unwrap();
        store.finish(Arc::new(record(&id, "f", "1"))).await.unwrap();
    }
    assert_eq!(store.usage().0, n as usize - 3);
    let old = SystemTime::now();
    store
        .put_blob("unused", Arc::from(&b"u"[..]))
        .await
        .unwrap();
    store
        .put_blob("flow-f-v1", Arc::from(&b"f"[..]))
        .await
        .unwrap();
    store
        .put_blob("hash-price-2", Arc::from(&b"p"[..]))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let age = old.elapsed().unwrap();

    let before = store.write_counters();
    let keep = Retention {
        max_age: Duration::from_secs(3600),
        max_runs: 100,
    };
    let removed = store.prune(keep).await.unwrap();
    assert_eq!(removed, n as usize - 3 - 100);
    let txs = store.write_counters().transactions - before.transactions;
    assert!(
        txs >= 3,
        "1,100 runs in chunks of 500 took {txs} transactions"
    );
    assert_eq!(store.usage().0, 100);
    // The most recently finished are kept; unfinished ones are never pruned.
    assert!(store.run("r1099").await.unwrap().is_none());
    assert!(store.replay_source("r1099").await.unwrap().is_none());
    assert!(store.run("r1100").await.unwrap().unwrap().record.is_some());
    let unfinished = store.unfinished().await.unwrap();
    assert_eq!(unfinished.len(), 3);
    // Blobs put within max_age stay.
    assert!(store.blob("unused").await.unwrap().is_some());
    // With a shorter age: every finished run goes, and the blobs put
    // before it that no unfinished run names.
    store.put_blob("fresh", Arc::from(&b"n"[..])).await.unwrap();
    let short = Retention {
        max_age: age - Duration::from_millis(10),
        max_runs: 1000,
    };
    assert_eq!(store.prune(short).await.unwrap(), 100);
    assert_eq!(store.usage().0, 0);
    assert_eq!(store.unfinished().await.unwrap().len(), 3);
    assert!(store.blob("unused").await.unwrap().is_none());
    assert!(
        store.blob("flow-f-v1").await.unwrap().is_some(),
        "an unfinished run's flow"
    );
    assert!(
        store.blob("hash-price-2").await.unwrap().is_some(),
        "an unfinished run's plugin"
    );
    assert!(
        store.blob("fresh").await.unwrap().is_some(),
        "put within max_age"
    );
    let (_, bytes) = store.usage();
    assert!(bytes > 0);
    drop(store);
    assert_eq!(integrity(&path), "ok");
}

/// `PRAGMA integrity_check` of a closed store.
fn integrity(path: &Path) -> String {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_file_is_sound_after_a_mixed_workload() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).await.unwrap());
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..20 {
                    let id = format!("t{t}-{i}");
                    let mut run = new_run(&id, "f", 1000 + i);
                    run.idempotency_key = Some(format!("k{}", i % 7));
                    if store.accept(vec![run]).await.unwrap() != [Accepted::New] {
                        continue;
                    }
                    store.started(&id, at(2000)).await.unwrap();
                    let big = format!("[\"{}\"]", "y".repeat(10_000 * (i as usize % 3)));
                    store.journal(&id, entry("a", Some(&big))).await.unwrap();
                    store.journal(&id, entry("a", Some("1"))).await.unwrap();
                    if i % 2 == 0 {
                        store
                            .finish(Arc::new(record(&id, "f", &big)))
                            .await
                            .unwrap();
                    }
                    store
                        .put_blob(&format!("b{i}"), Arc::from(&[t as u8; 100][..]))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let retention = Retention {
        max_age: Duration::from_secs(60),
        max_runs: 2,
    };
    store.prune(retention).await.unwrap();
    assert_eq!(store.usage().0, 2);
    drop(store);
    assert_eq!(integrity(&path), "ok");
}

#[tokio::test]
async fn a_reader_reads_beside_the_server_and_cannot_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_file(dir.path()).await;
    let server = SqliteStore::open(&path).await.unwrap();
    let reader = SqliteStore::open_reader(&path).await.unwrap();
    assert_eq!(reader.usage().0, 10);
    let page = reader
        .list(ListQuery {
            limit: 5,
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page.runs.len(), 5);
    assert!(reader.run("r3").await.unwrap().unwrap().record.is_some());
    // It sees what the server commits after it opened.
    server.accept(vec![new_run("late", "f", 9)]).await.unwrap();
    assert!(reader.run("late").await.unwrap().is_some());
    let err = reader.accept(vec![new_run("x", "f", 1)]).await.unwrap_err();
    assert!(matches!(err, StoreError::ReadOnly { .. }), "{err}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    // A second server is refused while the first runs, not the reader.
    let err = SqliteStore::open(&path).await.unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err}");
    drop(reader);
    assert!(server.run("late").await.unwrap().is_some());
}

#[tokio::test]
async fn a_reader_never_creates_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("none.db");
    let err = SqliteStore::open_reader(&path).await.unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains(&path.display().to_string()) && message.contains("does not exist"),
        "{message}"
    );
    assert!(!path.exists());
}

/// Copies a store's files as they are (a `kill -9` leaves them so), with or
/// without its `-shm` index.
fn copy_live(from: &Path, to: &Path, with_shm: bool) {
    let mut suffixes = vec!["", "-wal"];
    if with_shm {
        suffixes.push("-shm");
    }
    for suffix in suffixes {
        let file = |p: &Path| PathBuf::from(format!("{}{suffix}", p.display()));
        fs::copy(file(from), file(to)).unwrap();
    }
}

#[tokio::test]
async fn a_store_left_by_a_killed_server_opens_with_every_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    let store = SqliteStore::open(&path).await.unwrap();
    store
        .accept((0..50).map(|i| new_run(&format!("r{i}"), "f", i)).collect())
        .await
        .unwrap();
    for i in 0..50 {
        let id = format!("r{i}");
        store.started(&id, at(100)).await.unwrap();
        store.journal(&id, entry("a", Some("1"))).await.unwrap();
        if i % 2 == 0 {
            store.finish(Arc::new(record(&id, "f", "2"))).await.unwrap();
        }
    }
    let wal = fs::metadata(format!("{}-wal", path.display())).unwrap();
    assert!(
        wal.len() > 0,
        "the commits are in the WAL, not yet in the file"
    );
    for with_shm in [true, false] {
        let copy = dir.path().join(format!("copy-{with_shm}.db"));
        copy_live(&path, &copy, with_shm);
        for reader in [true, false] {
            let copied = if reader {
                SqliteStore::open_reader(&copy).await
            } else {
                SqliteStore::open(&copy).await
            };
            let copied = copied.unwrap_or_else(|e| panic!("shm {with_shm}, reader {reader}: {e}"));
            let unfinished = copied.unfinished().await.unwrap();
            assert_eq!(unfinished.len(), 25, "shm {with_shm}, reader {reader}");
            assert_eq!(unfinished[0].steps.len(), 1);
            assert_eq!(copied.usage().0, 25);
        }
        assert_eq!(integrity(&copy), "ok");
    }
}

#[tokio::test]
async fn large_outputs_are_checkpointed_beside_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let size = |p: &Path| fs::metadata(p).unwrap().len();
    let before = size(&path);
    let runs = (0..6).map(|i| new_run(&format!("r{i}"), "f", i)).collect();
    store.accept(runs).await.unwrap();
    let big = format!("\"{}\"", "z".repeat(1 << 20));
    for i in 0..6 {
        let id = format!("r{i}");
        store.journal(&id, entry("a", Some(&big))).await.unwrap();
    }
    assert_eq!(
        store.write_counters().transactions,
        7,
        "one write at a time"
    );
    let waited = std::time::Instant::now();
    while store.write_counters().checkpoints == 0 {
        assert!(
            waited.elapsed() < Duration::from_secs(10),
            "no checkpoint ran"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The WAL's pages were copied into the database file.
    assert!(size(&path) > before + (4 << 20), "{} bytes", size(&path));
    let (_, steps) = store.replay_source("r5").await.unwrap().unwrap();
    assert_eq!(steps[0].output.as_ref().unwrap().get(), big);
}

#[tokio::test]
async fn a_store_of_schema_version_1_is_migrated_and_keeps_its_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let accepted = store.accept(vec![new_run("old", "f", 1000)]).await;
    assert_eq!(accepted.unwrap(), [Accepted::New]);
    drop(store);
    // Back to what version 1 wrote: no hop column, no kv table.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("ALTER TABLE runs DROP COLUMN hop; DROP TABLE kv; PRAGMA user_version = 1;")
        .unwrap();
    drop(conn);

    let store = SqliteStore::open(&path).await.unwrap();
    let unfinished = store.unfinished().await.unwrap();
    assert_eq!(unfinished.len(), 1);
    assert_eq!(unfinished[0].run.run_id, "old");
    assert_eq!(unfinished[0].run.hop, 0, "a run from before hops were kept");
    let accepted = store.accept(vec![new_run("new", "f", 2000)]).await;
    assert_eq!(accepted.unwrap(), [Accepted::New]);
    let source = store.replay_source("new").await.unwrap().unwrap();
    assert_eq!(source.0.hop, 3);
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 3);
}
