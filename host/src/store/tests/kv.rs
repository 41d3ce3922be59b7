//! Steps' key-value state, the same operations checked against every
//! store's backend (memory, SQLite, PostgreSQL).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::*;
use crate::kv::{KvError, KvStore};
use crate::store::Retention;

/// One operation and what it must answer, written as text.
enum Op {
    Get(&'static str),
    Set(&'static str, &'static str),
    Delete(&'static str),
    Incr(&'static str, i64),
    Cas(&'static str, Option<&'static str>, &'static str),
}

/// What `op` answers, as text: `None`, `Some("v")`, `()`, `true`, `42`, or
/// the error's kind and message.
async fn apply(kv: &dyn KvStore, ns: &str, op: &Op) -> String {
    fn shown<T: std::fmt::Debug>(r: Result<T, KvError>) -> String {
        match r {
            Ok(v) => format!("{v:?}"),
            Err(KvError::Invalid(m)) => format!("invalid: {m}"),
            Err(e) => format!("error: {e:?}"),
        }
    }
    match *op {
        Op::Get(k) => shown(kv.get(ns, k).await),
        Op::Set(k, v) => shown(kv.set(ns, k, v, None).await),
        Op::Delete(k) => shown(kv.delete(ns, k).await),
        Op::Incr(k, d) => shown(kv.increment(ns, k, d).await),
        Op::Cas(k, e, v) => shown(kv.compare_and_swap(ns, k, e, v).await),
    }
}

/// Runs `script` (each operation with the answer it must give) on every
/// backend; an answer ending in `…` need only start with what precedes it.
async fn check(script: &[(Op, &str)]) {
    for Backend { name, store, .. } in backends().await {
        let kv = store.kv();
        for (i, (op, want)) in script.iter().enumerate() {
            let got = apply(kv.as_ref(), "ns", op).await;
            match want.strip_suffix('…') {
                Some(prefix) => assert!(got.starts_with(prefix), "{name} #{i}: {got}"),
                None => assert_eq!(&got, want, "{name} #{i}"),
            }
        }
    }
}

#[tokio::test]
async fn every_backend_gets_sets_deletes_and_increments_alike() {
    use Op::*;
    check(&[
        (Get("a"), "None"),
        (Set("a", "1"), "()"),
        (Get("a"), r#"Some("1")"#),
        (Set("a", "41"), "()"),
        (Incr("a", 1), "42"),
        (Incr("fresh", 5), "5"),
        (Incr("fresh", -7), "-2"),
        (Get("fresh"), r#"Some("-2")"#),
        (Set("json", r#"{"n": 1}"#), "()"),
        (Incr("json", 1), "invalid: the value is not an integer…"),
        (Get("json"), r#"Some("{\"n\": 1}")"#),
        (Set("spaced", " 4"), "()"),
        (Incr("spaced", 1), "invalid: the value is not an integer…"),
        (Set("max", "9223372036854775807"), "()"),
        (Incr("max", 1), "invalid…"),
        (Get("max"), r#"Some("9223372036854775807")"#),
        (Delete("a"), "true"),
        (Delete("a"), "false"),
        (Get("a"), "None"),
        (Set("empty", ""), "()"),
        (Get("empty"), r#"Some("")"#),
        (Set("k'; DROP TABLE kv; --", "é \"q\""), "()"),
        (Get("k'; DROP TABLE kv; --"), r#"Some("é \"q\"")"#),
    ])
    .await;
}

#[tokio::test]
async fn compare_and_swap_sets_only_what_it_expected() {
    use Op::*;
    check(&[
        (Cas("c", None, "v1"), "true"),
        (Cas("c", None, "v2"), "false"),
        (Cas("c", Some("v2"), "v3"), "false"),
        (Get("c"), r#"Some("v1")"#),
        (Cas("c", Some("v1"), "v3"), "true"),
        (Get("c"), r#"Some("v3")"#),
        (Cas("absent", Some(""), "x"), "false"),
        (Get("absent"), "None"),
        (Set("e", ""), "()"),
        (Cas("e", None, "x"), "false"),
        (Cas("e", Some(""), "x"), "true"),
        (Get("e"), r#"Some("x")"#),
    ])
    .await;
}

#[tokio::test]
async fn namespaces_are_apart() {
    for Backend { name, store, .. } in backends().await {
        let kv = store.kv();
        kv.set("one", "k", "1", None).await.unwrap();
        kv.set("two", "k", "2", None).await.unwrap();
        assert_eq!(
            kv.get("one", "k").await.unwrap().as_deref(),
            Some("1"),
            "{name}"
        );
        assert!(kv.delete("two", "k").await.unwrap(), "{name}");
        assert_eq!(
            kv.get("one", "k").await.unwrap().as_deref(),
            Some("1"),
            "{name}"
        );
    }
}

/// Polls `get` until the key is gone, for at most 10 s.
async fn until_gone(kv: &dyn KvStore, key: &str, name: &str) {
    let start = Instant::now();
    while kv.get("ns", key).await.unwrap().is_some() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{name}: `{key}` never expired"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn entries_expire_after_their_ttl_and_then_count_as_absent() {
    let ttl = Some(Duration::from_millis(300));
    for Backend { name, store, .. } in backends().await {
        let kv = store.kv();
        kv.set("ns", "long", "l", Some(Duration::from_secs(3600)))
            .await
            .unwrap();
        kv.set("ns", "short", "s", ttl).await.unwrap();
        kv.set("ns", "counter", "1", ttl).await.unwrap();
        assert_eq!(kv.increment("ns", "counter", 1).await.unwrap(), 2, "{name}");
        kv.set("ns", "gone", "g", ttl).await.unwrap();
        kv.set("ns", "swap", "a", ttl).await.unwrap();
        kv.set("ns", "deleted", "d", ttl).await.unwrap();
        assert_eq!(
            kv.get("ns", "short").await.unwrap().as_deref(),
            Some("s"),
            "{name}"
        );

        until_gone(kv.as_ref(), "short", name).await;
        // The increment kept the key's expiry.
        until_gone(kv.as_ref(), "counter", name).await;
        assert_eq!(kv.increment("ns", "gone", 3).await.unwrap(), 3, "{name}");
        assert!(
            !kv.compare_and_swap("ns", "swap", Some("a"), "b")
                .await
                .unwrap(),
            "{name}"
        );
        assert!(
            kv.compare_and_swap("ns", "swap", None, "b").await.unwrap(),
            "{name}"
        );
        assert!(
            !kv.delete("ns", "deleted").await.unwrap(),
            "{name}: expired, so not there"
        );
        // What an increment or a swap created has no expiry.
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(
            kv.get("ns", "gone").await.unwrap().as_deref(),
            Some("3"),
            "{name}"
        );
        assert_eq!(
            kv.get("ns", "swap").await.unwrap().as_deref(),
            Some("b"),
            "{name}"
        );
        assert_eq!(
            kv.get("ns", "long").await.unwrap().as_deref(),
            Some("l"),
            "{name}"
        );

        // The sweep with the store's retention leaves the live entries.
        kv.set("ns", "swept", "x", Some(Duration::from_millis(1)))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let retention = Retention {
            max_age: Duration::from_secs(3600),
            max_runs: 100,
        };
        store.prune(retention).await.unwrap();
        assert_eq!(kv.get("ns", "swept").await.unwrap(), None, "{name}");
        assert_eq!(
            kv.get("ns", "long").await.unwrap().as_deref(),
            Some("l"),
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_increments_and_swaps_are_atomic() {
    for Backend { name, store, .. } in backends().await {
        let kv = store.kv();
        let increments: Vec<_> = (0..64)
            .map(|_| {
                let kv = kv.clone();
                tokio::spawn(async move { kv.increment("ns", "n", 1).await })
            })
            .collect();
        let mut seen = BTreeSet::new();
        for task in increments {
            seen.insert(task.await.unwrap().unwrap());
        }
        assert_eq!(seen, (1..=64).collect(), "{name}: each sum once");
        assert_eq!(
            kv.get("ns", "n").await.unwrap().as_deref(),
            Some("64"),
            "{name}"
        );

        let swaps: Vec<_> = (0..16)
            .map(|i| {
                let kv = kv.clone();
                tokio::spawn(async move {
                    kv.compare_and_swap("ns", "lock", None, &i.to_string())
                        .await
                })
            })
            .collect();
        let mut won = 0;
        for task in swaps {
            won += usize::from(task.await.unwrap().unwrap());
        }
        assert_eq!(won, 1, "{name}: one swap from absent wins");
    }
}

#[tokio::test]
async fn a_sqlite_store_keeps_its_state_when_opened_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(store.kv().increment("ns", "n", 1).await.unwrap(), 1);
    let kv = store.kv();
    drop(store);
    // The state outlives its store: the file stays locked until both are gone.
    let e = SqliteStore::open(&path).await.unwrap_err();
    assert!(matches!(e, crate::store::StoreError::Locked { .. }), "{e}");
    drop(kv);
    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(store.kv().increment("ns", "n", 1).await.unwrap(), 2);
    drop(store);
    let reader = SqliteStore::open_reader(&path).await.unwrap();
    let e = reader.kv().get("ns", "n").await.unwrap_err();
    assert!(e.to_string().contains("reading only"), "{e}");
}
